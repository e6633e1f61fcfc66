"""Reliability, tried on purpose: properties over random inputs, determinism across processes,
crashes and corrupted checkpoints, numerical faults, and the CLI under Ctrl-C."""

import os
import signal
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import jgd

LINE = jgd.problems.line_loss
LINE_FIT = jgd.problems.line()  # seed 003's line fit from (-1, -1)
PROPERTY = settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# --- gradient modes on random pytrees and random functions ------------------------------------

OPS = {
    "sin": jnp.sin,
    "tanh": jnp.tanh,
    "square": jnp.square,
    "softplus": jax.nn.softplus,
    "cos": jnp.cos,
    "scale": lambda x: 1.7 * x,
    "exp_tanh": lambda x: jnp.exp(jnp.tanh(x)),
}
shapes = st.lists(
    st.lists(st.integers(1, 4), min_size=0, max_size=2).map(tuple), min_size=1, max_size=3
)
programs = st.lists(st.sampled_from(sorted(OPS)), min_size=1, max_size=4)


def random_loss(program):
    """sum over leaves of the composed ops, a linear term (so the gradient is not tiny) and a
    coupling between all leaves."""

    def loss(params, batch):
        leaves = jax.tree_util.tree_leaves(params)
        total = 0.0
        for i, x in enumerate(leaves):
            y = x
            for name in program:
                y = OPS[name](y)
            total = total + jnp.sum(y) + (i + 1) * jnp.sum(x) * batch
        coupling = sum(jnp.sum(jnp.tanh(x)) for x in leaves)
        return total + 0.3 * coupling**2

    return loss


def flat(tree):
    return np.concatenate(
        [np.ravel(np.asarray(x, np.float64)) for x in jax.tree_util.tree_leaves(tree)]
    )


def rel(a, b):
    return np.linalg.norm(flat(a) - flat(b)) / np.linalg.norm(flat(b))


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(shapes=shapes, program=programs, seed=st.integers(0, 2**16), double=st.booleans())
def test_modes_agree_on_random_functions_and_pytrees(shapes, program, seed, double):
    rng = np.random.default_rng(seed)
    with jax.enable_x64(double):
        dtype = jnp.float64 if double else jnp.float32
        params = {f"p{i}": jnp.asarray(rng.normal(size=s), dtype) for i, s in enumerate(shapes)}
        batch = jnp.asarray(0.7, dtype)
        loss = random_loss(program)
        want = jax.grad(loss)(params, batch)
        tol = (
            {"forward": 1e-10, "fd_central": 1e-6, "fd_forward": 1e-4}
            if double
            else {"forward": 1e-5, "fd_central": 2e-2, "fd_forward": 5e-2}
        )
        for mode, limit in tol.items():
            got = jax.jit(jgd.grad(loss, mode, chunk_size=3))(params, batch)
            assert all(
                g.dtype == p.dtype
                for g, p in zip(
                    jax.tree_util.tree_leaves(got), jax.tree_util.tree_leaves(params), strict=True
                )
            )
            assert rel(got, want) < limit, (mode, rel(got, want))


# --- batch plans ------------------------------------------------------------------------------

plans = st.integers(1, 40).flatmap(
    lambda m: st.tuples(st.just(m), st.integers(1, m), st.integers(1, 3), st.integers(0, 999))
)


@PROPERTY
@given(plan=plans)
def test_each_epoch_visits_examples_at_most_once_and_all_when_b_divides_m(plan):
    m, B, epochs, key = plan
    order = jgd.shuffled_order(m, B, epochs, key)
    per_epoch = m // B
    assert order.shape == (epochs * per_epoch, B)
    for epoch in order.reshape(epochs, per_epoch * B):
        assert len(set(epoch.tolist())) == per_epoch * B and epoch.min() >= 0 and epoch.max() < m
        if m % B == 0:
            assert sorted(epoch.tolist()) == list(range(m))


@PROPERTY
@given(plan=plans)
def test_explicit_order_equal_to_the_shuffled_plan_gives_the_same_run(plan):
    m, B, epochs, key = plan
    X = np.linspace(0, 1, m, dtype=np.float32)[:, None] * np.ones((1, 2), np.float32)
    X[:, 1] = 1
    y = 2 * X[:, 0] + 1
    kw = dict(optimizer=optax.sgd, learning_rate=0.1)
    shuffled = jgd.fit(LINE, jnp.zeros(2), (X, y), batch_size=B, epochs=epochs, key=key, **kw)
    replayed = jgd.fit(
        LINE, jnp.zeros(2), (X, y), order=jgd.shuffled_order(m, B, epochs, key), **kw
    )
    np.testing.assert_array_equal(shuffled.losses, replayed.losses)
    np.testing.assert_array_equal(shuffled.params, replayed.params)


