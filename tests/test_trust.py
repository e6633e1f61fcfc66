"""Numbers that would be silently wrong are refused at the boundary, naming the argument: schedules
that train nothing or ascend, rates that underflow, a bool for max_loss, a guard count out of
range, an optimizer that has stepped; paths given as bytes or with ~ work."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jgd

bowl = lambda w, batch: 0.5 * (w - 3.0) ** 2  # noqa: E731


def fit(**kw):
    options = dict(optimizer=optax.sgd, learning_rate=0.1, epochs=10)
    return jgd.fit(bowl, jnp.array(-2.0), jnp.zeros(1), **{**options, **kw})


def test_a_schedule_zero_at_every_step_is_refused():
    with pytest.raises(ValueError, match=r"is 0 at every step of this run \(steps 0 to 9\)"):
        fit(learning_rate=optax.constant_schedule(0.0))


def test_a_schedule_negative_at_a_step_is_refused_naming_the_step():
    with pytest.raises(ValueError, match=r"learning_rate \(a schedule\) is -0.02 at step 6"):
        fit(learning_rate=lambda count: 0.1 - 0.02 * count)


def test_warmup_and_cosine_zero_at_the_ends_pass():
    schedule = optax.warmup_cosine_decay_schedule(0.0, 0.5, 3, 10, end_value=0.0)
    result = fit(learning_rate=schedule)
    assert abs(float(result.params) - 3.0) < abs(-2.0 - 3.0)


def test_a_continued_run_checks_the_schedule_from_its_step():
    schedule = optax.linear_schedule(0.1, 0.0, 10)  # 0 from step 10 on
    first = fit(learning_rate=schedule)
    with pytest.raises(ValueError, match=r"0 at every step of this run \(steps 10 to 14\)"):
        jgd.fit(bowl, first.state, jnp.zeros(1), optimizer=optax.sgd, learning_rate=schedule,
                epochs=5)  # fmt: skip


def test_a_rate_that_underflows_the_params_dtype_is_refused():
    with pytest.raises(ValueError, match="learning_rate=1e-08 underflows float16"):
        jgd.fit(bowl, jnp.array(-2.0, jnp.float16), jnp.zeros(1), optimizer=optax.sgd,
                learning_rate=1e-8, epochs=2)  # fmt: skip


def test_max_loss_true_is_not_one():
    with pytest.raises(ValueError, match="max_loss=True is not valid; .* not a bool"):
        fit(max_loss=True)


@pytest.mark.parametrize("count", [-1, 4, 1.5, True])
def test_a_guard_count_out_of_range_is_refused(count):
    steps = jgd.scan_steps(jgd.make_step(bowl, optax.sgd(0.1)))
    guarded = jgd.guard(steps)
    state = jgd.TrainState.create(jnp.array(-2.0), optax.sgd(0.1))
    with pytest.raises(ValueError, match=r"count=.* is not valid; expected an int from 0 to 3"):
        guarded(state, jnp.zeros((3, 1)), count)


def test_checkpoint_dir_as_bytes_and_with_a_tilde(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    fit(checkpoint_dir="~/runs/a", checkpoint_every=5)
    assert (tmp_path / "runs" / "a" / "jgd-run.json").exists()
    fit(checkpoint_dir=str(tmp_path / "b").encode(), checkpoint_every=5)
    assert (tmp_path / "b" / "jgd-run.json").exists()
    with pytest.raises(TypeError, match="checkpoint_dir=3 is not valid; expected a folder path"):
        fit(checkpoint_dir=3, checkpoint_every=5)


def test_to_optax_refuses_an_sgd_that_has_stepped():
    torch = pytest.importorskip("torch")
    from jgd import torch_baseline

    net = torch.nn.Linear(2, 1)
    opt = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9)
    net(torch.ones(1, 2)).sum().backward()
    opt.step()
    with pytest.raises(ValueError, match="has already taken steps"):
        torch_baseline.to_optax(opt, steps=3)


class IncreasingOnly:
    """An h5py-style dataset: integer-array indexing with increasing, distinct indices only."""

    def __init__(self, array):
        self.array, self.shape, self.dtype = array, array.shape, array.dtype

    def __getitem__(self, rows):
        rows = np.asarray(rows)
        if rows.ndim and np.any(np.diff(rows) <= 0):
            raise TypeError("Indexing elements must be in increasing order")
        return self.array[rows]


class WrongRows(IncreasingOnly):
    def __getitem__(self, rows):
        return self.array[: max(len(np.atleast_1d(rows)) - 1, 0)]  # one row short


def _stream_fit(X, y, **kw):
    loss = lambda w, b: jnp.mean((b[0] @ w - b[1]) ** 2)  # noqa: E731
    return jgd.fit(loss, jnp.zeros(3), (X, y), optimizer=optax.sgd(0.05), batch_size=8,
                   epochs=2, key=0, stream=True, **kw)  # fmt: skip


def test_an_increasing_indices_only_dataset_streams_as_the_array_does():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(64, 3)).astype(np.float32)
    y = X @ np.array([1.0, -2.0, 0.5], np.float32)
    plain = _stream_fit(X, y)
    wrapped = _stream_fit(IncreasingOnly(X), IncreasingOnly(y))
    np.testing.assert_array_equal(wrapped.losses, plain.losses)


def test_a_dataset_returning_other_rows_is_named():
    X = np.ones((64, 3), np.float32)
    with pytest.raises(OSError, match=r"data array 0 returned an array of shape \(\d+, 3\) for"):
        _stream_fit(WrongRows(X), np.ones(64, np.float32))


def test_the_noise_scale_of_a_loss_that_is_not_a_mean_is_refused():
    X = np.random.default_rng(0).normal(size=(32, 3)).astype(np.float32)
    y = X @ np.array([1.0, -1.0, 2.0], np.float32)

    def centred(w, batch):  # centres by the batch's mean: a batch of one is all zeros
        x, t = batch
        r = x @ w - t
        return jnp.mean((r - jnp.mean(r)) ** 2)

    with pytest.raises(ValueError, match="is not a mean of per-example losses here"):
        jgd.gradient_noise_scale(centred, jnp.zeros(3), (X, y))
    plain = lambda w, b: jnp.mean((b[0] @ w - b[1]) ** 2)  # noqa: E731
    assert float(jgd.gradient_noise_scale(plain, jnp.zeros(3), (X, y))) > 0


def _data_step(checked=False):
    X, y = np.arange(8.0)[:, None], 3 * np.arange(8.0)
    loss = lambda w, b: jnp.mean((b[0] @ w - b[1]) ** 2)  # noqa: E731
    step = jgd.with_data(jgd.make_step(loss, optax.sgd(0.01)), (X, y), checked=checked)
    return step, jgd.TrainState.create(jnp.zeros(1), optax.sgd(0.01))


def test_negative_rows_on_the_device_never_use_another_example():
    step, state = _data_step()
    with pytest.raises(ValueError, match="rows"):
        step(state, np.array([0, -1]))  # on the host: refused before the call
    _, metrics = step(state, jnp.array([0, -1]))  # on the device: NaN, not example 7's 220.5
    assert np.isnan(float(metrics["loss"]))
    _, metrics = step(state, jnp.array([0, 7]))
    assert float(metrics["loss"]) == pytest.approx(220.5)


def test_rows_out_of_range_inside_a_users_jit_are_nan_and_checkify_names_them():
    from jax.experimental import checkify

    plain, state = _data_step()
    rows = jnp.array([[0, 1], [2, 9]])
    plain_loop = jax.jit(lambda s, rows: jgd.scan_steps(plain)(s, rows))
    assert not jax.make_jaxpr(plain_loop)(state, rows).effects  # jax's fast dispatch path
    assert np.isnan(plain_loop(state, rows)[1]["loss"][1])
    step, state = _data_step(checked=True)
    loop = jax.jit(lambda s, rows: jgd.scan_steps(step)(s, rows))
    losses = loop(state, rows)[1]["loss"]
    assert np.isfinite(losses[0]) and np.isnan(losses[1])
    err, _ = checkify.checkify(loop)(state, rows)
    with pytest.raises(checkify.JaxRuntimeError, match=r"rows\[1\] = 9 is outside 0..7"):
        err.throw()
    err, _ = checkify.checkify(step)(state, jnp.array([0, -3]))
    assert "rows[1] = -3 is outside 0..7" in err.get()
    err, (after, _) = checkify.checkify(loop)(state, jnp.array([[0, 1], [2, 7]]))
    assert err.get() is None  # in range: no error, and the same numbers as without checkify
    np.testing.assert_array_equal(after.params, loop(state, jnp.array([[0, 1], [2, 7]]))[0].params)


def test_noise_scale_every_checks_its_premise_before_the_run():
    X = np.random.default_rng(0).normal(size=(200, 3))
    y = X @ np.ones(3)
    residual = lambda w, b: b[0] @ w - b[1]  # noqa: E731
    mean = lambda w, b: jnp.mean(residual(w, b) ** 2)  # noqa: E731
    centred = lambda w, b: jnp.mean((residual(w, b) - jnp.mean(residual(w, b))) ** 2)  # noqa: E731
    kw = dict(optimizer=optax.sgd(0.01), batch_size=10, epochs=1, key=0, noise_scale_every=5)
    with pytest.raises(ValueError, match=r"noise_scale_every=5 was given, but loss=.* not a mean"):
        jgd.fit(centred, jnp.zeros(3), (X, y), **kw)
    run = jgd.fit(mean, jnp.zeros(3), (X, y), **kw)
    assert run.noise_scale.values.shape == (4,) and np.all(run.noise_scale.values > 0)


def _ck_problem():
    X = np.random.default_rng(0).normal(size=(40, 3))
    loss = lambda w, b: jnp.mean((b[0] @ w - b[1]) ** 2)  # noqa: E731
    return loss, (X, X @ np.ones(3))


def _ck_fit(folder, **kw):
    loss, data = _ck_problem()
    return jgd.fit(loss, jnp.zeros(3), data, optimizer=optax.adam(0.01), batch_size=4, epochs=3,
                   key=0, checkpoint_dir=folder, checkpoint_every=10, **kw)  # fmt: skip


def test_a_full_disk_names_checkpoint_dir_and_the_run_resumes(tmp_path, monkeypatch):
    import errno

    import orbax.checkpoint as ocp

    real, calls = ocp.CheckpointManager.save, []

    def save(self, step, *args, **kwargs):  # what tensorstore raises on a full disk
        calls.append(step)
        if len(calls) == 2:
            raise ValueError(
                'RESOURCE_EXHAUSTED: Error writing "carry.0/0" in OCDBT database: Failed to write '
                "65898 bytes to file 14: No space left on device [os_error_code='28']"
            )
        return real(self, step, *args, **kwargs)

    monkeypatch.setattr(ocp.CheckpointManager, "save", save)
    folder = tmp_path / "run"
    with pytest.raises(OSError) as caught:
        _ck_fit(folder)
    assert caught.value.errno == errno.ENOSPC
    assert f"checkpoint_dir={str(folder)!r}: writing the checkpoint of step 20 failed (the disk " \
        "is full); the last complete checkpoint is step 10" in str(caught.value)  # fmt: skip
    assert sorted(p.name for p in folder.iterdir()) == [".jgd.lock", "10", "jgd-run.json"]
    monkeypatch.setattr(ocp.CheckpointManager, "save", real)
    resumed = _ck_fit(folder)
    np.testing.assert_array_equal(resumed.params, _ck_fit(tmp_path / "whole").params)


def test_a_folder_emptied_mid_run_keeps_the_runs_later_checkpoints(tmp_path):
    import shutil

    folder = tmp_path / "run"
    emptied = []

    def empty_once(progress):  # after the first checkpoint, someone empties the folder
        if not emptied and (folder / "10").exists():
            for p in folder.iterdir():
                shutil.rmtree(p) if p.is_dir() else p.unlink()
            emptied.append(True)

    loss, data = _ck_problem()
    with pytest.warns(RuntimeWarning, match="was emptied while this run was writing to it"):
        first = jgd.fit(loss, jnp.zeros(3), data, optimizer=optax.adam(0.01), batch_size=4,
                        epochs=3, key=0, checkpoint_dir=folder, checkpoint_every=10,
                        callback=empty_once, report_every=5)  # fmt: skip
    assert emptied and (folder / "jgd-run.json").exists() and (folder / "30").exists()
    again = _ck_fit(folder)  # the same run: its own folder, resumed, not refused
    np.testing.assert_array_equal(again.params, first.params)


def test_two_threads_of_one_process_on_one_folder(tmp_path):
    import threading

    folder, answers = tmp_path / "run", []
    started = threading.Event()

    def hold():  # a run holding the folder while the other thread starts
        from jgd import _checkpoint

        c = _checkpoint.Checkpoints(folder, {"format": 0})
        started.set()
        done.wait(30)
        c.close()

    done = threading.Event()
    holder = threading.Thread(target=hold, name="holder")
    holder.start()
    started.wait(30)
    try:
        _ck_fit(folder)
    except ValueError as e:
        answers.append(str(e))
    done.set()
    holder.join()
    assert len(answers) == 1
    assert "is in use by another run in this process (thread 'holder')" in answers[0]


def test_torch_tensors_stream_as_their_numpy_arrays_do():
    torch = pytest.importorskip("torch")
    g = torch.Generator().manual_seed(0)
    X = torch.randn(300, 3, generator=g, requires_grad=True)  # a leaf of a torch graph
    y = (X @ torch.ones(3)).detach()
    kw = dict(optimizer=optax.sgd(0.01), batch_size=10, epochs=2, key=0)
    loss = lambda w, b: jnp.mean((b[0] @ w - b[1]) ** 2)  # noqa: E731
    streamed = jgd.fit(loss, jnp.zeros(3), (X, y), stream=True, **kw)
    in_memory = jgd.fit(loss, jnp.zeros(3), (X.detach().numpy(), y.numpy()), **kw)
    np.testing.assert_array_equal(streamed.params, in_memory.params)
    bf16 = jgd.fit(
        lambda w, b: jnp.mean((b[0].astype(w.dtype) @ w - b[1]) ** 2),
        jnp.zeros(3),
        (X.detach().to(torch.bfloat16), y),
        stream=True,
        **kw,
    )
    assert np.all(np.isfinite(bf16.params))


def test_a_dataset_failing_mid_run_is_named_not_raw():
    X = np.random.default_rng(0).normal(size=(4000, 3)).astype(np.float32)

    class Flaky:  # reads fine at first, then its storage goes away
        shape, dtype, calls = X.shape, X.dtype, [0]

        def __getitem__(self, rows):
            self.calls[0] += 1
            if self.calls[0] > 1:  # the probe is read here, the batches on the prefetch thread
                raise KeyError("the storage went away")
            return X[rows]

    with pytest.raises(OSError, match=r"reading examples from data array 0 failed: KeyError"):
        jgd.fit(lambda w, b: jnp.mean((b[0] @ w - b[1]) ** 2), jnp.zeros(3),
                (Flaky(), X @ np.ones(3, np.float32)), stream=True, optimizer=optax.sgd(0.01),
                batch_size=1, epochs=2, key=0)  # fmt: skip


# Found by an outside probe of this session: each a boundary answer, asserted exactly.
_Xp = np.random.default_rng(0).normal(size=(40, 3)).astype(np.float32)
_yp = _Xp @ np.ones(3, np.float32)
_lossp = lambda w, b: jnp.mean((b[0] @ w - b[1]) ** 2)  # noqa: E731


@pytest.mark.parametrize("mode", ["fd_central", "fd_forward", "forward", "reverse"])
def test_a_loss_returning_a_python_constant_trains_nothing_in_every_mode(mode):
    r = jgd.fit(lambda w, b: 1.5, jnp.zeros(3), (_Xp, _yp), optimizer=optax.sgd(0.1),
                batch_size=4, epochs=1, key=0, mode=mode)  # fmt: skip
    np.testing.assert_array_equal(r.params, np.zeros(3))
    assert r.final_loss == 1.5


@pytest.mark.parametrize(
    "count, error, match",
    [
        ("2", TypeError, r"count='2' is not valid; expected an int from 0 to 4"),
        (2.5, TypeError, r"count=2.5 is not valid"),
        (True, TypeError, r"count=True is not valid"),
        (jnp.array(2.0), TypeError, r"count has dtype float32; expected an int from 0 to 4"),
        (jnp.array([1, 2]), TypeError, r"count=.* is not valid"),
        (10, ValueError, r"count=10 is not valid; expected an int from 0 to 4 \(xs holds 4"),
        (-1, ValueError, r"count=-1 is not valid"),
    ],
)
def test_scan_steps_count_is_checked(count, error, match):
    step, state = _data_step()
    steps = jgd.scan_steps(step)
    with pytest.raises(error, match=match):
        steps(state, np.arange(8).reshape(4, 2), count)
    assert int(steps(state, np.arange(8).reshape(4, 2), np.int64(3))[0].step) == 3


def test_with_data_empty_rows_are_refused():
    step, state = _data_step()
    for rows in (np.zeros((0,), np.int32), jnp.zeros((0,), jnp.int32)):
        with pytest.raises(ValueError, match=r"rows is empty \(shape \(0,\)\)"):
            step(state, rows)


def test_the_stability_bound_of_no_examples_or_nan_is_refused_not_inf():
    with pytest.raises(ValueError, match=r"batch\[0\] has no examples \(shape \(0, 3\)\)"):
        jgd.max_stable_learning_rate(_lossp, jnp.zeros(3), (_Xp[:0], _yp[:0]))
    with pytest.raises(ValueError, match="top eigenvalue is NaN at these params"):
        jgd.max_stable_learning_rate(_lossp, jnp.zeros(3), (_Xp * np.nan, _yp))
    traced = jax.jit(lambda b: jgd.max_stable_learning_rate(_lossp, jnp.zeros(3), b))
    assert np.isnan(traced((_Xp * np.nan, _yp)).learning_rate)  # NaN in, NaN out, never inf
    seeded = jgd.max_stable_learning_rate(_lossp, jnp.zeros(3), (_Xp, _yp), key=5)
    assert float(seeded.eigenvalue) > 0  # an int seed, as fit takes one


@pytest.mark.parametrize(
    "model, error, match",
    [
        (dict(state={"s": "text"}), TypeError, r"Stateful.state\['s'\]='text' is not valid"),
        (dict(count=-1), ValueError, r"Stateful.count=-1 is not valid; expected an int from 0"),
        (dict(count=True), ValueError, r"Stateful.count=True is not valid"),
        (dict(count=1.5), ValueError, r"Stateful.count=1.5 is not valid"),
    ],
)
def test_a_stateful_of_other_things_than_arrays_is_named(model, error, match):
    def loss(w, b, s, k):
        return _lossp(w, b), s

    with pytest.raises(error, match=match):
        jgd.fit(loss, jgd.Stateful(jnp.zeros(3), **model), (_Xp, _yp), optimizer=optax.sgd(0.1))


def test_checkpoint_every_without_a_folder_and_report_every_epochs_are_named():
    with pytest.raises(ValueError, match="checkpoint_every=5 was given without checkpoint_dir"):
        fit(checkpoint_every=5)
    with pytest.raises(ValueError, match=r"report_every='epochs' is not valid; .* or 'epoch'"):
        fit(report_every="epochs")


@pytest.mark.parametrize(
    "optimizer, match",
    [
        (optax.sgd(0.1).update, r"optimizer=update_fn cannot be called as an optax factory"),
        (lambda: optax.sgd(0.1), r"optimizer=<lambda> takes no learning_rate argument"),
        (lambda learning_rate: 3, r"optimizer=<lambda> returned 3; an optax factory returns"),
    ],
)
def test_a_callable_that_is_not_an_optax_factory_is_named(optimizer, match):
    with pytest.raises(TypeError, match=match):
        jgd.fit(_lossp, jnp.zeros(3), (_Xp, _yp), optimizer=optimizer, learning_rate=0.1)


def test_sweep_rates_as_a_jax_array_and_a_2d_array():
    rates = jnp.array([0.01, 0.02])
    runs = jgd.sweep(_lossp, jnp.zeros(3), (_Xp, _yp), optimizer=optax.sgd, learning_rate=rates)
    loop = [jgd.fit(_lossp, jnp.zeros(3), (_Xp, _yp), optimizer=optax.sgd, learning_rate=float(r))
            for r in rates]  # fmt: skip
    for i, one in enumerate(loop):
        np.testing.assert_allclose(runs[i].params, one.params, rtol=1e-6)
    with pytest.raises(ValueError, match=r"learning_rate has shape \(2, 2\); expected a flat"):
        jgd.sweep(_lossp, jnp.zeros(3), (_Xp, _yp), optimizer=optax.sgd,
                  learning_rate=np.full((2, 2), 0.1))  # fmt: skip


@pytest.mark.parametrize(
    "vector, match",
    [
        (jnp.ones(4), r"vector<root> has shape \(4,\) and dtype float32; the params there"),
        ({"a": jnp.ones(3)}, r"vector has structure .*; it must be shaped like params"),
        (jnp.ones(3, jnp.int32), r"vector<root> has shape \(3,\) and dtype int32"),
    ],
)
def test_hvp_names_a_vector_unlike_the_params(vector, match):
    with pytest.raises(ValueError, match=match):
        jgd.hvp(_lossp, jnp.zeros(3), (_Xp, _yp), vector)


def test_the_noise_scale_at_nan_params_or_data_names_them_not_the_loss():
    with pytest.raises(ValueError, match="params has a non-finite value"):
        jgd.gradient_noise_scale(_lossp, jnp.array([np.nan, 0.0, 0.0]), (_Xp, _yp))
    with pytest.raises(ValueError, match=r"data\[0\] has a non-finite value .* in row 0"):
        jgd.gradient_noise_scale(_lossp, jnp.zeros(3), (_Xp * np.nan, _yp))


@pytest.mark.parametrize(
    "f, x, kw, error, match",
    [
        (lambda x: jnp.sum(x).astype(int), jnp.ones(3), {}, TypeError, "f returns int32 values"),
        (lambda x: 2 * x, jnp.ones(3, int), {}, TypeError, r"the point .* has dtype int32"),
        (lambda x: 2 * x, jnp.ones(3), {"modes": []}, ValueError, r"modes=\[\] is empty"),
    ],
)
def test_compare_modes_of_ints_or_no_modes_is_named(f, x, kw, error, match):
    with pytest.raises(error, match=match):
        jgd.compare_modes(f, x, **kw)


def test_a_train_state_of_int_params_is_refused_at_create():
    with pytest.raises(TypeError, match="params has dtype int32; gradient modes need floating"):
        jgd.TrainState.create(jnp.zeros(2, jnp.int32), optax.sgd(0.1))


def test_jgd_train_with_a_batch_larger_than_the_data(tiny_mnist, tmp_path, capsys):
    from jgd import cli

    argv = [
        "train",
        "--data-dir",
        str(tiny_mnist),
        "--batch-size",
        "100000",
        "--out",
        str(tmp_path),
    ]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert "--batch-size 100000 is larger than the" in err and "checkpoint_every" not in err, err
