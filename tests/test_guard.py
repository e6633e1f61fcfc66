"""The default guard is exact: a NaN gradient under a finite loss, anywhere in a run, ends it at
that step with the params before it: bit for bit the clean run of the steps before, and the
result of the spec, a loop that checks every step's loss and gradient. In fit (with and without
order=, across chunk boundaries), in sweep, and in jgd.guard.

The spec's loop runs one jitted step per call, another program than a compiled loop; XLA CPU may
round a reduction inside a loop body differently (here: the 3-element dot, in the last bit), so
it is compared to 1e-6, and the clean prefix run, a compiled loop too, bit for bit.
"""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jgd

M = 24  # examples; the run is one epoch of SGD with B=1, so example i is seen exactly once


@jax.custom_jvp
def poison(w, flag):
    """``w`` itself, whose derivative is NaN where ``flag > 0``: a finite loss, a NaN gradient."""
    return w


@poison.defjvp
def _poison_jvp(primals, tangents):
    w, flag = primals
    return w, jnp.where(flag > 0, jnp.nan, 1.0) * tangents[0]


def make_loss(bad):
    def loss(w, batch):
        X, y, ids = batch
        w = poison(w, jnp.any(ids == bad).astype(w.dtype))
        return jnp.mean((X @ w - y) ** 2)

    return loss


def problem():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(M, 3)).astype(np.float32)
    y = (X @ np.array([1.0, -2.0, 0.5]) + 0.1 * rng.normal(size=M)).astype(np.float32)
    return (X, y, np.arange(M, dtype=np.int32)), np.zeros(3, np.float32)


def reference(loss, params, data, order, optimizer):
    """The spec: one jitted step at a time; the first step whose loss or gradient is not finite
    is not applied and ends the run."""
    step = jax.jit(jgd.make_step(loss, optimizer, grad_norm=True))
    state = jgd.TrainState.create(params, optimizer)
    for t, rows in enumerate(order):
        batch = jax.tree.map(lambda a, rows=rows: a[rows], data)
        new, metrics = step(state, batch)
        if not (np.isfinite(metrics["loss"]) and np.isfinite(metrics["grad_norm"])):
            return state, t
        state = new
    return state, None


def prefix(loss, params, data, order, t, optimizer, learning_rate=None, key=0):
    """The state after the first ``t`` (clean) steps, by a compiled loop of its own."""
    if t == 0:
        return jgd.TrainState.create(params, optimizer, key, learning_rate=learning_rate)
    return jgd.fit(
        loss,
        params,
        data,
        optimizer=optimizer,
        learning_rate=learning_rate,
        order=order[:t],
        key=key,
    ).state


def assert_same_state(got, want):
    for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(want), strict=True):
        np.testing.assert_array_equal(a, b)


def run_order(key):
    return jgd.shuffled_order(M, 1, epochs=1, key=key)


POSITIONS = {"first": 0, "middle": 11, "last chunk step": 7, "next chunk start": 8, "last": M - 1}


@pytest.mark.parametrize("where", list(POSITIONS))
@pytest.mark.parametrize("explicit", [True, False], ids=["order", "shuffled"])
def test_nan_gradient_under_finite_loss_stops_exactly(where, explicit):
    data, params = problem()
    order = run_order(key=3)
    bad = int(order[POSITIONS[where], 0])  # the example seen at that step
    loss = make_loss(bad)
    spec, t = reference(loss, params, data, order, optax.sgd(0.05))
    assert t == POSITIONS[where]
    want = prefix(loss, params, data, order, t, optax.sgd(0.05), key=0 if explicit else 3)
    plan = dict(order=order) if explicit else dict(batch_size=1, key=3)
    for chunked in (False, True):  # one chunk, or chunks of 8 (a report every 8 steps)
        reports = dict(report_every=8, callback=lambda p: None) if chunked else {}
        result = jgd.fit(
            loss, params, data, optimizer=optax.sgd(0.05), record_params=True, **plan, **reports
        )
        assert result.diverged and result.divergence == "non-finite"
        assert result.diverged_at == t
        assert_same_state(result.state, want)
        np.testing.assert_array_equal(result.params_history[t], want.params)
        np.testing.assert_allclose(result.params, spec.params, rtol=1e-6, atol=1e-7)
        assert np.isfinite(result.losses[: t + 1]).all() and np.isnan(result.losses[t + 1 :]).all()