@PROPERTY
@given(m=st.integers(2, 40), epochs=st.integers(1, 4), key=st.integers(0, 99))
def test_full_batch_equals_mini_batch_with_b_equal_m(m, epochs, key):
    rng = np.random.default_rng(m)
    X = np.c_[rng.uniform(size=m), np.ones(m)].astype(np.float32)
    y = rng.normal(size=m).astype(np.float32)
    kw = dict(optimizer=optax.sgd, learning_rate=0.2, epochs=epochs)
    full = jgd.fit(LINE, jnp.zeros(2), (X, y), **kw)
    mini = jgd.fit(LINE, jnp.zeros(2), (X, y), batch_size=m, key=key, **kw)
    np.testing.assert_allclose(full.losses, mini.losses, rtol=1e-5)  # sums in another order
    np.testing.assert_allclose(full.params, mini.params, rtol=1e-5, atol=1e-6)


# --- determinism ------------------------------------------------------------------------------

DETERMINISM = textwrap.dedent(
    """
    import hashlib, numpy as np, optax, jgd, jax
    from flax import nnx
    data = jgd.data.digits("train")
    apply, params = jgd.models.functional(jgd.models.MLP(64, 32, 10, rngs=nnx.Rngs(0)))
    loss = jgd.models.classification_loss(apply)
    h = hashlib.sha256()
    for mode in ("reverse", "forward_gradient"):
        r = jgd.fit(loss, params, tuple(data), optimizer=optax.sgd, learning_rate=0.01,
                    batch_size=32, epochs=2, key=jax.random.key(42), mode=mode)
        h.update(r.losses.tobytes())
        for leaf in jax.tree.leaves(r.params):
            h.update(np.asarray(leaf).tobytes())
    print(h.hexdigest())
    """
)


def test_same_key_is_bit_identical_across_processes():
    runs = [
        subprocess.run(
            [sys.executable, "-c", DETERMINISM], capture_output=True, text=True, check=True
        ).stdout.strip()
        for _ in range(2)
    ]
    assert runs[0] == runs[1] and len(runs[0]) == 64


def test_fit_equals_its_run_inside_sweep_bitwise():
    data = jgd.data.line()
    sched = jgd.schedules.inverse_time_decay(0.1, 0.01)
    swept = jgd.sweep(
        LINE,
        np.array([-1.0, -1.0], np.float32),
        data,
        optimizer=optax.sgd,
        learning_rate=[sched, jgd.schedules.inverse_time_decay(0.2, 0.0)],
        seeds=[4, 9],
        batch_size=1,
        epochs=5,
    )
    single = jgd.fit(
        LINE,
        np.array([-1.0, -1.0], np.float32),
        data,
        optimizer=optax.sgd,
        learning_rate=sched,
        key=9,
        batch_size=1,
        epochs=5,
    )
    np.testing.assert_array_equal(swept.losses[1], single.losses)
    np.testing.assert_array_equal(swept.params[1], single.params)


# --- crashes and checkpoints ------------------------------------------------------------------

CRASHY = textwrap.dedent(
    """
    import sys, time, numpy as np, optax, jgd, jax.numpy as jnp
    ckpt, out, slow = sys.argv[1], sys.argv[2], sys.argv[3] == "slow"
    loss = jgd.per_example(lambda th, ex: jgd.losses.squared_error(ex[0] @ th, ex[1]))
    def report(p):
        print("STEP", p.step, flush=True)
        if slow:
            time.sleep(0.05)
    r = jgd.fit(loss, jnp.array([-1.0, -1.0]), jgd.data.line(), optimizer=optax.adam,
                learning_rate=0.05, batch_size=5, epochs=20, key=3, checkpoint_dir=ckpt,
                checkpoint_every=10, callback=report)
    np.savez(out, params=np.asarray(r.params), losses=r.losses)
    """
)


def _steps(text):
    return [int(line.split()[1]) for line in text.splitlines() if line.startswith("STEP")]


