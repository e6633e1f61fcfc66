"""optax transformations for the few PyTorch update rules optax does not have in the same form.

``jgd.torch_baseline.to_optax`` builds each torch optimizer from optax pieces where optax has the
same rule (``trace``, ``scale_by_adam``, ``scale_by_rms``, ``scale_by_stddev``,
``add_decayed_weights``); these are written by hand because the rules differ:

- ``dampened_trace``: torch SGD's momentum buffer with dampening d is ``b = μ b + (1 - d) g``, but
  its first step stores ``g`` undampened; ``optax.trace`` has no dampening and a fixed μ (a
  scheduler such as OneCycleLR changes μ every step).
- ``torch_adam``: with ``amsgrad``, torch keeps the running maximum of the *raw* second moment
  and divides it by the current bias correction (``optax.scale_by_amsgrad`` takes the maximum of
  the corrected one); and when a scheduler changes β₁ from step to step (OneCycleLR), torch
  corrects with the current β₁. Plain Adam with a fixed β₁ is ``optax.scale_by_adam``.
- ``torch_adagrad``: torch adds ε outside the square root (``g / (√Σg² + ε)``); optax's
  ``scale_by_rss`` adds it inside.
- ``scale_by_rates``: ``-rates[t]`` at step t, from rates read off a torch scheduler, cast to each
  update's dtype at use, so a float64 replay keeps a float64 rate.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax


class CountState(NamedTuple):
    count: jax.Array


def scale_by_rates(rates: np.ndarray) -> optax.GradientTransformation:
    """Multiplies step t's updates by ``-rates[t]`` (the last rate after the end)."""
    rates = np.asarray(rates, np.float64)

    def init(params: Any) -> CountState:
        del params
        return CountState(jnp.zeros([], jnp.int32))

    def update(updates, state, params=None):
        del params
        t = jnp.minimum(state.count, len(rates) - 1)
        lr = jnp.asarray(rates)[t]  # a constant of the traced program: float64 under x64
        updates = jax.tree_util.tree_map(lambda u: -lr.astype(u.dtype) * u, updates)
        return updates, CountState(optax.safe_increment(state.count))

    return optax.GradientTransformation(init, update)


class TraceState(NamedTuple):
    count: jax.Array
    trace: Any


def _at(values: np.ndarray, count: jax.Array) -> jax.Array:
    """``values[count]`` (the last one after the end), a constant of the traced program."""
    return jnp.asarray(values)[jnp.minimum(count, len(values) - 1)]


def dampened_trace(
    momentum: np.ndarray, dampening: float, nesterov: bool
) -> optax.GradientTransformation:
    """torch SGD's momentum buffer: ``b = g`` at the first step, then ``b = μₜ b + (1 - d) g``.

    ``momentum`` holds μ for every step (a scheduler such as OneCycleLR cycles it).
    """
    momentum = np.asarray(momentum, np.float64)

    def init(params):
        return TraceState(jnp.zeros([], jnp.int32), jax.tree_util.tree_map(jnp.zeros_like, params))

    def update(updates, state, params=None):
        del params
        first, mu = state.count == 0, _at(momentum, state.count)

        def buffer(g, b):
            m = mu.astype(g.dtype)
            return jnp.where(first, g, m * b + (1 - dampening) * g)

        trace = jax.tree_util.tree_map(buffer, updates, state.trace)
        out = trace
        if nesterov:
            out = jax.tree_util.tree_map(lambda g, b: g + mu.astype(g.dtype) * b, updates, trace)
        return out, TraceState(optax.safe_increment(state.count), trace)

    return optax.GradientTransformation(init, update)


class AdamState(NamedTuple):
    count: jax.Array
    mu: Any
    nu: Any
    nu_max: Any


def torch_adam(
    b1: np.ndarray, b2: float, eps: float, amsgrad: bool
) -> optax.GradientTransformation:
    """torch Adam's scaling ``(m / (1 - β₁ᵗ)) / (√v / √(1 - β₂ᵗ) + ε)`` with β₁ per step (a
    scheduler such as OneCycleLR cycles it; torch corrects with the current β₁) and, with
    ``amsgrad``, v replaced by the running maximum of the raw v."""
    b1 = np.asarray(b1, np.float64)

    def init(params):
        zeros = lambda: jax.tree_util.tree_map(jnp.zeros_like, params)  # noqa: E731
        return AdamState(jnp.zeros([], jnp.int32), zeros(), zeros(), zeros())

    def update(updates, state, params=None):
        del params
        beta1, t = _at(b1, state.count), optax.safe_increment(state.count)
        mu = jax.tree_util.tree_map(
            lambda m, g: m + (1 - beta1.astype(g.dtype)) * (g - m), state.mu, updates
        )  # torch's lerp
        nu = jax.tree_util.tree_map(lambda v, g: b2 * v + (1 - b2) * g * g, state.nu, updates)
        nu_max = jax.tree_util.tree_map(jnp.maximum, state.nu_max, nu) if amsgrad else nu

        def step(m, v):
            c1 = 1 - beta1.astype(m.dtype) ** t
            c2 = jnp.sqrt(1 - jnp.asarray(b2, m.dtype) ** t)
            return (m / c1) / (jnp.sqrt(v) / c2 + eps)

        return jax.tree_util.tree_map(step, mu, nu_max), AdamState(t, mu, nu, nu_max)

    return optax.GradientTransformation(init, update)


class SumState(NamedTuple):
    sum_of_squares: Any


def torch_adagrad(initial_accumulator_value: float, eps: float) -> optax.GradientTransformation:
    """torch Adagrad's scaling: ``Σ += g²``, then ``g / (√Σ + ε)`` (ε outside the root)."""

    def init(params):
        fill = lambda p: jnp.full_like(p, initial_accumulator_value)  # noqa: E731
        return SumState(jax.tree_util.tree_map(fill, params))

    def update(updates, state, params=None):
        del params
        total = jax.tree_util.tree_map(lambda s, g: s + g * g, state.sum_of_squares, updates)
        scaled = jax.tree_util.tree_map(lambda g, s: g / (jnp.sqrt(s) + eps), updates, total)
        return scaled, SumState(total)

    return optax.GradientTransformation(init, update)
