"""The gradient noise scale B = tr(Σ)/‖G‖² against NumPy, chunking, and bad input."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jgd


def linear_regression(m=300, d=5, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(m, d))
    y = X @ rng.normal(size=d) + 0.5 * rng.normal(size=m)
    loss = lambda w, batch: 0.5 * jnp.mean((batch[0] @ w - batch[1]) ** 2)  # noqa: E731
    return loss, X, y


def numpy_noise_scale(X, y, w):
    """Per-example gradients of ½(xᵢ·w - yᵢ)² are (xᵢ·w - yᵢ) xᵢ: the formula by hand."""
    g = (X @ w - y)[:, None] * X
    G = g.mean(0)
    trace = np.mean(np.sum((g - G) ** 2, axis=1))
    return trace / np.sum(G**2), trace, np.sum(G**2)


@pytest.mark.parametrize("chunk_size", [1, 7, 64, 1000])
def test_noise_scale_equals_the_formula_on_linear_regression(x64, chunk_size):
    loss, X, y = linear_regression()
    w = np.full(5, 0.3)
    got = jgd.gradient_noise_scale(loss, jnp.asarray(w), (X, y), chunk_size=chunk_size)
    want, trace, sq = numpy_noise_scale(X, y, w)
    assert got.examples == 300
    np.testing.assert_allclose(
        [got.simple, got.trace_covariance, got.grad_sq_norm], [want, trace, sq], rtol=1e-9
    )
    assert float(got) == got.simple


def test_noise_scale_float32_within_5_percent_of_numpy():
    loss, X, y = linear_regression(m=1000, d=20, seed=3)
    w = np.zeros(20)
    got = jgd.gradient_noise_scale(
        loss, jnp.asarray(w, jnp.float32), (X.astype(np.float32), y.astype(np.float32))
    )
    want = numpy_noise_scale(X, y, w)[0]
    assert abs(got.simple / want - 1) < 0.05


def test_noise_scale_grows_near_the_optimum():
    """At the least-squares solution G → 0 while the per-example noise stays: B grows."""
    loss, X, y = linear_regression()
    w_star = np.linalg.lstsq(X, y, rcond=None)[0]
    far = jgd.gradient_noise_scale(loss, jnp.zeros(5), (X, y))
    near = jgd.gradient_noise_scale(loss, jnp.asarray(w_star + 0.01), (X, y))
    assert near.simple > 100 * far.simple


def test_noise_scale_on_an_mlp_pytree():
    mlp = jgd.problems.mlp("digits", hidden=16)
    X, y = (np.asarray(a[:200]) for a in mlp.data)
    got = jgd.gradient_noise_scale(mlp.loss, mlp.params, (X, y), chunk_size=64)
    per = [jax.grad(mlp.loss)(mlp.params, (X[i : i + 1], y[i : i + 1])) for i in range(200)]
    flat = np.stack(
        [np.concatenate([np.ravel(v) for v in jax.tree.leaves(g)]) for g in per]
    ).astype(np.float64)
    G = flat.mean(0)
    want = np.mean(np.sum((flat - G) ** 2, 1)) / np.sum(G**2)
    assert abs(got.simple / want - 1) < 0.05


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(data=(np.ones((1, 5)), np.ones(1))), "1 example.*at least 2"),
        (dict(data=(np.ones((300, 5)), np.ones(300)), chunk_size=0), "chunk_size"),
        (dict(loss=3), "loss=.*not callable"),
        (dict(params=jnp.zeros(5, jnp.int32)), "params"),
    ],
)
def test_bad_input_is_named(kwargs, match):
    loss, X, y = linear_regression()
    args = dict(loss=loss, params=jnp.zeros(5), data=(X, y)) | kwargs
    with pytest.raises((ValueError, TypeError), match=match):
        jgd.gradient_noise_scale(args.pop("loss"), args.pop("params"), args.pop("data"), **args)
