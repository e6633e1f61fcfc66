"""Losses with aux outputs, ``loss -> (value, aux)``, through every layer (``has_aux=True``)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jgd

rng = np.random.default_rng(1)
X = rng.normal(size=(48, 4)).astype(np.float64)
LABELS = rng.integers(0, 3, size=48)
W0 = {"w": rng.normal(size=(4, 3)) * 0.1, "b": np.zeros(3)}  # float64: the tests run in x64
pytestmark = pytest.mark.usefixtures("x64")


def loss_and_accuracy(params, batch):
    x, y = batch
    logits = x @ params["w"] + params["b"]
    value = jnp.mean(optax.softmax_cross_entropy_with_integer_labels(logits, y))
    accuracy = jnp.mean(jnp.argmax(logits, -1) == y)
    return value, {"accuracy": accuracy, "logit_mean": jnp.mean(logits, 0)}


def value_only(params, batch):
    return loss_and_accuracy(params, batch)[0]


@pytest.mark.parametrize("mode", jgd.MODES)
def test_value_and_grad_with_aux_in_every_mode(mode):
    batch = (X, LABELS)
    f = jgd.value_and_grad(loss_and_accuracy, mode, has_aux=True)
    (value, aux), grads = f(W0, batch, key=jax.random.key(0))
    expected_value, expected_aux = loss_and_accuracy(W0, batch)
    np.testing.assert_allclose(value, expected_value, rtol=1e-12)
    np.testing.assert_allclose(aux["accuracy"], expected_aux["accuracy"])
    np.testing.assert_allclose(aux["logit_mean"], expected_aux["logit_mean"], rtol=1e-12)
    plain = jgd.value_and_grad(value_only, mode)(W0, batch, key=jax.random.key(0))[1]
    for a, b in zip(jax.tree.leaves(grads), jax.tree.leaves(plain), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)  # the same gradient as without


def test_fit_records_aux_per_step_equal_to_a_hand_loop():
    order = np.random.default_rng(0).integers(0, 48, size=(30, 8))
    result = jgd.fit(
        loss_and_accuracy, W0, (X, LABELS), optimizer=optax.adam, learning_rate=0.05,
        order=order, has_aux=True,
    )  # fmt: skip
    opt = optax.adam(0.05)
    params, state = W0, opt.init(W0)
    accuracies, means = [], []
    for rows in order:
        batch = (X[rows], LABELS[rows])
        (_, aux), g = jax.value_and_grad(loss_and_accuracy, has_aux=True)(params, batch)
        accuracies.append(aux["accuracy"])
        means.append(aux["logit_mean"])
        updates, state = opt.update(g, state, params)
        params = optax.apply_updates(params, updates)
    np.testing.assert_allclose(result.aux["accuracy"], accuracies, rtol=1e-10)
    np.testing.assert_allclose(result.aux["logit_mean"], means, rtol=1e-9, atol=1e-12)
    assert result.aux["logit_mean"].shape == (30, 3)
    assert result.columns["aux"] is result.aux
    np.testing.assert_allclose(result.params["w"], params["w"], rtol=1e-9)


def test_make_step_sweep_and_the_guard_with_aux():
    step = jax.jit(jgd.make_step(loss_and_accuracy, optax.sgd(0.1), has_aux=True))
    state = jgd.TrainState.create(W0, optax.sgd(0.1))
    state, metrics = step(state, (X, LABELS))
    assert set(metrics) == {"loss", "aux"} and metrics["aux"]["accuracy"].shape == ()
    swept = jgd.sweep(
        loss_and_accuracy, W0, (X, LABELS), optimizer=optax.sgd, learning_rate=[0.1, 0.5],
        epochs=5, has_aux=True,
    )  # fmt: skip
    assert swept.aux["accuracy"].shape == (2, 5)
    alone = jgd.fit(
        loss_and_accuracy, W0, (X, LABELS), optimizer=optax.sgd, learning_rate=0.5, epochs=5,
        has_aux=True,
    )  # fmt: skip
    np.testing.assert_allclose(swept[1].aux["accuracy"], alone.aux["accuracy"])
    # a run the guard stops: aux after the stop is NaN, like the loss
    blown = jgd.fit(
        loss_and_accuracy, W0, (X, LABELS), optimizer=optax.sgd, learning_rate=1e300,
        epochs=6, has_aux=True, max_loss=10.0,
    )  # fmt: skip
    assert blown.divergence == "max_loss" and blown.diverged_at == 1
    assert (
        np.isnan(blown.aux["accuracy"][2:]).all() and np.isfinite(blown.aux["accuracy"][:2]).all()
    )


def test_a_tuple_without_has_aux_and_a_scalar_with_it_are_named():
    with pytest.raises(ValueError, match="pass has_aux=True"):
        jgd.fit(loss_and_accuracy, W0, (X, LABELS), optimizer=optax.sgd, learning_rate=0.1)
    with pytest.raises(ValueError, match="has_aux=True"):
        jgd.fit(value_only, W0, (X, LABELS), optimizer=optax.sgd, learning_rate=0.1, has_aux=True)
    with pytest.raises(ValueError, match="pass has_aux=True"):
        jgd.value_and_grad(loss_and_accuracy)(W0, (X, LABELS))
    with pytest.raises(TypeError, match="aux"):
        jgd.fit(
            lambda p, b: (value_only(p, b), "text"), W0, (X, LABELS), optimizer=optax.sgd,
            learning_rate=0.1, has_aux=True,
        )  # fmt: skip
    with pytest.raises(TypeError, match="has_aux=1"):
        jgd.make_step(loss_and_accuracy, optax.sgd(0.1), has_aux=1)


# --- optax wrappers as optimizers -----------------------------------------------------------


def _hand_loop(transformation, params, batches):
    """The same optax code written by hand: value_and_grad, update, apply_updates."""
    state = transformation.init(params)
    for batch in batches:
        g = jax.grad(value_only)(params, batch)
        updates, state = transformation.update(g, state, params)
        params = optax.apply_updates(params, updates)
    return params


def _wrappers():
    def decay_mask(params):
        return {"w": True, "b": False}  # weight decay on weights, none on the bias

    labels = {"w": "adam", "b": "sgd"}
    return {
        "MultiSteps": lambda: optax.MultiSteps(optax.adam(0.05), every_k_schedule=3),
        "masked": lambda: optax.chain(
            optax.masked(optax.add_decayed_weights(0.1), decay_mask), optax.sgd(0.1)
        ),
        "multi_transform": lambda: optax.multi_transform(
            {"adam": optax.adam(0.05), "sgd": optax.sgd(0.1)}, labels
        ),
        "inject_hyperparams": lambda: optax.inject_hyperparams(optax.adamw)(
            learning_rate=0.05, weight_decay=0.01
        ),
    }


@pytest.mark.parametrize("name", list(_wrappers()))
def test_optax_wrappers_are_optimizers_equal_to_the_hand_written_loop(name):
    make = _wrappers()[name]
    order = np.random.default_rng(2).integers(0, 48, size=(12, 8))
    result = jgd.fit(value_only, W0, (X, LABELS), optimizer=make(), order=order)
    params = jax.tree.map(jnp.asarray, W0)
    expected = _hand_loop(make(), params, [(X[r], LABELS[r]) for r in order])
    for a, b in zip(jax.tree.leaves(result.params), jax.tree.leaves(expected), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-15)
    step = jax.jit(jgd.make_step(value_only, make()))
    state = jgd.TrainState.create(params, make())
    for rows in order:
        state, _ = step(state, (X[rows], LABELS[rows]))
    for a, b in zip(jax.tree.leaves(state.params), jax.tree.leaves(expected), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-15)


# --- modes that cannot run are skipped, not crashed on ------------------------------------


@jax.custom_vjp
def _clipped_sin(x):
    return jnp.sin(x)


_clipped_sin.defvjp(lambda x: (jnp.sin(x), x), lambda x, g: (g * jnp.cos(x),))


def _custom_vjp_loss(w, b):
    return jnp.sum(_clipped_sin(w) * b)


def _while_loss(w, b):  # w^4 by a while loop: reverse mode cannot differentiate it
    out = jax.lax.while_loop(lambda c: c[1] < 3, lambda c: (c[0] * w, c[1] + 1), (w, 0))[0]
    return jnp.sum(out * b)


def test_check_grads_skips_the_modes_a_loss_cannot_run_and_compares_the_rest():
    w, b = jnp.array([0.3, -1.2]), jnp.array([1.0, 2.0])
    report = jgd.check_grads(_custom_vjp_loss, w, b)
    assert report.reference == "reverse"
    for mode in ("forward", "forward_gradient"):
        assert "forward-mode autodiff" in report[mode].skipped and np.isnan(
            report[mode].relative_error
        )
    for mode in ("reverse", "fd_forward", "fd_central"):
        assert report[mode].skipped is None and report[mode].relative_error < 1e-2
    assert "skipped: can't apply forward-mode" in str(report)
    report = jgd.check_grads(_while_loss, w, b)
    assert report.reference == "forward"  # reverse mode cannot run: the exact forward mode
    assert "Reverse-mode differentiation" in report["reverse"].skipped
    assert report["forward"].relative_error == 0 and report["fd_central"].relative_error < 1e-3
    only = jgd.check_grads(_custom_vjp_loss, w, b, modes=("fd_central",))
    assert [r.mode for r in only.rows] == ["fd_central"]  # modes= honoured: nothing else runs
    timed = jgd.check_grads(_custom_vjp_loss, w, b, modes=("reverse", "forward"), timing=True)
    assert "forward cannot run here: skipped" in timed.verdict


def test_compare_modes_skips_a_mode_that_cannot_run():
    report = jgd.compare_modes(lambda x: _clipped_sin(x) * 2.0, jnp.ones(3), repeats=2)
    assert report["forward"].skipped and report["reverse"].skipped is None
    assert report.fastest == "reverse" and "skipped" in str(report)
    only = jgd.compare_modes(lambda x: _clipped_sin(x), jnp.ones(3), modes=("reverse",), repeats=2)
    assert [r.mode for r in only.rows] == ["reverse"]


def test_a_loss_with_a_bug_is_still_an_error_in_check_grads():
    with pytest.raises(ValueError, match="must return a scalar"):
        jgd.check_grads(lambda w, b: w * b, jnp.ones(2), jnp.ones(2))
