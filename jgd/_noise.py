"""The gradient noise scale (McCandlish et al. 2018, "An Empirical Model of Large-Batch Training").

For a loss that is a mean over examples, let G be the gradient of the whole data and Σ the
covariance of one example's gradient about it. The simple noise scale

    B_simple = tr(Σ) / ‖G‖²

predicts the critical batch size: batches much smaller than it waste steps on noise, batches much
larger buy little per step. Here the data *is* the distribution, so both are exact over it:
G = mean of the per-example gradients gᵢ, tr(Σ) = mean ‖gᵢ‖² - ‖G‖² (population covariance).
The per-example gradients are taken by ``jax.vmap`` over chunks of ``chunk_size`` examples inside
one ``lax.scan``, accumulating Σ gᵢ and Σ ‖gᵢ‖²: memory is one chunk's gradients, whatever m is.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jgd import _batching, _compile, _errors, _modules, _tensors


class NoiseScale(NamedTuple):
    """What ``gradient_noise_scale`` returns: ``B_simple = tr(Σ) / ‖G‖²`` and its parts.

    ``float(noise)`` is ``noise.simple``.

    Attributes:
      simple: ``tr(Σ) / ‖G‖²``, the estimate of the critical batch size.
      trace_covariance: ``tr(Σ)``, the per-example gradient's variance, summed over the params.
      grad_sq_norm: ``‖G‖²``, the squared norm of the gradient over all the examples.
      examples: the number of examples it was measured on.

    Examples:
      >>> import jax.numpy as jnp, jgd
      >>> loss = lambda w, batch: jnp.mean((batch[0] @ w - batch[1]) ** 2)
      >>> X, y = jnp.ones((4, 1)), jnp.array([0.0, 2.0, 4.0, 6.0])
      >>> noise = jgd.gradient_noise_scale(loss, jnp.array([0.0]), (X, y))
      >>> round(noise.simple, 4), noise.trace_covariance, noise.grad_sq_norm, noise.examples
      (0.5556, 20.0, 36.0, 4)
    """

    simple: float
    trace_covariance: float
    grad_sq_norm: float
    examples: int

    def __float__(self) -> float:
        return float(self.simple)


def gradient_noise_scale(loss: Any, params: Any, data: Any, *, chunk_size: int = 256) -> NoiseScale:
    """The simple gradient noise scale ``B = tr(Σ)/‖G‖²`` of ``loss`` at ``params`` over ``data``.

    One compiled program (the per-example gradients, their mean and the batch gradient), kept
    for the next call with the same ``loss`` and shapes.

    Args:
      loss: ``loss(params, batch) -> scalar``, the mean over a batch (each example's gradient is
        the loss's gradient on a batch of that one example).
      params: where to measure: a pytree, or an ``nnx.Module`` with ``loss(model, batch)``
        (the gradients in its ``nnx.Param``s, at its state, which is not written).
      data: the examples, a pytree of arrays with a leading example axis (at least 2 examples;
        torch tensors are read as the NumPy arrays they hold).
      chunk_size: examples whose gradients are held at once.

    Returns:
      A ``NoiseScale``: ``.simple`` (B), ``.trace_covariance``, ``.grad_sq_norm``, ``.examples``.

    Examples:
      >>> import jax.numpy as jnp
      >>> import jgd
      >>> loss = lambda w, batch: jnp.mean((batch[0] @ w - batch[1]) ** 2)
      >>> X, y = jnp.array([[1.0], [1.0], [1.0], [1.0]]), jnp.array([0.0, 2.0, 4.0, 6.0])
      >>> noise = jgd.gradient_noise_scale(loss, jnp.array([0.0]), (X, y))
      >>> float(noise.grad_sq_norm), float(noise.trace_covariance), float(noise)
      (36.0, 20.0, 0.5555555555555556)
    """
    if not callable(loss):
        raise TypeError(
            f"loss={_errors.describe(loss)} is not callable; expected loss(params, batch)."
        )
    chunk_size = _errors.positive_int("chunk_size", chunk_size)
    data = _tensors.as_numpy(data)  # torch tensors: the arrays they hold
    leaves = jax.tree_util.tree_leaves(data)
    m = int(np.shape(leaves[0])[0]) if leaves and np.ndim(leaves[0]) else 0
    if m < 2:
        raise ValueError(
            f"data has {m} example(s); the gradient noise scale needs at least 2 (it is a "
            "variance across examples)."
        )
    params, model_state = _modules.split(params) if _modules.is_module(params) else (params, None)
    _errors.float_params("params", params)
    _errors.finite_params("params", params)  # else the premise check would blame the loss
    _batching.check_finite(data)
    data = jax.device_put(data)
    static = (loss, m, min(chunk_size, m))
    measured = _compile.concrete(_measured, static, params, model_state, data)
    mean_sq, grad_sq, diff, batch_norm = (float(x) for x in measured)
    # the premise: the mean of the per-example gradients is the batch gradient (a loss that
    # centres by the batch's mean, or BatchNorm, breaks it, and the variance means nothing)
    check_premise(f"loss={_errors.describe(loss)}", diff, max(batch_norm, mean_sq**0.5), params)
    trace = max(mean_sq - grad_sq, 0.0)
    return NoiseScale(trace / max(grad_sq, np.finfo(np.float64).tiny), trace, grad_sq, m)


def _measured(static: tuple, params: Any, model_state: Any, data: Any) -> tuple:
    """``(mean ‖gᵢ‖², ‖G‖², ‖G - batch gradient‖, ‖batch gradient‖)`` over ``data``, G the
    mean of the per-example gradients gᵢ: one program."""
    loss, m, chunk = static
    if model_state is not None:
        loss = _modules.user_form(loss, model_state, False)
    total, sq = sums(loss, params, data, m, chunk)
    mean = jax.tree_util.tree_map(lambda s: s / m, total)
    batch = jax.grad(loss)(params, data)
    diff = optax.tree.norm(jax.tree_util.tree_map(jnp.subtract, mean, batch))
    return sq / m, optax.tree.norm(mean, squared=True), diff, optax.tree.norm(batch)


def premise(loss: Any, params: Any, data: Any) -> tuple[jax.Array, jax.Array]:
    """``(|mean of per-example gradients - batch gradient|, their scale)`` of ``loss`` on
    ``data``, traced (``fit(noise_scale_every=...)`` checks it once before its run)."""
    m = int(np.shape(jax.tree_util.tree_leaves(data)[0])[0])
    total, sq = sums(loss, params, data, m, m)
    mean = jax.tree_util.tree_map(lambda s: s / m, total)
    batch = jax.grad(loss)(params, data)
    diff = optax.tree.norm(jax.tree_util.tree_map(jnp.subtract, mean, batch))
    return diff, jnp.maximum(optax.tree.norm(batch), jnp.sqrt(sq / m))


def check_premise(what: str, diff: float, scale: float, params: Any) -> None:
    """Raises when ``diff`` exceeds sqrt(eps) of the params' dtype at ``scale``: the rounding of
    summing the per-example gradients (see ``premise``)."""
    scale = max(float(scale), np.finfo(np.float64).tiny)
    tolerance = float(jnp.finfo(jnp.result_type(*jax.tree.leaves(params))).eps) ** 0.5
    if not float(diff) <= tolerance * scale:
        raise ValueError(
            f"{what} is not a mean of per-example losses here: the mean of its per-example "
            f"gradients differs from its batch gradient by {float(diff) / scale:.2g} (relative). "
            "The gradient noise scale needs loss(params, batch) = the mean over the batch's "
            "examples of each one's loss (no batch statistics, no centring by the batch)."
        )


def simple(loss: Any, params: Any, data: Any, chunk_size: int = 256) -> jax.Array:
    """``B_simple`` as a traced scalar (inside a compiled run: ``fit(noise_scale_every=N)``)."""
    m = int(np.shape(jax.tree_util.tree_leaves(data)[0])[0])
    total, sq = sums(loss, params, data, m, min(chunk_size, m))
    grad_sq = optax.tree.norm(jax.tree_util.tree_map(lambda s: s / m, total), squared=True)
    trace = jnp.maximum(sq / m - grad_sq, 0.0)
    return trace / jnp.maximum(grad_sq, jnp.finfo(grad_sq.dtype).tiny)


def sums(loss, params, data, m, chunk):
    """Σ gᵢ and Σ ‖gᵢ‖² over the examples, ``chunk`` per-example gradients at a time."""
    chunks = -(-m // chunk)
    idx = jnp.arange(chunks * chunk).reshape(chunks, chunk)

    def one(i):
        example = jax.tree_util.tree_map(lambda a: a[i][None], data)
        return jax.grad(loss)(params, example)

    def body(carry, rows):
        total, sq = carry
        valid = rows < m
        grads = jax.vmap(one)(jnp.minimum(rows, m - 1))
        grads = jax.tree_util.tree_map(lambda g: jnp.where(_bcast(valid, g), g, 0), grads)
        per_sq = sum(jnp.sum(g.reshape(chunk, -1) ** 2, axis=1) for g in jax.tree.leaves(grads))
        total = jax.tree_util.tree_map(lambda t, g: t + jnp.sum(g, axis=0), total, grads)
        return (total, sq + jnp.sum(per_sq)), None

    zeros = jax.tree_util.tree_map(jnp.zeros_like, params)
    dtype = jnp.result_type(*jax.tree.leaves(params))
    (total, sq), _ = jax.lax.scan(body, (zeros, jnp.zeros((), dtype)), idx)
    return total, sq


def _bcast(mask, g):
    return mask.reshape((-1,) + (1,) * (g.ndim - 1))