def test_sigkill_mid_run_resumes_bit_identical_losing_at_most_checkpoint_every(tmp_path):
    run = [sys.executable, "-c", CRASHY]
    subprocess.run(
        [*run, str(tmp_path / "ref"), str(tmp_path / "ref.npz"), "fast"],
        check=True,
        capture_output=True,
    )
    victim = subprocess.Popen(
        [*run, str(tmp_path / "ck"), str(tmp_path / "x.npz"), "slow"],
        stdout=subprocess.PIPE,
        text=True,
    )
    seen = []
    for line in victim.stdout:
        if line.startswith("STEP"):
            seen.append(int(line.split()[1]))
            if seen[-1] >= 150:
                break
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    victim.stdout.close()
    assert victim.returncode == -signal.SIGKILL and not (tmp_path / "x.npz").exists()
    resumed = subprocess.run(
        [*run, str(tmp_path / "ck"), str(tmp_path / "y.npz"), "fast"],
        check=True,
        capture_output=True,
        text=True,
    )
    first = _steps(resumed.stdout)[0]
    assert first > seen[-1] - 10, (first, seen[-1])  # resumed within checkpoint_every steps
    ref, got = np.load(tmp_path / "ref.npz"), np.load(tmp_path / "y.npz")
    np.testing.assert_array_equal(got["params"], ref["params"])
    np.testing.assert_array_equal(got["losses"], ref["losses"])


def test_corrupted_newest_checkpoint_falls_back_to_the_previous(tmp_path):
    jgd.data.line()
    kw = dict(
        optimizer=optax.adam,
        learning_rate=0.05,
        batch_size=5,
        epochs=10,
        key=1,
        checkpoint_every=20,
    )
    whole = LINE_FIT.fit(checkpoint_dir=tmp_path / "a", **kw)

    def stop(p):
        if p.step >= 120:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        LINE_FIT.fit(checkpoint_dir=tmp_path / "b", callback=stop, **kw)
    newest = max((tmp_path / "b").iterdir(), key=lambda p: int(p.name) if p.name.isdigit() else -1)
    assert newest.name == "120"
    for f in newest.rglob("*"):
        if f.is_file() and f.name != "commit_success.txt":
            f.write_bytes(b"\0garbage" * 3)
    with pytest.warns(RuntimeWarning, match="checkpoint step 120 .* could not be read.*moved"):
        resumed = LINE_FIT.fit(checkpoint_dir=tmp_path / "b", **kw)
    np.testing.assert_array_equal(resumed.params, whole.params)
    np.testing.assert_array_equal(resumed.losses, whole.losses)
    assert any(p.name.startswith("unreadable-120-") for p in (tmp_path / "b").iterdir())


def test_leftover_temporary_checkpoint_is_ignored(tmp_path):
    jgd.data.line()
    kw = dict(
        optimizer=optax.sgd,
        learning_rate=0.05,
        batch_size=10,
        epochs=4,
        key=1,
        checkpoint_every=10,
        checkpoint_dir=tmp_path,
    )
    first = LINE_FIT.fit(**kw)
    (tmp_path / "50.orbax-checkpoint-tmp-123").mkdir()  # a save killed half-way
    again = LINE_FIT.fit(**kw)
    np.testing.assert_array_equal(first.params, again.params)


# --- numerical faults -------------------------------------------------------------------------


def test_inf_in_nested_data_names_the_array_and_row():
    X = np.ones((6, 2), np.float32)
    X[4, 1] = np.inf
    with pytest.raises(ValueError, match=r"data\['inputs'\] has a non-finite value .* row 4"):
        jgd.fit(
            lambda w, b: jnp.mean(b["inputs"] @ w),
            jnp.zeros(2),
            {"inputs": X, "labels": np.zeros(6)},
            optimizer=optax.sgd,
            learning_rate=0.1,
        )


def test_overflowing_loss_is_divergence_with_its_step():
    steep = lambda w, b: jnp.sum(jnp.exp(w**2))  # noqa: E731  (exp(81) is finite in float32...)
    r = jgd.fit(
        steep, jnp.array([9.0]), jnp.zeros(1), optimizer=optax.sgd, learning_rate=1e-3, epochs=5
    )
    # ...and so is its gradient, so step 0 updates w to about -2.7e33; step 1's loss overflows
    assert r.diverged and r.diverged_at == 1 and r.divergence == "non-finite"
    assert np.isfinite(r.losses[0]) and np.isinf(r.losses[1]) and np.isnan(r.losses[2:]).all()
    assert np.isfinite(r.params).all() and float(r.params[0]) < -1e33  # the last finite params


@pytest.mark.parametrize("dtype", [jnp.float16, jnp.bfloat16])
def test_half_precision_params_train(dtype):
    data = jgd.data.line()
    r = jgd.fit(
        LINE,
        jnp.array([-1.0, -1.0], dtype),
        (data.X.astype(dtype), data.y.astype(dtype)),
        optimizer=optax.sgd,
        learning_rate=0.4,
        epochs=200,
    )
    assert r.params.dtype == dtype and not r.diverged
    # float16 lands within rounding of θ*; bfloat16 keeps 8 mantissa bits, so near θ ≈ 2 an
    # update smaller than half its spacing (0.0078) is lost and descent stalls a little early.
    atol = 0.01 if dtype == jnp.float16 else 0.1
    np.testing.assert_allclose(np.asarray(r.params, np.float32), data.least_squares, atol=atol)
    assert float(r.losses[-1]) < 0.02 * float(r.losses[0])


