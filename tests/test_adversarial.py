"""An adversarial suite, as a hostile but realistic user would probe jgd: checkpoints that must know
their run, one writer per folder, false and missed divergence, absurd numbers, broken files, keys
and data of the wrong kind, and PyTorch networks an MLP does not have. Each case either answers at
the boundary with a message naming the argument or file, or is handled correctly; nothing is lost
or silently wrong. docs/reliability.md lists every case with its test."""

import errno
import functools
import logging
import re
import subprocess
import sys
import textwrap
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jgd
from jgd import cli

LINE = jgd.problems.line_loss
RNG = np.random.default_rng(0)
X = RNG.normal(size=(40, 2)).astype(np.float32)
Y = (X @ np.array([1.0, -1.0], np.float32) + 0.5).astype(np.float32)


def fit(**kwargs):
    call = dict(loss=LINE, params=jnp.zeros(2), data=(X, Y), optimizer=optax.sgd)
    call.update(learning_rate=0.1, epochs=4)
    call.update(kwargs)
    return jgd.fit(call.pop("loss"), call.pop("params"), call.pop("data"), **call)


def listing(folder):
    return sorted(p.name for p in folder.iterdir())


# --- checkpoints know the run they belong to ----------------------------------------------


@pytest.mark.parametrize(
    "change,differs",
    [
        (dict(data=(X * 2, Y)), "data"),
        (dict(loss=lambda w, b: 2 * jnp.mean((b[0] @ w - b[1]) ** 2)), "program: what the run"),
        (dict(params=jnp.ones(2)), "start"),
        (dict(learning_rate=0.2), "hparams"),
        (dict(grad_norm=True), "grad_norm"),
    ],
    ids=["data values", "loss", "initial params", "learning rate", "grad_norm"],
)
def test_a_finished_checkpointed_run_is_not_returned_for_another(tmp_path, change, differs):
    fit(checkpoint_dir=tmp_path, checkpoint_every=2)
    with pytest.raises(ValueError, match=rf"holds a run with other arguments \(.*{differs}"):
        fit(checkpoint_dir=tmp_path, checkpoint_every=2, **change)


def test_another_num_tangents_is_another_run(tmp_path):
    kw = dict(mode="forward_gradient", key=0, checkpoint_dir=tmp_path, checkpoint_every=2)
    fit(num_tangents=1, **kw)
    with pytest.raises(ValueError, match="gradient options"):
        fit(num_tangents=4, **kw)


def test_a_folder_of_another_runs_checkpoints_is_refused_and_left_alone(tmp_path):
    fit(checkpoint_dir=tmp_path, checkpoint_every=2)
    before = listing(tmp_path)
    wider = np.c_[X, X[:, :1]]
    with pytest.raises(ValueError, match="holds a run with other arguments"):
        fit(params=jnp.zeros(3), data=(wider, Y), checkpoint_dir=tmp_path, checkpoint_every=2)
    assert listing(tmp_path) == before  # nothing renamed unreadable-*


def test_a_folder_of_ones_own_is_refused_and_untouched(tmp_path):
    (tmp_path / "5").mkdir()
    (tmp_path / "5" / "notes.txt").write_text("mine")
    (tmp_path / "results.csv").write_text("a,b")
    with pytest.raises(ValueError, match=r"not empty and holds no jgd run \(5, results.csv\)"):
        fit(checkpoint_dir=tmp_path, checkpoint_every=2)
    assert listing(tmp_path) == ["5", "results.csv"]
    assert (tmp_path / "5" / "notes.txt").read_text() == "mine"


def test_an_unreadable_run_marker_is_named(tmp_path):
    fit(checkpoint_dir=tmp_path, checkpoint_every=2)
    (tmp_path / "jgd-run.json").write_text("{broken")
    with pytest.raises(ValueError, match="jgd-run.json cannot be read"):
        fit(checkpoint_dir=tmp_path, checkpoint_every=2)


