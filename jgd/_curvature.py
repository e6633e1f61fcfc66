"""Curvature: Hessian-vector products and the largest learning rate plain GD survives.

For gradient descent on a quadratic, ``w <- w - eta * H w`` contracts every direction iff
``|1 - eta * lambda| < 1`` for each Hessian eigenvalue, i.e. ``eta < 2 / lambda_max``. Near a
minimum any smooth loss is locally quadratic, so ``2 / lambda_max`` is the stability bound.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

from jgd import _compile, _errors, _modules, _tensors
from jgd._keys import as_key


def hvp(loss: Any, params: Any, batch: Any, vector: Any) -> Any:
    """Hessian-vector product ``H(params) @ vector`` by forward-over-reverse differentiation.

    One ``jax.jvp`` of ``jax.grad``: about the cost of two gradients, and the Hessian (P x P) is
    never formed. Jittable; called on concrete arrays it runs as one compiled program, kept
    for the next call with the same ``loss``.

    Args:
      loss: ``loss(params, batch) -> scalar``.
      params: where the Hessian is taken: a pytree, or an ``nnx.Module`` with
        ``loss(model, batch)`` (the Hessian in its ``nnx.Param``s, at its state, not written).
      batch: the batch the loss is evaluated on.
      vector: a pytree shaped like ``params`` (a module's: like ``nnx.state(model, nnx.Param)``).

    Returns:
      ``H @ vector``, shaped like ``params``.

    Examples:
      >>> import jax.numpy as jnp
      >>> import jgd
      >>> loss = lambda w, b: 0.5 * jnp.sum(b * w**2)  # H = diag(b)
      >>> jgd.hvp(loss, jnp.ones(2), jnp.array([1.0, 4.0]), jnp.array([1.0, 1.0])).tolist()
      [1.0, 4.0]
    """
    params, model_state = _split(params)
    _check_like("vector", vector, params)
    batch = _tensors.as_numpy(batch)  # torch tensors: the arrays they hold
    return _compile.concrete(_hvp, loss, params, model_state, batch, vector)


def _split(params: Any) -> tuple[Any, Any]:
    """``(params, model_state)`` of a module, ``(params, None)`` of a pytree."""
    return _modules.split(params) if _modules.is_module(params) else (params, None)


def _pure(loss: Any, model_state: Any) -> Any:
    """``loss(params, batch)`` at ``model_state`` (see ``_modules.as_pure``)."""
    return loss if model_state is None else _modules.user_form(loss, model_state, False)


def _hvp(loss: Any, params: Any, model_state: Any, batch: Any, vector: Any) -> Any:
    loss = _pure(loss, model_state)
    return jax.jvp(lambda p: jax.grad(loss)(p, batch), (params,), (vector,))[1]


def _check_like(name: str, vector: Any, params: Any) -> None:
    """Raises unless ``vector`` has the structure, shapes and dtypes of ``params``."""
    want, got = jax.tree_util.tree_structure(params), jax.tree_util.tree_structure(vector)
    if want != got:
        raise ValueError(f"{name} has structure {got}; it must be shaped like params: {want}.")
    for (path, v), p in zip(
        _errors.leaf_paths(vector), jax.tree_util.tree_leaves(params), strict=True
    ):
        if np.shape(v) != np.shape(p) or jnp.result_type(v) != jnp.result_type(p):
            raise ValueError(
                f"{name}{path} has shape {np.shape(v)} and dtype {jnp.result_type(v)}; the "
                f"params there have shape {np.shape(p)} and dtype {jnp.result_type(p)}."
            )


class StabilityBound(NamedTuple):
    """What ``max_stable_learning_rate`` returns: the bound ``2 / λ`` and how it was found.

    Attributes:
      learning_rate: ``2 / eigenvalue``, the largest learning rate plain GD is stable at (inf
        when the top eigenvalue is <= 0).
      eigenvalue: λ, the Hessian's top (largest) eigenvalue.
      iterations: the power-iteration steps taken.

    Examples:
      >>> import jax.numpy as jnp, jgd
      >>> loss = lambda w, batch: 0.5 * jnp.sum(jnp.array([1.0, 4.0]) * w**2)  # H = diag(1, 4)
      >>> bound = jgd.max_stable_learning_rate(loss, jnp.ones(2), None)
      >>> round(float(bound.eigenvalue), 4), round(float(bound.learning_rate), 4)
      (4.0, 0.5)
    """

    learning_rate: jax.Array
    eigenvalue: jax.Array
    iterations: jax.Array


def max_stable_learning_rate(
    loss: Any,
    params: Any,
    batch: Any,
    *,
    max_iterations: int = 500,
    tolerance: float = 1e-7,
    key: jax.Array | None = None,
) -> StabilityBound:
    """The top Hessian eigenvalue λ by power iteration, and the plain-GD bound ``2 / λ``.

    Power iteration on ``hvp`` finds the eigenvalue of largest magnitude; at (or near) a minimum
    the Hessian is positive semi-definite and that is λ_max. At a saddle it can be negative: a
    second power iteration on ``H - λ I`` then finds λ_max. When λ_max <= 0 (a maximum) there is
    no bound: ``learning_rate`` is inf. Jittable; called on concrete arrays it runs as one
    compiled program (kept for the next call with the same ``loss`` and shapes).

    Args:
      loss: ``loss(params, batch) -> scalar``.
      params: where the curvature is measured (a pytree, or an ``nnx.Module`` as for ``hvp``).
      batch: the batch the loss is evaluated on.
      max_iterations: power-iteration steps at most.
      tolerance: stop when the eigenvalue estimate changes by less than this (relative).
      key: for the random start vector; defaults to ``jax.random.key(0)``.

    Returns:
      ``StabilityBound(learning_rate, eigenvalue, iterations)``.

    Examples:
      >>> import jax.numpy as jnp
      >>> import jgd
      >>> bowl = lambda w, batch: 0.5 * jnp.sum((w - 3.0) ** 2)  # a bowl of curvature λ = 1
      >>> float(jgd.max_stable_learning_rate(bowl, jnp.array(-2.0), None).learning_rate)
      2.0
    """
    max_iterations = _errors.positive_int("max_iterations", max_iterations)
    tolerance = _errors.positive_float("tolerance", tolerance)
    params, model_state = _split(params)
    _errors.float_params("params", params)
    batch = _tensors.as_numpy(batch)
    _check_batch("batch", batch)
    key = as_key(0 if key is None else key)  # key(0) and PRNGKey(0) draw the same numbers
    limit = np.asarray(max_iterations, np.int32)  # a value: any limit runs the same program
    bound = _compile.concrete(_bound, (loss, tolerance), params, model_state, batch, key, limit)
    if not isinstance(bound.eigenvalue, jax.core.Tracer) and np.isnan(bound.eigenvalue):
        raise ValueError(
            "max_stable_learning_rate: the Hessian's top eigenvalue is NaN at these params on "
            "this batch (the loss or its curvature is not finite there: NaN in the data or the "
            "params, or a loss undefined at this point), so there is no bound to give."
        )
    return bound


def _bound(static, params, model_state, batch, key, max_iterations) -> StabilityBound:
    """``max_stable_learning_rate``'s traced part (its arguments checked)."""
    loss, tolerance = static
    loss = _pure(loss, model_state)
    flat, unravel = ravel_pytree(params)

    def matvec(v):
        return ravel_pytree(_hvp(loss, params, None, batch, unravel(v)))[0]

    v0 = jax.random.normal(key, flat.shape, flat.dtype)
    v0 = v0 / jnp.linalg.norm(v0)
    dominant, _, iters = power_iteration(matvec, v0, max_iterations, tolerance)
    # At a saddle the eigenvalue of largest magnitude can be negative; the top one is then the
    # dominant eigenvalue of H - dominant * I, shifted back.
    top, more = jax.lax.cond(
        dominant < 0,
        lambda: _shifted(matvec, v0, dominant, max_iterations, tolerance),
        lambda: (dominant, jnp.zeros((), jnp.int32)),
    )
    lr = jnp.where(top > 0, 2.0 / jnp.where(top > 0, top, 1), jnp.inf)
    lr = jnp.where(jnp.isnan(top), jnp.nan, lr)  # no curvature measured: no bound, not inf
    return StabilityBound(lr, top, iters + more)


def _check_batch(name: str, batch: Any) -> None:
    """Raises when ``batch`` holds an array with no examples (a mean over none is NaN)."""
    for path, leaf in _errors.leaf_paths(batch):
        shape = np.shape(leaf)
        if shape and shape[0] == 0:
            raise ValueError(
                f"{name}{path} has no examples (shape {shape}); the curvature of a loss over "
                "no examples is not defined."
            )


def _shifted(matvec, v0, shift, max_iterations, tolerance):
    mu, _, iters = power_iteration(lambda v: matvec(v) - shift * v, v0, max_iterations, tolerance)
    return mu + shift, iters


def power_iteration(matvec, v0, max_iterations, tolerance):
    """``(eigenvalue, eigenvector, steps)``: the eigenvalue of largest magnitude of a symmetric
    ``matvec`` from the unit vector ``v0``, stopped after ``max_iterations`` (may be traced) or
    when the Rayleigh quotient changes by less than ``tolerance`` (relative), after at least 2.
    """

    def body(carry):
        v, lam, _, i = carry
        w = matvec(v)
        new_lam = jnp.vdot(v, w)  # Rayleigh quotient, v has unit norm
        norm = jnp.linalg.norm(w)
        v = jnp.where(norm > 0, w / jnp.where(norm > 0, norm, 1), v)
        return v, new_lam, lam, i + 1

    def cond(carry):
        _, lam, old, i = carry
        change = jnp.abs(lam - old) > tolerance * jnp.maximum(jnp.abs(lam), 1e-30)
        return (i < max_iterations) & ((i < 2) | change)

    zero = jnp.zeros((), v0.dtype)
    v, lam, _, iters = jax.lax.while_loop(cond, body, (v0, zero, zero, jnp.int32(0)))
    return lam, v, iters
