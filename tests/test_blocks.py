"""The public blocks: make_step, with_data, scan_steps, TrainState.create. A loop built from them
is fit's loop: equal results bitwise, no recompilation when only values change, clear errors."""

import contextlib
import functools
import logging

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

import jgd

LINE = jgd.problems.line_loss


def mlp_problem(m=256):
    rng = np.random.default_rng(0)
    X = rng.uniform(size=(m, 20)).astype(np.float32)
    y = rng.integers(0, 5, m).astype(np.int32)
    apply, params = jgd.models.functional(jgd.models.MLP(20, 16, 5, rngs=nnx.Rngs(0)))
    return jgd.models.classification_loss(apply), params, (X, y)


def assert_trees_equal(a, b):
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        np.testing.assert_array_equal(x, y)


@contextlib.contextmanager
def no_compiles(caplog):
    """Fails if anything is compiled inside the block."""
    with caplog.at_level(logging.WARNING, logger="jax"), jax.log_compiles(True):
        yield
    compiles = [r.getMessage()[:120] for r in caplog.records if "Compiling" in r.getMessage()]
    assert compiles == []


# --- a loop of one's own is fit's loop ------------------------------------------------------


@pytest.mark.parametrize("name", ["sgd", "adam"])
def test_a_loop_of_with_data_steps_equals_fit_bitwise(name):
    loss, params, data = mlp_problem()
    factory = {"sgd": optax.sgd, "adam": optax.adam}[name]
    order = jgd.shuffled_order(256, 8, epochs=2, key=4)
    result = jgd.fit(loss, params, data, optimizer=factory, learning_rate=0.01, order=order)
    step = jgd.with_data(jgd.make_step(loss, factory), data)
    state = jgd.TrainState.create(params, factory, learning_rate=0.01)
    losses = []
    for rows in order:
        state, metrics = step(state, rows)
        losses.append(metrics["loss"])
    assert_trees_equal(state, result.state)
    np.testing.assert_array_equal(np.array(losses), result.losses)


def test_scan_steps_equals_single_steps_and_counts_a_prefix():
    loss, params, data = mlp_problem()
    opt = optax.adam(0.01)
    step = jgd.with_data(jgd.make_step(loss, opt, grad_norm=True), data)
    steps = jgd.scan_steps(step)
    rows = jgd.shuffled_order(256, 16, epochs=1, key=0)  # (16, 16): 16 steps
    start = jgd.TrainState.create(params, opt)
    state, single = start, []
    for r in rows:
        state, metrics = step(state, r)
        single.append(metrics)
    scanned, stacked = steps(start, rows)
    assert_trees_equal(scanned, state)
    for name in ("loss", "grad_norm"):
        np.testing.assert_array_equal(stacked[name], [m[name] for m in single])
    counted, part = steps(start, rows, 5)  # the same program, five steps
    assert int(counted.step) == 5
    np.testing.assert_array_equal(part["loss"][:5], stacked["loss"][:5])
    assert np.isnan(part["loss"][5:]).all()
    five = start
    for r in rows[:5]:
        five, _ = step(five, r)
    assert_trees_equal(counted, five)
    assert int(steps(start, rows, 0)[0].step) == 0
    with pytest.raises(ValueError, match="count=99 is not valid; expected an int from 0 to 16"):
        steps(start, rows, 99)  # a host int is checked
    assert int(steps(start, rows, jnp.array(99))[0].step) == 16  # a device int: clamped


def test_scan_steps_of_a_plain_step_scans_batches():
    opt = optax.sgd(0.1)
    step = jgd.make_step(lambda w, b: 0.5 * jnp.sum((w - b) ** 2), opt)
    batches = jnp.arange(12.0).reshape(4, 3)
    state, metrics = jgd.scan_steps(step)(jgd.TrainState.create(jnp.zeros(3), opt), batches)
    want = jgd.TrainState.create(jnp.zeros(3), opt)
    for b in batches:
        want, _ = jax.jit(step)(want, b)
    np.testing.assert_allclose(state.params, want.params, rtol=1e-6)
    assert metrics["loss"].shape == (4,)


