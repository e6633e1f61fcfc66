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