@pytest.mark.parametrize("dtype", [jnp.float16, jnp.bfloat16])
def test_half_precision_finite_differences_are_refused(dtype):
    with pytest.raises(TypeError, match=f"{jnp.dtype(dtype).name}.*finite differences"):
        jgd.grad(lambda w, b: jnp.sum(w**2), "fd_central")(jnp.ones(2, dtype), None)


# --- the CLI under Ctrl-C ----------------------------------------------------------------------


@pytest.fixture
def python_sigint():
    """Python's own SIGINT handler in the main thread (as in a terminal), put back after."""
    import threading

    if threading.current_thread() is not threading.main_thread():
        pytest.skip("signal handlers are the main thread's")
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


def test_a_ctrl_c_during_a_checkpoint_write_interrupts_once_it_is_written(python_sigint):
    # interrupted midway, orbax's write threads ran on into the interpreter's exit and printed a
    # traceback after jgd's one line (seen in 1 of 2 Ctrl-Cs 3-5 ms after "epoch 3/")
    from jgd import _folder

    done = []
    with pytest.raises(KeyboardInterrupt), _folder.interrupts_after():
        os.kill(os.getpid(), signal.SIGINT)
        done.append("the write went on")
    assert done == ["the write went on"]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    # a second Ctrl-C does not wait
    with pytest.raises(KeyboardInterrupt), _folder.interrupts_after():
        os.kill(os.getpid(), signal.SIGINT)
        os.kill(os.getpid(), signal.SIGINT)
        done.append("not reached")
    assert done == ["the write went on"]


def test_a_users_own_sigint_handler_is_left_alone_during_a_write(python_sigint):
    from jgd import _folder

    seen = []
    signal.signal(signal.SIGINT, lambda *_: seen.append("mine"))
    with _folder.interrupts_after():
        os.kill(os.getpid(), signal.SIGINT)
    assert seen == ["mine"]


def test_ctrl_c_during_train_exits_130_and_resumes(tmp_path, tiny_mnist):
    folder = tiny_mnist
    # a shell's background job ("pytest &") starts with SIGINT ignored, and a child inherits
    # that: the child puts back Python's own handler, as a terminal's Ctrl-C finds it
    as_in_a_terminal = (
        "import runpy, signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler); "
        "sys.argv = ['jgd', *sys.argv[1:]]; runpy.run_module('jgd.cli', run_name='__main__')"
    )
    cmd = [
        sys.executable,
        "-c",
        as_in_a_terminal,
        "train",
        "--data-dir",
        str(folder),
        "--epochs",
        "40",
        "--batch-size",
        "1",  # 640 steps an epoch: the 37 epochs left after "epoch 3" outlast the signal's way
        "--hidden",
        "32",
        "--out",
        str(tmp_path / "run"),
        "--no-progress",
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    for line in proc.stdout:
        if line.startswith("epoch 3/"):
            break
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "interrupted" in err and "Traceback" not in err
    assert len([x for x in err.strip().splitlines() if x.startswith("jgd")]) == 1
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    epochs = [
        int(x.split()[1].split("/")[0]) for x in done.stdout.splitlines() if x.startswith("epoch ")
    ]
    assert epochs[0] > 3 and epochs[-1] == 40  # resumed, not restarted


def test_unreadable_data_file_exits_2(tmp_path, capsys):
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        target = tmp_path / "train-images-idx3-ubyte.gz"
        target.mkdir()  # root reads anything: a folder where the file should be is unreadable
        (tmp_path / "train-labels-idx1-ubyte.gz").write_bytes(b"")
    else:
        (tmp_path / "train-images-idx3-ubyte.gz").write_bytes(b"x")
        (tmp_path / "train-images-idx3-ubyte.gz").chmod(0)
        (tmp_path / "train-labels-idx1-ubyte.gz").write_bytes(b"")
    from jgd import cli

    assert cli.main(["train", "--data-dir", str(tmp_path), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "Traceback" not in err and "idx" in err


def test_nan_in_device_data_is_found_on_the_device():
    X = jnp.ones((5, 3)).at[3, 2].set(jnp.nan)
    with pytest.raises(ValueError, match=r"data\[0\] has a non-finite value .* row 3"):
        jgd.fit(LINE, jnp.zeros(3), (X, jnp.ones(5)), optimizer=optax.sgd, learning_rate=0.1)