@pytest.mark.parametrize("name", ["momentum", "adam"])
def test_exact_with_stateful_optimizers(name):
    data, params = problem()
    order = run_order(key=5)
    loss = make_loss(int(order[13, 0]))
    opt = {"momentum": optax.sgd(0.05, momentum=0.9), "adam": optax.adam(0.05)}[name]
    spec, t = reference(loss, params, data, order, opt)
    result = jgd.fit(loss, params, data, optimizer=opt, order=order)
    assert result.diverged_at == t == 13
    assert_same_state(result.state, prefix(loss, params, data, order, t, opt))
    np.testing.assert_allclose(result.params, spec.params, rtol=1e-6, atol=1e-7)


def test_sweep_runs_are_exact_and_equal_to_fit():
    data, params = problem()
    order = run_order(key=1)
    loss = make_loss(int(order[9, 0]))
    rates = [0.01, 0.05]
    swept = jgd.sweep(loss, params, data, optimizer=optax.sgd, learning_rate=rates, order=order)
    assert swept.diverged_at.tolist() == [9, 9]
    for i, lr in enumerate(rates):
        spec, t = reference(loss, params, data, order, optax.sgd(lr))
        single = jgd.fit(loss, params, data, optimizer=optax.sgd, learning_rate=lr, order=order)
        want = prefix(loss, params, data, order, t, optax.sgd, learning_rate=lr)
        np.testing.assert_array_equal(swept.params[i], want.params)
        np.testing.assert_array_equal(swept.params[i], single.params)
        np.testing.assert_allclose(swept.params[i], spec.params, rtol=1e-6, atol=1e-7)
        np.testing.assert_array_equal(swept.losses[i], single.losses)
        assert swept[i].diverged_at == single.diverged_at == t
        assert swept[i].divergence == single.divergence == "non-finite"


def test_sweep_with_seeds_replays_the_runs_that_blew_up():
    data, params = problem()
    seeds = [0, 1, 2]
    bad = int(run_order(key=1)[5, 0])  # seed 1 meets it at step 5; the others elsewhere
    loss = make_loss(bad)
    swept = jgd.sweep(
        loss, params, data, optimizer=optax.sgd, learning_rate=[0.05], seeds=seeds, batch_size=1
    )
    for i, seed in enumerate(seeds):
        order = run_order(seed)
        _, t = reference(loss, params, data, order, optax.sgd(0.05))
        assert swept[i].diverged_at == t
        want = prefix(loss, params, data, order, t, optax.sgd, learning_rate=0.05, key=seed)
        np.testing.assert_array_equal(swept.params[i], want.params)
    assert swept.diverged_at[1] == 5


def test_guard_loss_catches_it_one_step_later():
    data, params = problem()
    order = run_order(key=3)
    loss = make_loss(int(order[11, 0]))
    result = jgd.fit(loss, params, data, optimizer=optax.sgd(0.05), order=order, guard="loss")
    assert result.diverged_at == 12  # the loss turns NaN after the NaN update
    assert not np.isfinite(result.params).all()  # the params of that step, as documented


def test_an_update_that_overflows_ends_the_run_with_finite_params():
    slope = lambda w, b: 10.0 * jnp.sum(w)  # noqa: E731  (loss and gradient finite everywhere)
    # the first update, 2 - 1e38 * 10, overflows float32: the loss turns -inf a step later
    result = jgd.fit(
        slope, jnp.array([2.0]), jnp.zeros(1), optimizer=optax.sgd, learning_rate=1e38, epochs=5
    )
    assert result.diverged and result.divergence == "non-finite"
    assert result.diverged_at == 0
    np.testing.assert_array_equal(result.params, [2.0])


def test_max_loss_is_exact_across_chunks():
    bowl = lambda w, b: 0.5 * jnp.sum((w - 3.0) ** 2)  # noqa: E731
    kw = dict(optimizer=optax.sgd, learning_rate=2.5, epochs=40, max_loss=1e6)
    whole = jgd.fit(bowl, jnp.array([2.0]), jnp.zeros(1), **kw)
    chunked = jgd.fit(
        bowl, jnp.array([2.0]), jnp.zeros(1), report_every=3, callback=lambda p: None, **kw
    )
    assert whole.divergence == chunked.divergence == "max_loss"
    assert whole.diverged_at == chunked.diverged_at
    assert whole.losses[whole.diverged_at] > 1e6 >= whole.losses[whole.diverged_at - 1]
    np.testing.assert_array_equal(whole.params, chunked.params)


