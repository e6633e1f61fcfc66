"""optax transformations for torch's other adaptive rules, where optax's differ (``to_optax``).

- ``torch_nadam``: torch's NAdam schedules its momentum, ``μ_t = β₁(1 - ½·0.96^(tψ))`` with
  ``momentum_decay`` ψ, and keeps the product of the μ's; ``optax.nadam`` has no ψ.
- ``torch_radam``: the rectified step when ρ_t > 5, else the bias-corrected momentum; ε added to
  √v as torch does.
- ``torch_adamax``: ``u = max(β₂u, |g| + ε)`` (optax adds ε after the maximum).
- ``torch_adadelta``: ε placed as torch places it, ``lr`` applied after.
- ``torch_rprop``: the comparison of signs starts from zeros (optax's from the first gradient),
  and ``lr`` only sets the first step size.

Each returns the step's direction; ``_torch_rules.scale_by_rates`` applies ``-lr_t`` after it.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax


class MomentsState(NamedTuple):
    count: jax.Array
    first: Any  # torch's exp_avg
    second: Any  # exp_avg_sq / exp_inf / square_avg
    extra: Any  # NAdam: the product of the μ's; Adadelta: acc_delta; else ()


def _zeros(params: Any) -> Any:
    return jax.tree_util.tree_map(jnp.zeros_like, params)


def _lerp(m: jax.Array, g: jax.Array, w: float) -> jax.Array:
    """torch's ``m.lerp_(g, w)``: ``m + w (g - m)``."""
    return m + w * (g - m)


def _step(count: jax.Array, like: Any) -> jax.Array:
    dtype = jnp.result_type(*jax.tree_util.tree_leaves(like))
    return (count + 1).astype(dtype)


def torch_nadam(b1: float, b2: float, eps: float, psi: float) -> optax.GradientTransformation:
    """torch NAdam's direction (``lr`` applied after): momentum ``μ_t = β₁(1 - ½·0.96^(tψ))``
    with ``momentum_decay`` ψ and the running product of the μ's (optax.nadam has no ψ)."""

    def init(params):
        dtype = jnp.result_type(*jax.tree_util.tree_leaves(params))
        return MomentsState(
            jnp.zeros([], jnp.int32), _zeros(params), _zeros(params), jnp.ones([], dtype)
        )

    def update(updates, state, params=None):
        del params
        t = _step(state.count, updates)
        mu = b1 * (1.0 - 0.5 * 0.96 ** (t * psi))
        mu_next = b1 * (1.0 - 0.5 * 0.96 ** ((t + 1) * psi))
        product = state.extra * mu
        product_next = product * mu_next
        m = jax.tree_util.tree_map(lambda m, g: _lerp(m, g, 1 - b1), state.first, updates)
        v = jax.tree_util.tree_map(lambda v, g: v * b2 + (1 - b2) * g * g, state.second, updates)
        correction = 1 - b2**t

        def direction(g, m, v):
            denom = jnp.sqrt(v / correction) + eps
            return (1 - mu) / (1 - product) * g / denom + mu_next / (1 - product_next) * m / denom

        out = jax.tree_util.tree_map(direction, updates, m, v)
        return out, MomentsState(state.count + 1, m, v, product)

    return optax.GradientTransformation(init, update)


def torch_radam(b1: float, b2: float, eps: float) -> optax.GradientTransformation:
    """torch RAdam's direction: the rectified adaptive step when ρ_t > 5, else the bias-corrected
    momentum alone; ε added to √v (outside, as torch)."""

    def init(params):
        return MomentsState(jnp.zeros([], jnp.int32), _zeros(params), _zeros(params), ())

    def update(updates, state, params=None):
        del params
        t = _step(state.count, updates)
        m = jax.tree_util.tree_map(lambda m, g: _lerp(m, g, 1 - b1), state.first, updates)
        v = jax.tree_util.tree_map(lambda v, g: v * b2 + (1 - b2) * g * g, state.second, updates)
        c1, c2 = 1 - b1**t, 1 - b2**t
        rho_inf = 2 / (1 - b2) - 1
        rho = rho_inf - 2 * t * b2**t / c2
        safe = jnp.where(rho > 5.0, rho, 6.0)  # the rectifier's root only where it is used
        rect = jnp.sqrt((safe - 4) * (safe - 2) * rho_inf / ((rho_inf - 4) * (rho_inf - 2) * safe))

        def direction(m, v):
            adaptive = jnp.sqrt(c2) / (jnp.sqrt(v) + eps)
            return jnp.where(rho > 5.0, m / c1 * adaptive * rect, m / c1)

        out = jax.tree_util.tree_map(direction, m, v)
        return out, MomentsState(state.count + 1, m, v, ())

    return optax.GradientTransformation(init, update)