def test_the_batch_is_gathered_from_the_rows():
    X = np.arange(10.0, dtype=np.float32)[:, None]
    seen = jgd.make_step(lambda w, b: jnp.sum(w) * 0 + jnp.sum(b), optax.sgd(0.0))
    step = jgd.with_data(seen, X)
    state = jgd.TrainState.create(jnp.zeros(1), optax.sgd(0.0))
    assert float(step(state, np.array([2, 7]))[1]["loss"]) == 9.0
    assert float(step(state, jnp.array([0, 0, 9]))[1]["loss"]) == 9.0


def test_blocks_compose_under_vmap():
    X, y = np.random.default_rng(0).normal(size=(40, 2)), np.ones(40)
    step = jgd.with_data(jgd.make_step(LINE, optax.sgd), (X, y))
    states = jax.vmap(lambda lr: jgd.TrainState.create(jnp.zeros(2), optax.sgd, learning_rate=lr))(
        jnp.array([0.01, 0.1])
    )
    rows = np.arange(40).reshape(10, 4)
    out, _ = jax.vmap(jgd.scan_steps(step), in_axes=(0, None))(states, rows)
    for i, lr in enumerate([0.01, 0.1]):
        one, _ = jgd.scan_steps(step)(
            jgd.TrainState.create(jnp.zeros(2), optax.sgd, learning_rate=lr), rows
        )
        np.testing.assert_allclose(out.params[i], one.params, rtol=1e-6)


# --- compiled means compiled ----------------------------------------------------------------


def test_no_recompilation_when_only_values_change(caplog):
    loss, params, data = mlp_problem()
    step = jgd.with_data(jgd.make_step(loss, optax.adam), data)
    steps = jgd.scan_steps(step)
    state = jgd.TrainState.create(params, optax.adam, learning_rate=0.01)
    rows = np.arange(32).reshape(4, 8)
    step(state, rows[0])
    steps(state, rows)
    steps(state, rows, 2)
    other = (data[0] * 2, data[1][::-1].copy())
    with no_compiles(caplog):
        for lr in (0.1, 0.001):  # another learning rate: a value in the state
            fresh = jgd.TrainState.create(params, optax.adam, learning_rate=lr, key=7)
            step(fresh, rows[1])
            steps(fresh, rows[::-1])
            steps(fresh, rows, 3)
        # the same step made again, and other data of the same shapes: the same program
        again = jgd.with_data(jgd.make_step(loss, optax.adam), other)
        again(state, rows[2])
        jgd.scan_steps(again)(state, rows)