def test_guard_block_in_a_loop_of_ones_own_equals_fit():
    data, params = problem()
    order = run_order(key=3)
    loss = make_loss(int(order[13, 0]))
    opt = optax.sgd(0.05)
    guarded = jgd.guard(jgd.scan_steps(jgd.with_data(jgd.make_step(loss, opt), data)))
    state = jgd.TrainState.create(params, opt)
    stops = []
    for block in order.reshape(3, 8, 1):  # three blocks of eight steps
        state, metrics, stop = guarded(state, block)
        if stop is not None:
            stops.append(stop)
            break
    assert stops == [jgd.Stop(13, "non-finite")] and int(state.step) == 13
    result = jgd.fit(loss, params, data, optimizer=opt, order=order)
    np.testing.assert_array_equal(state.params, result.params)
    assert np.isnan(metrics["loss"][6:]).all() and np.isfinite(metrics["loss"][:6]).all()


def test_guard_refuses_what_it_cannot_replay():
    with pytest.raises(TypeError, match="not a block of steps"):
        jgd.guard(jgd.make_step(lambda w, b: jnp.sum(w**2), optax.sgd(0.1)))
    own = jgd.scan_steps(lambda s, x: (s, {"loss": jnp.zeros(())}))
    with pytest.raises(TypeError, match="made by jgd.make_step"):
        jgd.guard(own)
    with pytest.raises(ValueError, match="check='all'"):
        jgd.guard(jgd.scan_steps(jgd.make_step(lambda w, b: jnp.sum(w**2), optax.sgd)), check="all")


def test_a_clean_run_compiles_no_replay():
    """Nothing went wrong: only the plan's rows and the unchecked run are compiled."""
    data, params = problem()
    loss = make_loss(-1)  # no example is bad
    jgd.fit(loss, params, data, optimizer=optax.sgd, learning_rate=0.05, batch_size=1, key=0)
    before = jgd.compile_count()
    again = jgd.fit(
        loss, params, data, optimizer=optax.sgd, learning_rate=0.02, batch_size=4, key=0
    )
    assert jgd.compile_count() - before == 2  # the new plan's rows and the run: no replay
    assert np.isfinite(again.losses).all()  # it ran to the end


# --- the guard's decisions, with stand-ins for the compiled programs ------------------------


def _stand_ins(losses, end_finite, checked):
    """A stand-in block (``run(n)``, ``run(n, checked=True)``) recording the step counts it was
    asked for."""
    calls = []

    class Block:
        def run(self, n, checked_run=False):
            if checked_run:
                calls.append(("check", n))
                metrics = {k: np.array(v) for k, v in checked.items()}
                return f"checked state after {n}", metrics, None
            calls.append(("fast", n))
            return f"state after {n}", {"loss": np.array(losses, np.float32)}, end_finite

    return Block(), calls


def test_guard_decisions():
    from jgd import _guard

    clean = {"loss": [1.0] * 6, "grad_norm": [1.0] * 6, "state_finite": [True] * 6}
    # nothing wrong: one unchecked run, nothing else
    block, calls = _stand_ins([1.0] * 6, True, clean)
    assert _guard.run(block, 6)[2] is None and calls == [("fast", 6)]
    # a NaN loss at 4, a NaN gradient under a finite loss at 2: replay to 4, stop at 2
    nan_grad = {**clean, "grad_norm": [1.0, 1.0, np.nan, np.nan, np.nan, np.nan]}
    block, calls = _stand_ins([1, 1, 1, 1, np.nan, np.nan], False, nan_grad)
    state, metrics, stop = _guard.run(block, 6)
    assert stop == (2, "non-finite") and state == "state after 2"
    assert calls == [("fast", 6), ("check", 5), ("fast", 2)]
    assert np.isfinite(metrics["loss"][:3]).all() and np.isnan(metrics["loss"][3:]).all()
    # the end state alone is not finite: the whole block is checked; an update at 5 blew up
    bad_update = {**clean, "state_finite": [True] * 5 + [False]}
    block, calls = _stand_ins([1.0] * 6, False, bad_update)
    assert _guard.run(block, 6)[2] == (5, "non-finite")
    assert calls == [("fast", 6), ("check", 6), ("fast", 5)]
    # the checked replay sees nothing wrong: its state is the block's, in the fast layout
    block, calls = _stand_ins([1.0] * 6, False, clean)
    state, metrics, stop = _guard.run(block, 6)
    assert stop is None and state == "checked state after 6" and set(metrics) == {"loss"}
    # guard="loss": no checked replay; a finite loss with a non-finite end is not a stop
    block, calls = _stand_ins([1.0] * 6, False, clean)
    assert _guard.run(block, 6, guard="loss")[2] is None and calls == [("fast", 6)]
    # max_loss counts from the losses; "max_loss" is the reason
    block, calls = _stand_ins([1, 2, 50, 1, 1, 1], True, {**clean, "loss": [1, 2, 50] + [1] * 3})
    assert _guard.run(block, 6, max_loss=10.0)[2] == (2, "max_loss")