def torch_adamax(b1: float, b2: float, eps: float) -> optax.GradientTransformation:
    """torch Adamax's direction: ``u = max(β₂u, |g| + ε)`` (optax.adamax adds ε to u after the
    maximum), ``m / u / (1 - β₁^t)``."""

    def init(params):
        return MomentsState(jnp.zeros([], jnp.int32), _zeros(params), _zeros(params), ())

    def update(updates, state, params=None):
        del params
        t = _step(state.count, updates)
        m = jax.tree_util.tree_map(lambda m, g: _lerp(m, g, 1 - b1), state.first, updates)
        u = jax.tree_util.tree_map(
            lambda u, g: jnp.maximum(u * b2, jnp.abs(g) + eps), state.second, updates
        )
        out = jax.tree_util.tree_map(lambda m, u: m / u / (1 - b1**t), m, u)
        return out, MomentsState(state.count + 1, m, u, ())

    return optax.GradientTransformation(init, update)


def torch_adadelta(rho: float, eps: float) -> optax.GradientTransformation:
    """torch Adadelta's direction: ``δ = √(Δ + ε) / √(s + ε) · g``, ``Δ = ρΔ + (1 - ρ)δ²``;
    torch then multiplies δ by ``lr`` (optax.adadelta's rule, with ε placed as torch does)."""

    def init(params):
        return MomentsState(jnp.zeros([], jnp.int32), (), _zeros(params), _zeros(params))

    def update(updates, state, params=None):
        del params
        s = jax.tree_util.tree_map(lambda s, g: s * rho + (1 - rho) * g * g, state.second, updates)
        delta = jax.tree_util.tree_map(
            lambda a, s, g: jnp.sqrt(a + eps) / jnp.sqrt(s + eps) * g, state.extra, s, updates
        )
        acc = jax.tree_util.tree_map(lambda a, d: a * rho + (1 - rho) * d * d, state.extra, delta)
        return delta, MomentsState(state.count + 1, (), s, acc)

    return optax.GradientTransformation(init, update)


class RpropState(NamedTuple):
    step_size: Any
    previous: Any


def torch_rprop(
    lr: float, etas: tuple[float, float], step_sizes: tuple[float, float]
) -> optax.GradientTransformation:
    """torch Rprop's full step, ``sign(g) * step_size`` (``lr`` only sets the first step size):
    each element's step grows by η₊ while its gradient keeps its sign and shrinks by η₋ when it
    flips, clamped; after a flip that element's gradient counts as 0 for the step and the next
    comparison. ``optax.scale_by_rprop`` starts its comparison from the first gradient, torch from
    zeros."""
    minus, plus = etas
    low, high = step_sizes

    def init(params):
        return RpropState(
            jax.tree_util.tree_map(lambda p: jnp.full_like(p, lr), params), _zeros(params)
        )

    def update(updates, state, params=None):
        del params
        tm = jax.tree_util.tree_map
        signs = tm(lambda g, prev: jnp.sign(g * prev), updates, state.previous)

        def size_of(size, s):
            factor = jnp.where(s > 0, plus, jnp.where(s < 0, minus, 1.0)).astype(size.dtype)
            return jnp.clip(size * factor, low, high)

        sizes = tm(size_of, state.step_size, signs)
        kept = tm(lambda g, s: jnp.where(s < 0, jnp.zeros_like(g), g), updates, signs)
        out = tm(lambda g, size: jnp.sign(g) * size, kept, sizes)
        return out, RpropState(sizes, kept)

    return optax.GradientTransformation(init, update)


__all__ = ["torch_adadelta", "torch_adamax", "torch_nadam", "torch_radam", "torch_rprop"]
