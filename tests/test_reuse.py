"""What a call reuses and what it checks cheaply: compiled programs found by their lowered
digest, the verdict's sample sized to the run, the data's finiteness in one pass, donation."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jgd
from jgd import _batch_runs, _config, _plans
from jgd._options import RunOptions

LINE = jgd.problems.line_loss


backend_compiles = jgd.timing.backend_compiles


def _line(m=64):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(m, 2))
    return jnp.asarray(X), jnp.asarray(X @ np.array([2.0, -1.0]) + 0.5)


def _fresh_fit(data, optimizer, **kw):
    # a new closure and a new optimizer each call, as a notebook cell or a loop over folds
    return jgd.fit(
        lambda w, b: LINE(w, b), jnp.zeros(2), data, optimizer=optimizer, batch_size=8, key=0, **kw
    )


def test_an_equal_optimizer_and_loss_built_afresh_compile_nothing_new():
    data = _line()
    first = _fresh_fit(data, optax.chain(optax.clip_by_global_norm(1.0), optax.adam(0.05)))
    with backend_compiles() as counted:
        again = _fresh_fit(data, optax.chain(optax.clip_by_global_norm(1.0), optax.adam(0.05)))
    assert counted["n"] == 0
    np.testing.assert_array_equal(again.params, first.params)
    assert again.compile_time > 0  # traced and lowered again: that time is reported


def test_a_changed_number_in_a_ready_optimizer_compiles_and_changes_the_run():
    data = _line()
    first = _fresh_fit(data, optax.adam(0.05))
    with backend_compiles() as counted:
        other = _fresh_fit(data, optax.adam(0.07))  # its number is compiled in
    assert counted["n"] >= 1
    assert not np.array_equal(other.params, first.params)


def test_a_schedule_built_afresh_reuses_the_program():
    data = _line()
    first = _fresh_fit(data, optax.sgd(optax.cosine_decay_schedule(0.1, 40)), epochs=5)
    with backend_compiles() as counted:
        again = _fresh_fit(data, optax.sgd(optax.cosine_decay_schedule(0.1, 40)), epochs=5)
    assert counted["n"] == 0
    np.testing.assert_array_equal(again.params, first.params)


def test_a_sweep_with_a_fresh_loss_compiles_nothing_new():
    data = _line()

    def run():
        return jgd.sweep(
            lambda w, b: LINE(w, b), jnp.zeros(2), data, optimizer=optax.sgd,
            learning_rate=[0.01, 0.1], batch_size=8, key=0,
        )  # fmt: skip

    first = run()
    with backend_compiles() as counted:
        again = run()
    assert counted["n"] == 0
    np.testing.assert_array_equal(again.params, first.params)


def test_the_verdicts_sample_is_sized_to_the_run_and_is_what_initial_loss_measures():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(10_000, 2))
    data = (X, X @ np.array([1.0, 1.0]))
    short = jgd.fit(LINE, jnp.zeros(2), data, optimizer=optax.sgd, learning_rate=0.01,
                    order=rng.integers(0, 10_000, (100, 1)))  # fmt: skip
    plan = _plans.make(10_000, 1, 1, np.zeros((100, 1), np.int32))
    rows = _config.eval_rows(10_000)[_config.verdict_sample(4096, plan)]
    assert len(rows) == _config.VERDICT_MIN  # 100 examples seen: the fewest
    by_hand = LINE(jnp.zeros(2), (X[rows], data[1][rows]))
    np.testing.assert_allclose(short.initial_loss, by_hand, rtol=1e-6)
    long = _plans.make(10_000, 64, 10, None)
    assert len(_config.verdict_sample(4096, long)) == _config.VERDICT_MAX  # a long run


def test_the_verdicts_sample_is_fixed_and_sorted():
    plan = _plans.make(10_000, 2, 1, np.zeros((1400, 2), int))  # a quarter is 700 examples
    a, b = _config.verdict_sample(4096, plan), _config.verdict_sample(4096, plan)
    assert len(a) == 700 and np.array_equal(a, b) and np.all(np.diff(a) > 0)
    with pytest.raises(ValueError):
        a[0] = 1  # shared between runs: read-only


@pytest.mark.parametrize("where", ["host", "device"])
def test_huge_finite_data_passes_and_a_nan_is_named_in_one_pass(where):
    big = np.full((300, 4), 3e38, np.float32)  # its sum overflows; every value is finite
    put = jnp.asarray if where == "device" else np.asarray
    bowl = lambda w, b: jnp.sum(w**2)  # noqa: E731  (the data is only checked)
    jgd.fit(bowl, jnp.ones(4), (put(big), put(np.zeros(300, np.float32))),
            optimizer=optax.sgd, learning_rate=0.1, epochs=1)  # fmt: skip
    big[123, 2] = np.nan
    with pytest.raises(ValueError, match=r"data\[0\] has a non-finite value .* in row 123"):
        jgd.fit(bowl, jnp.ones(4), (put(big), put(np.zeros(300, np.float32))),
                optimizer=optax.sgd, learning_rate=0.1, epochs=1)  # fmt: skip


def test_device_arrays_found_finite_are_not_read_again_and_host_arrays_always_are(monkeypatch):
    from jgd import _batching, _errors

    reads = []
    for module, name in ((_batching, "_sum_finite"), (_errors, "_finite_leaves")):
        real = getattr(module, name)
        spy = lambda x, real=real, name=name: reads.append(name) or real(x)  # noqa: E731
        monkeypatch.setattr(module, name, spy)
    X, y = _line()
    w = jnp.zeros(2)
    fit = lambda params, data: jgd.fit(LINE, params, data, optimizer=optax.sgd,  # noqa: E731
                                       learning_rate=0.1, batch_size=8, key=0)  # fmt: skip
    fit(w, (X, y))
    assert sorted(reads) == ["_finite_leaves", "_sum_finite", "_sum_finite"]
    reads.clear()
    fit(w, (X, y))  # the same immutable device arrays: their verdicts are remembered
    assert reads == []
    host = np.asarray(X).copy()
    fit(w, (host, y))  # a host array is read every call: it can change in place
    host[5, 1] = np.nan
    with pytest.raises(ValueError, match=r"data\[0\] has a non-finite value .* in row 5"):
        fit(w, (host, y))
    with pytest.raises(ValueError, match=r"data\[0\] has a non-finite value .* in row 5"):
        fit(w, (jnp.asarray(host), y))  # a new device array: checked
    with pytest.raises(ValueError, match="params has a non-finite value"):
        fit(w.at[1].set(jnp.inf), (X, y))
    remembered = len(_errors._FINITE)
    del X, y, w
    assert len(_errors._FINITE) == remembered - 3  # a verdict goes with its array


def test_a_donating_step_equals_the_pure_one_and_deletes_its_input():
    X, y = _line(16)
    tx = optax.adam(0.1)
    pure = jgd.with_data(jgd.make_step(LINE, tx), (X, y))
    donating = jgd.with_data(jgd.make_step(LINE, tx), (X, y), donate=True)
    rows = np.array([3, 1, 4, 1])
    a, b = jgd.TrainState.create(jnp.zeros(2), tx), jgd.TrainState.create(jnp.zeros(2), tx)
    for _ in range(5):
        a, _ = pure(a, rows)
        before = b
        b, _ = donating(b, rows)
    assert before.params.is_deleted() and not b.params.is_deleted()
    np.testing.assert_array_equal(a.params, b.params)
    blocks = jgd.scan_steps(donating)  # a block of a donating step donates too
    _, m = blocks(b, np.tile(rows, (3, 1)))
    assert b.params.is_deleted() and m["loss"].shape == (3,)
    with pytest.raises(ValueError, match="donates its state"):
        jgd.guard(blocks)
    with pytest.raises(TypeError, match="donate='yes' is not valid"):
        jgd.with_data(jgd.make_step(LINE, tx), (X, y), donate="yes")


def conv_loss(p, batch):
    x, y = batch
    h = jax.lax.conv_general_dilated(
        x, p["k"], (1,), "SAME", dimension_numbers=("NWC", "WIO", "NWC")
    )
    return jnp.mean((jnp.tanh(h).mean((1, 2)) - y) ** 2)


def test_sweep_runs_batched_vmapped_or_in_turn_agree():
    rng = np.random.default_rng(2)
    data = (rng.normal(size=(40, 6, 1)).astype("float32"), rng.normal(size=40).astype("float32"))
    params = {"k": (rng.normal(size=(3, 1, 2)) * 0.5).astype("float32")}
    common = dict(optimizer=optax.sgd, learning_rate=[0.01, 0.05, 0.1], batch_size=4, key=0)
    results = {
        how: jgd.sweep(conv_loss, params, data, batch_runs=how, **common)
        for how in ("all", 1, 2, "auto")
    }
    for how, result in results.items():
        np.testing.assert_allclose(
            result.params["k"], results["all"].params["k"], rtol=2e-5, atol=1e-6, err_msg=how
        )
        np.testing.assert_allclose(result.final_loss, results["all"].final_loss, rtol=2e-5)
    config = _config.configure(
        conv_loss, params, data, optimizer=optax.sgd, learning_rate=0.1, key=0, mesh=None,
        options=RunOptions(batch_size=4),
    )  # fmt: skip
    assert _batch_runs.convolves(config, ())  # so "auto" ran them in turn
    assert _batch_runs.together("auto", config, 3, ()) == 1


def test_auto_runs_a_few_short_runs_in_turn_and_vmaps_many_or_long_ones():
    def config(epochs):  # 64 rows, batch 8: 8 steps an epoch
        options = RunOptions(batch_size=8, epochs=epochs)
        return _config.configure(LINE, jnp.zeros(2), _line(), optimizer=optax.sgd,
                                 learning_rate=0.1, key=0, mesh=None, options=options)  # fmt: skip

    short, long = config(4), config(64)  # 32 and 512 steps a run
    assert _batch_runs.together("auto", short, 16, ()) == 1  # 512 steps in all: in turn
    assert _batch_runs.together("auto", short, 17, ()) is None  # more runs: vmapped
    assert _batch_runs.together("auto", long, 8, ()) == 1  # 4,096 steps in all
    assert _batch_runs.together("auto", long, 9, ()) is None
    assert _batch_runs.together("all", short, 4, ()) is None  # asked for: vmapped
    few = jgd.sweep(LINE, jnp.zeros(2), _line(), optimizer=optax.sgd, batch_size=8, epochs=4,
                    key=0, learning_rate=[0.05, 0.1])  # fmt: skip
    vmapped = jgd.sweep(LINE, jnp.zeros(2), _line(), optimizer=optax.sgd, batch_size=8, epochs=4,
                        key=0, learning_rate=[0.05, 0.1], batch_runs="all")  # fmt: skip
    np.testing.assert_allclose(few.losses, vmapped.losses, rtol=1e-6)


@pytest.mark.parametrize("bad", [0, -2, "some", 1.5, True])
def test_sweep_refuses_a_bad_batch_runs(bad):
    with pytest.raises(ValueError, match="batch_runs="):
        jgd.sweep(LINE, jnp.zeros(2), _line(), optimizer=optax.sgd, learning_rate=[0.1],
                  batch_runs=bad)  # fmt: skip
