"""The training step users compose: the gradient by any mode, then the optax update."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import optax

from jgd import _errors
from jgd._grad import MODES, value_and_grad
from jgd._state import TrainState

Loss = Callable[[Any, Any], jax.Array]


def make_step(
    loss: Loss,
    optimizer: optax.GradientTransformation,
    mode: str = "reverse",
    *,
    check_grads: bool = True,
    **grad_options: Any,
) -> Callable[[TrainState, Any], tuple[TrainState, dict[str, jax.Array]]]:
    """A pure training step to compose and ``jax.jit``.

    Args:
      loss: ``loss(params, batch) -> scalar``.
      optimizer: an optax ``GradientTransformation``.
      mode: the gradient mode (see ``jgd.value_and_grad``).
      check_grads: compute the gradient's norm (a reduction over every gradient entry: at batch
        size 1 about two thirds of a step of the seeds' MLP) and include it in ``finite``. When
        False, ``finite`` is the loss's alone and ``grad_norm`` is NaN.
      **grad_options: ``chunk_size``, ``step_size``, ``num_tangents`` for ``value_and_grad``.

    Returns:
      ``step(state, batch) -> (state, metrics)``; ``metrics`` holds the batch ``loss`` at the
      params before the update, the gradient's ``grad_norm``, and ``finite`` (loss and gradient
      finite).

    Examples:
      >>> import jax, jax.numpy as jnp, optax, jgd
      >>> loss = lambda w, batch: 0.5 * jnp.sum((w - batch) ** 2)
      >>> step = jax.jit(jgd.make_step(loss, optax.sgd(0.5)))
      >>> state = jgd.TrainState.create(jnp.zeros(2), optax.sgd(0.5))
      >>> state, metrics = step(state, jnp.array([2.0, 4.0]))
      >>> state.params.tolist(), float(metrics["loss"])
      ([1.0, 2.0], 10.0)
    """
    _errors.one_of("mode", mode, MODES)
    if not isinstance(optimizer, optax.GradientTransformation):
        raise TypeError(
            f"optimizer={_errors.describe(optimizer)} is not valid for make_step; expected an "
            "optax GradientTransformation such as optax.sgd(0.1)."
        )
    value_and_grad_fn = value_and_grad(loss, mode, **grad_options)
    needs_key = mode == "forward_gradient"

    def step(state: TrainState, batch: Any) -> tuple[TrainState, dict[str, jax.Array]]:
        key, sub = jax.random.split(state.key) if needs_key else (state.key, None)
        value, grads = value_and_grad_fn(state.params, batch, key=sub)
        updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        # One reduction serves both: the norm is finite iff every entry is (NaN and Inf
        # propagate), except a finite gradient so large (> ~1e19 in float32) that its square
        # overflows, which counts as a blow-up too.
        if check_grads:
            grad_norm = optax.tree.norm(grads)
            finite = jnp.isfinite(value) & jnp.isfinite(grad_norm)
        else:
            grad_norm = jnp.full((), jnp.nan, jnp.float32)
            finite = jnp.isfinite(value)
        metrics = {"loss": value, "grad_norm": grad_norm, "finite": finite}
        return TrainState(params, opt_state, state.step + 1, key), metrics

    return step