def test_a_second_writer_is_refused_at_once(tmp_path):
    seen = []

    def meanwhile(progress):
        if progress.step == 2:  # the first run holds the folder: a second one is refused
            with pytest.raises(ValueError, match="in use by another run in this process"):
                fit(checkpoint_dir=tmp_path, checkpoint_every=2)
            seen.append("refused")

    fit(checkpoint_dir=tmp_path, checkpoint_every=2, callback=meanwhile, report_every=2)
    assert seen == ["refused"]
    fit(checkpoint_dir=tmp_path, checkpoint_every=2)  # released: the run resumes (finished)


SCHEDULED = textwrap.dedent(
    """
    import sys, numpy as np, optax, jgd
    loss = jgd.per_example(lambda th, ex: jgd.losses.squared_error(ex[0] @ th, ex[1]))
    r = jgd.fit(loss, np.zeros(2, np.float32), jgd.data.line(), optimizer=optax.adam,
                learning_rate=optax.cosine_decay_schedule(0.1, 200), batch_size=10, epochs=4,
                key=1, checkpoint_dir=sys.argv[1], checkpoint_every=10)
    print(np.asarray(r.params).tolist())
    """
)


def test_a_run_with_a_schedule_is_recognised_by_a_new_process(tmp_path):
    """A schedule's repr holds a memory address; its fingerprint does not."""
    runs = [
        subprocess.run(
            [sys.executable, "-c", SCHEDULED, str(tmp_path)],
            capture_output=True,
            text=True,
            timeout=300,
        )
        for _ in range(2)
    ]
    assert all(r.returncode == 0 for r in runs), runs[1].stderr[-1500:]
    assert runs[0].stdout == runs[1].stdout


def test_two_train_commands_on_one_folder(tiny_mnist, tmp_path):
    cmd = [sys.executable, "-m", "jgd.cli", "train", "--data-dir", str(tiny_mnist)]
    cmd += ["--epochs", "2000", "--batch-size", "64", "--hidden", "8", "--no-progress"]
    cmd += ["--out", str(tmp_path / "run")]
    first = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        for line in first.stdout:
            if line.startswith("epoch 1/"):
                break
        started = time.perf_counter()
        second = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        assert second.returncode == 2
        assert "in use by another process" in second.stderr
        assert len(second.stderr.strip().splitlines()) == 1
        assert time.perf_counter() - started < 60  # at once, not after the first one ends
    finally:
        first.kill()
        first.communicate()


# --- divergence: neither false nor missed ---------------------------------------------------


def test_a_falling_one_epoch_mini_batch_run_did_not_diverge():
    rng = np.random.default_rng(1)
    Xb = rng.normal(size=(64, 10)).astype(np.float32)
    yb = (Xb @ rng.normal(size=10)).astype(np.float32)
    result = jgd.fit(
        LINE,
        jnp.zeros(10),
        (Xb, yb),
        optimizer=optax.sgd,
        learning_rate=0.02,
        batch_size=8,
        key=0,
        on_divergence="raise",
    )
    assert result.losses[-1] < result.losses[0] and not result.diverged
    assert result.final_loss < result.initial_loss


def test_noisy_sgd_near_the_optimum_is_not_called_diverged():
    line = jgd.data.line()
    start = np.array([1.9, 1.0], np.float32)  # close to θ* = [1.961, 0.998]
    swept = jgd.sweep(
        LINE,
        start,
        line,
        optimizer=optax.sgd,
        learning_rate=[0.05],
        seeds=range(32),
        epochs=3,
        batch_size=1,
    )
    assert not swept.diverged.any()