def test_a_factory_and_its_numbers_equal_the_ready_transformation():
    loss, params, data = mlp_problem()
    batch = jax.tree.map(lambda a: a[:8], data)
    momentum = functools.partial(optax.sgd, momentum=0.9)
    ready = jax.jit(jgd.make_step(loss, optax.sgd(0.05, momentum=0.9)))
    factory = jax.jit(jgd.make_step(loss, momentum))
    state_a = jgd.TrainState.create(params, optax.sgd(0.05, momentum=0.9))
    state_b = jgd.TrainState.create(params, momentum, learning_rate=0.05)
    assert float(state_b.opt_state.hyperparams["momentum"]) == pytest.approx(0.9)
    for _ in range(3):
        state_a, _ = ready(state_a, batch)
        state_b, _ = factory(state_b, batch)
    for a, b in zip(jax.tree.leaves(state_a.params), jax.tree.leaves(state_b.params), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
    # the numbers are the state's: the step itself does not depend on them
    assert jgd.make_step(loss, optax.sgd) == jgd.make_step(loss, optax.sgd, learning_rate=0.3)


# --- bad input --------------------------------------------------------------------------------


def _line_step():
    X, y = np.zeros((10, 2), np.float32), np.zeros(10, np.float32)
    state = jgd.TrainState.create(jnp.zeros(2), optax.sgd(0.1))
    return jgd.with_data(jgd.make_step(LINE, optax.sgd(0.1)), (X, y)), state


@pytest.mark.parametrize(
    "rows,error,match",
    [
        (np.array([0.0, 1.0]), TypeError, r"rows has dtype float64; expected integer"),
        (jnp.array([0.0, 1.0]), TypeError, r"rows has dtype float32; expected a 1-D int"),
        (np.array([[0, 1], [2, 3]]), ValueError, r"rows has shape \(2, 2\); expected a 1-D"),
        (np.array([3, 10]), ValueError, r"rows holds index 10, outside \[0, 10\)"),
        (np.array([-1, 2]), ValueError, r"rows holds index -1"),
    ],
)
def test_with_data_refuses_rows_that_are_not_a_batch(rows, error, match):
    step, state = _line_step()
    with pytest.raises(error, match=match):
        step(state, rows)


def test_scan_steps_refuses_xs_whose_leading_axes_differ():
    steps = jgd.scan_steps(jgd.make_step(LINE, optax.sgd(0.1)))
    state = jgd.TrainState.create(jnp.zeros(2), optax.sgd(0.1))
    with pytest.raises(ValueError, match=r"disagree on their leading axis.*xs\[0\]: 3, xs\[1\]: 4"):
        steps(state, (np.zeros((3, 5, 2)), np.zeros((4, 5))))
    with pytest.raises(ValueError, match="needs a leading axis"):
        steps(state, np.float32(1.0))


@pytest.mark.parametrize(
    "call,error,match",
    [
        (lambda: jgd.with_data("step", np.zeros((3, 1))), TypeError, "step='step' is not callable"),
        (
            lambda: jgd.with_data(
                jgd.make_step(LINE, optax.sgd(0.1)), (np.zeros((3, 1)), np.zeros(2))
            ),
            ValueError,
            r"disagree.*data\[0\]: 3, data\[1\]: 2",
        ),
        (lambda: jgd.scan_steps(3), TypeError, "step=3 is not callable"),
        (lambda: jgd.make_step(LINE, optax.sgd(0.1), learning_rate=0.1), ValueError, "already has"),
        (lambda: jgd.make_step(LINE, optax.sgd, grad_norm="yes"), TypeError, "grad_norm='yes'"),
        (lambda: jgd.make_step(LINE, optax.sgd, mode="up"), ValueError, "mode='up'"),
        (
            lambda: jgd.make_step(LINE, optax.sgd, learning_rate=-1.0),
            ValueError,
            "learning_rate=-1",
        ),
        (
            lambda: jgd.TrainState.create(jnp.zeros(2), optax.sgd),
            ValueError,
            "learning_rate is required",
        ),
        (lambda: jgd.TrainState.create(jnp.zeros(2), 0.1), TypeError, "optimizer=0.1 is not valid"),
        (
            lambda: jgd.TrainState.create(jnp.zeros(2), optax.sgd(0.1), key=10**30),
            ValueError,
            "key=",
        ),
    ],
)
def test_blocks_refuse_bad_arguments_at_the_call(call, error, match):
    with pytest.raises(error, match=match):
        call()


def test_a_state_made_with_another_optimizer_is_named():
    step = jax.jit(jgd.make_step(LINE, optax.sgd))  # numbers expected in the state
    state = jgd.TrainState.create(jnp.zeros(2), optax.sgd(0.1))
    batch = (np.zeros((4, 2), np.float32), np.zeros(4, np.float32))
    with pytest.raises(TypeError, match=r"holds a tuple.*takes numbers \['learning_rate'\]"):
        step(state, batch)
    with pytest.raises(TypeError, match="state is a tuple; expected a jgd.TrainState"):
        jgd.make_step(LINE, optax.sgd(0.1))((jnp.zeros(2), ()), batch)