def test_a_rising_run_is_dated_inside_the_run():
    bowl = lambda w, b: 0.5 * jnp.sum((w - 3.0) ** 2)  # noqa: E731  (lr 2.05: |1 - 2.05| > 1)
    rising = functools.partial(
        jgd.fit, bowl, jnp.array([2.0]), jnp.zeros((8, 1)), optimizer=optax.sgd, epochs=40
    )
    result = rising(learning_rate=2.05)
    assert result.divergence == "rose" and 0 <= result.diverged_at < result.steps
    with pytest.raises(jgd.DivergenceError, match=rf"at step {result.diverged_at} "):
        rising(learning_rate=2.05, on_divergence="raise")


@jax.custom_jvp
def _flat(w):
    """A loss of 0 (finite wherever w is) whose slope is 10: only the update can overflow."""
    return 0.0 * jnp.sum(w)


@_flat.defjvp
def _flat_jvp(primals, tangents):
    return _flat(primals[0]), 10.0 * jnp.sum(tangents[0])


def test_overflow_on_the_last_step_returns_the_last_finite_params():
    # w falls by 1.5e38 a step: -1.5e38, -3.0e38, then -4.5e38 overflows float32 on step 2, the last
    result = jgd.fit(
        lambda w, b: _flat(w),
        jnp.zeros(1),
        jnp.zeros(1),
        optimizer=optax.sgd,
        learning_rate=1.5e37,
        epochs=3,
    )
    assert result.diverged and result.diverged_at == 2 and result.divergence == "non-finite"
    np.testing.assert_allclose(result.params, [-3.0e38], rtol=1e-6)
    assert np.isfinite(result.losses).all()  # the loss never said so: the update did


def test_float16_with_a_large_rate_keeps_the_last_finite_params():
    slope = lambda w, b: jnp.sum(w) * jnp.float16(10)  # noqa: E731
    result = jgd.fit(
        slope,
        jnp.zeros(1, jnp.float16),
        jnp.zeros(1, jnp.float16),
        optimizer=optax.sgd,
        learning_rate=1000.0,
        epochs=20,
    )
    assert result.diverged and np.isfinite(np.asarray(result.params, np.float32)).all()
    assert result.params.dtype == jnp.float16 and result.diverged_at < 20


# --- the boundary ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "values,dtype", [([object()] * 40, "object"), (["a"] * 40, "<U1"), ([b"a"] * 40, "|S1")]
)
def test_data_that_is_not_numbers_is_named(values, dtype):
    with pytest.raises(ValueError, match=rf"data\[0\] has dtype {dtype}; expected numbers"):
        fit(data=(np.array(values), Y))


@pytest.mark.parametrize(
    "key,match",
    [
        (jax.random.key(0, impl="rbg"), "key is a rbg key"),
        (np.zeros(3, np.uint32), r"shape \(3,\)"),
        (2**64, r"\[-2\*\*31, 2\*\*31\)"),
        ("abc", "key='abc' is not valid"),
        (np.zeros(2, np.float32), "dtype float32"),
    ],
    ids=["rbg", "shape 3", "2**64", "text", "float key"],
)
def test_keys_of_the_wrong_kind_are_refused(key, match):
    with pytest.raises(ValueError, match=match):
        fit(batch_size=4, key=key)


def test_value_and_grad_and_check_grads_take_an_int_seed_as_fit_does():
    f = jgd.value_and_grad(LINE, "forward_gradient")
    by_seed = f(jnp.zeros(2), (X, Y), key=3)
    by_key = f(jnp.zeros(2), (X, Y), key=jax.random.PRNGKey(3))
    np.testing.assert_array_equal(by_seed[1], by_key[1])
    report = jgd.check_grads(LINE, jnp.zeros(2), (X, Y), modes=("forward_gradient",), key=3)
    assert "forward_gradient" in str(report)


def test_check_grads_names_modes_given_as_one_string():
    with pytest.raises(ValueError, match=r"modes='forward' is one string.*modes=\('forward',\)"):
        jgd.check_grads(LINE, jnp.zeros(2), (X, Y), modes="forward")


@pytest.mark.parametrize(
    "kwargs,error,match",
    [
        (dict(progress="no"), TypeError, "progress='no'"),
        (dict(checkpoint_dir="", checkpoint_every=2), ValueError, "checkpoint_dir='' is empty"),
        (dict(callback=3), TypeError, "callback=3 is not callable"),
        (dict(params=jnp.array([np.nan, 0.0])), ValueError, "params has a non-finite value"),
        (
            dict(params={"w": jnp.zeros(1), "b": jnp.array([np.inf])}),
            ValueError,
            r"params\['b'\] has a non-finite value",
        ),
        (dict(learning_rate=1e39), ValueError, r"learning_rate=1e\+39 overflows float32"),
        (dict(epochs=10**10, batch_size=4, key=0), ValueError, "epochs=10000000000 makes"),
        (dict(report_every=True), ValueError, "report_every=True"),
    ],
    ids=["progress", "empty dir", "callback", "nan params", "inf leaf", "lr", "steps", "bool"],
)
def test_fit_refuses_at_the_call(kwargs, error, match):
    before = jgd.compile_count()
    with pytest.raises(error, match=match):
        fit(**kwargs)
    assert jgd.compile_count() == before  # before anything ran


def test_numbers_that_overflow_half_precision_name_themselves():
    half = dict(params=jnp.zeros(2, jnp.float16), data=(X.astype(np.float16), Y.astype(np.float16)))
    with pytest.raises(ValueError, match=r"learning_rate=1e\+05 overflows float16"):
        fit(learning_rate=1e5, **half)
    with pytest.raises(ValueError, match=r"momentum=1e\+06 overflows float16"):
        fit(optimizer=functools.partial(optax.sgd, momentum=1e6), **half)


def test_a_sweep_rate_that_overflows_is_named():
    with pytest.raises(ValueError, match=r"learning_rate=1e\+39 overflows float32"):
        jgd.sweep(LINE, jnp.zeros(2), (X, Y), optimizer=optax.sgd, learning_rate=[0.1, 1e39])


def test_a_3000_run_sweep_compiles_its_program_and_nothing_else(caplog):
    rates = list(np.geomspace(1e-3, 0.5, 3000))
    jgd.sweep(LINE, jnp.zeros(2), (X, Y), optimizer=optax.sgd, learning_rate=rates[:2])  # warm
    with caplog.at_level(logging.WARNING, logger="jax"), jax.log_compiles(True):
        result = jgd.sweep(LINE, jnp.zeros(2), (X, Y), optimizer=optax.sgd, learning_rate=rates)
    compiled = [r.getMessage() for r in caplog.records if "Compiling" in r.getMessage()]
    assert [m.split()[1] for m in compiled if "3000" in m] == ["jit(run_many)"]
    assert len(result) == 3000 and result.compile_time > 0


def test_the_stability_bound_at_a_saddle_and_at_a_maximum():
    saddle = jgd.max_stable_learning_rate(lambda w, b: w[0] ** 2 - 10 * w[1] ** 2, jnp.ones(2), 0)
    assert float(saddle.eigenvalue) == pytest.approx(2.0, rel=1e-4)
    assert float(saddle.learning_rate) == pytest.approx(1.0, rel=1e-4)
    top = jgd.max_stable_learning_rate(lambda w, b: -jnp.sum(w**2), jnp.ones(2), 0)
    assert float(top.eigenvalue) < 0 and float(top.learning_rate) == np.inf


# --- the command line -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "flag,value,match",
    [
        ("--seed", "100000000000000000000", "not <= 2,147,483,647"),
        ("--seed", "-3000000000", "not >= -2147483648"),
        ("--epochs", "100000000000", "not <= 2,147,483,647"),
        ("--lr", "1e39", r"not a number in \(0, 3.4e38\]"),
        ("--lr", "nan", "not a number in"),
        ("--momentum", "abc", "'abc' is not a number"),
        ("--hidden", "10000000", "not <= 100,000"),
        ("--checkpoint-every", "9999999999", "not <= 2,147,483,647"),
    ],
)
def test_train_flags_are_range_checked(tmp_path, capsys, flag, value, match):
    code = cli.main(["train", "--data-dir", str(tmp_path), flag, value])
    err = capsys.readouterr().err
    assert code == 2 and "\n" not in err.strip() and "Traceback" not in err
    assert flag in err and re.search(match, err)


def test_a_plan_too_long_for_the_step_counter_is_one_line(tiny_mnist, tmp_path, capsys):
    code = cli.main(
        ["train", "--data-dir", str(tiny_mnist), "--epochs", "2000000000", "--out", str(tmp_path)]
    )
    err = capsys.readouterr().err
    assert code == 2 and "epochs=2000000000 makes" in err and len(err.strip().splitlines()) == 1


def test_a_corrupted_deflate_block_is_one_line_naming_the_file(tiny_mnist, tmp_path, capsys):
    target = tiny_mnist / "train-images-idx3-ubyte.gz"
    raw = bytearray(target.read_bytes())
    raw[len(raw) // 2 : len(raw) // 2 + 64] = b"\xff" * 64  # breaks the deflate stream
    target.write_bytes(bytes(raw))
    code = cli.main(["train", "--data-dir", str(tiny_mnist), "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code == 2 and "train-images-idx3-ubyte.gz cannot be read as gzip" in err
    assert len(err.strip().splitlines()) == 1


def test_a_diverged_train_says_so_and_exits_non_zero(tiny_mnist, tmp_path, capsys):
    out = tmp_path / "run"
    args = ["train", "--data-dir", str(tiny_mnist), "--out", str(out), "--lr", "300"]
    code = cli.main([*args, "--epochs", "2", "--hidden", "16", "--no-progress"])
    err = capsys.readouterr().err
    assert code == 1 and "the run diverged at step" in err and "Try a smaller --lr" in err
    weights = np.load(out / "model.npz")
    assert all(np.isfinite(weights[k]).all() for k in weights.files)


def test_a_full_disk_leaves_the_previous_model_whole(tiny_mnist, tmp_path, capsys, monkeypatch):
    out = tmp_path / "run"
    args = ["train", "--data-dir", str(tiny_mnist), "--out", str(out), "--epochs", "1"]
    args += ["--hidden", "16", "--no-progress"]
    assert cli.main(args) == 0
    before = (out / "model.npz").read_bytes()
    real = np.savez

    def disk_full(file, **arrays):
        real(file, **{k: v[:1] for k, v in arrays.items()})  # half written, then the disk fills
        raise OSError(errno.ENOSPC, "No space left on device", str(out / "model.npz"))

    monkeypatch.setattr(np, "savez", disk_full)
    capsys.readouterr()
    assert cli.main(args) == 2
    err = capsys.readouterr().err
    assert "No space left on device" in err and "model.npz" in err
    assert (out / "model.npz").read_bytes() == before
    assert listing(out) == ["checkpoints", "model.npz"]  # no temporary file left behind


def _epoch_lines(text):
    return [line for line in text.splitlines() if line.startswith("epoch ")]


def test_checkpoints_that_do_not_divide_an_epoch_log_every_epoch_right(
    tiny_mnist, tmp_path, capsys
):
    base = ["train", "--data-dir", str(tiny_mnist), "--epochs", "3", "--hidden", "16"]
    base += ["--no-progress", "--batch-size", "64"]  # 10 steps an epoch
    assert cli.main([*base, "--out", str(tmp_path / "a")]) == 0
    plain = _epoch_lines(capsys.readouterr().out)
    assert cli.main([*base, "--out", str(tmp_path / "b"), "--checkpoint-every", "4"]) == 0
    odd = _epoch_lines(capsys.readouterr().out)
    assert len(odd) == 3 and odd == plain


def test_a_run_resumed_inside_an_epoch_reports_that_epoch_whole(tmp_path):
    kw = dict(batch_size=4, epochs=3, key=0, checkpoint_dir=tmp_path, checkpoint_every=5)
    whole = []
    fit(report_every="epoch", callback=lambda p: whole.append(float(np.mean(p.losses))), **kw)

    def stop_inside_epoch_two(progress):
        if progress.step == 15:  # epoch 2 is steps 10-19; a checkpoint was saved at 15
            raise KeyboardInterrupt

    other = tmp_path / "other"
    kw["checkpoint_dir"] = other
    with pytest.raises(KeyboardInterrupt):
        fit(report_every=5, callback=stop_inside_epoch_two, **kw)
    resumed = []
    fit(report_every="epoch", callback=lambda p: resumed.append(float(np.mean(p.losses))), **kw)
    assert resumed == whole[1:]  # epoch 2 whole (restored history), then epoch 3


# --- PyTorch networks an MLP is or is not ---------------------------------------------------

torch = pytest.importorskip("torch")
nn = torch.nn


def _net(activation):
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Linear(6, 8), activation(), nn.Linear(8, 8), activation(), nn.Linear(8, 3)
    )


@pytest.mark.parametrize(
    "activation",
    [nn.Tanh, nn.Sigmoid, nn.GELU, lambda: nn.GELU(approximate="tanh"), nn.ReLU],
    ids=["tanh", "sigmoid", "gelu", "gelu_tanh", "relu"],
)
def test_from_torch_copies_the_common_activations(activation):
    net = _net(activation)
    model = jgd.models.from_torch(net)
    x = np.random.default_rng(0).normal(size=(5, 6)).astype(np.float32)
    want = net(torch.from_numpy(x)).detach().numpy()
    np.testing.assert_allclose(model(jnp.asarray(x)), want, rtol=1e-5, atol=1e-6)
    back = jgd.models.to_torch(model)(torch.from_numpy(x)).detach().numpy()
    np.testing.assert_allclose(back, want, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize(
    "layers",
    [
        [nn.Linear(6, 8), nn.LayerNorm(8), nn.Linear(8, 3)],
        [nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 3), nn.Softmax(-1)],
        [nn.Linear(6, 8), nn.Dropout(0.1), nn.ReLU(), nn.Linear(8, 3)],
        [nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 8), nn.Tanh(), nn.Linear(8, 3)],
        [nn.Linear(6, 8), nn.ReLU(), nn.ReLU(), nn.Linear(8, 3)],
    ],
    ids=["layernorm", "softmax", "dropout", "mixed", "two activations"],
)
def test_from_torch_copies_what_an_mlp_is_not_from_its_graph(layers):
    # once refused by name; read from the traced graph, each is copied exactly
    torch.manual_seed(0)
    net = nn.Sequential(*layers).eval()
    model = jgd.models.from_torch(net)
    assert type(model).__name__ == "TorchModule"
    model.eval()
    x = np.random.default_rng(0).normal(size=(5, 6)).astype(np.float32)
    want = net(torch.from_numpy(x)).detach().numpy()
    np.testing.assert_allclose(model(jnp.asarray(x)), want, rtol=1e-5, atol=1e-6)


class _FunctionalTanh(nn.Module):
    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Linear(6, 8), nn.Linear(8, 3)

    def forward(self, x):
        return self.b(torch.tanh(self.a(x)))


def test_from_torch_reads_an_activation_applied_as_a_function():
    torch.manual_seed(0)
    net = _FunctionalTanh()  # torch.tanh in forward: seen in the traced graph
    model = jgd.models.from_torch(net)
    assert type(model).__name__ == "MLP" and model.activation == "tanh"
    x = np.ones((2, 6), np.float32)
    np.testing.assert_allclose(
        model(jnp.asarray(x)), net(torch.from_numpy(x)).detach().numpy(), rtol=1e-5
    )
    with pytest.raises(ValueError, match="the module's layers are relu"):
        jgd.models.from_torch(_net(nn.ReLU), activation="tanh")
