"""Instruments that watch a run from inside its compiled loop: sharpness and gradient noise scale.

``fit(..., sharpness_every=N)`` records the sharpness, the top eigenvalue of the loss's Hessian
(Cohen et al., "Gradient Descent on Neural Networks Typically Occurs at the Edge of Stability",
ICLR 2021), and ``noise_scale_every=N`` the simple gradient noise scale tr(Σ)/‖G‖² (McCandlish et
al., "An Empirical Model of Large-Batch Training", 2018), at every global step ``t`` with
``t % N == 0``, at the params before that step's update (where the step's loss is taken). Both
are measured on the run's fixed probe examples: all the data, or the fixed sample of 4,096 the
run's start and end losses are taken on.

How: ``Watching`` wraps a block's per-step program. The loop's ``x`` gains the global step
number and the loop's carry gains a ``Probe`` (the last eigenvector); each instrument sits in a
``lax.cond`` on ``t % N == 0``. ``t`` is computed from the loop's own counter, never from the
state, so under ``sweep``'s ``vmap`` it stays unbatched and the cond stays a branch: a step
between records runs only the step. The sharpness is power iteration on Hessian-vector products
(forward over reverse, about two gradients each), warm-started from the previous record's
eigenvector: ``COLD_ITERATIONS`` at most for the first record of a probe, ``WARM_ITERATIONS``
after, stopping earlier when the estimate changes by less than ``TOLERANCE``.

What it finds is the eigenvalue of largest magnitude: λ_max whenever the Hessian's positive part
dominates, as it does along a training run (a negative one larger in magnitude would show as a
negative record).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree

from jgd import _curvature, _noise

COLD_ITERATIONS = 100  # the first record of a run (from a random vector)
WARM_ITERATIONS = 20  # later records, from the previous eigenvector
TOLERANCE = 1e-4  # stop when the Rayleigh quotient changes less than this (relative)
NOISE_CHUNK = 256  # per-example gradients held at once


class Instruments(NamedTuple):
    """What a run records besides its loss (static: part of the compiled program).

    Attributes:
      sharpness_every: steps between sharpness records, or None.
      noise_scale_every: steps between noise-scale records, or None.
    """

    sharpness_every: int | None = None
    noise_scale_every: int | None = None

    @property
    def active(self) -> bool:
        return self.sharpness_every is not None or self.noise_scale_every is not None


NO_INSTRUMENTS = Instruments()


class Probe(NamedTuple):
    """What the sharpness carries from record to record (zeros(0) without it).

    Attributes:
      vector: the last top eigenvector estimate, the params flattened (unit norm).
      warm: whether ``vector`` came from a record (else it is the random start).
    """

    vector: jax.Array
    warm: jax.Array


def fresh_probe(params: Any, instruments: Instruments) -> Probe:
    """A run's first probe: a fixed random unit vector (the same for every run), not warm."""
    flat, _ = ravel_pytree(params)
    if instruments.sharpness_every is None:
        return Probe(jnp.zeros(0, flat.dtype), jnp.asarray(False))
    v = jax.random.normal(jax.random.key(0x5AA9), flat.shape, flat.dtype)
    return Probe(v / jnp.linalg.norm(v), jnp.asarray(False))


def sharpness(loss: Callable, params: Any, batch: Any, probe: Probe) -> tuple[Probe, Any, Any]:
    """The top Hessian eigenvalue at ``params`` on ``batch`` from ``probe``: the new probe, the
    eigenvalue and the power-iteration steps taken."""
    _, unravel = ravel_pytree(params)

    def matvec(v):
        return ravel_pytree(_curvature.hvp(loss, params, batch, unravel(v)))[0]

    limit = jnp.where(probe.warm, WARM_ITERATIONS, COLD_ITERATIONS)
    value, vector, steps = _curvature.power_iteration(matvec, probe.vector, limit, TOLERANCE)
    return Probe(vector, jnp.asarray(True)), value, steps


@dataclasses.dataclass(frozen=True)
class Watching:
    """Program: a block's per-step program ``inner(data, state, x)`` with the instruments.

    Called as ``(operands, carry, x)`` with ``operands = (data, probe_batch)``,
    ``carry = (state, probe)`` and ``x = (inner_x, t)``, ``t`` the global step.
    """

    inner: Callable
    loss: Callable
    instruments: Instruments

    def __call__(self, operands: Any, carry: Any, x: Any) -> tuple[Any, dict]:
        (data, batch), (state, probe), (inner_x, t) = operands, carry, x
        records = {}
        every = self.instruments.sharpness_every
        if every is not None:
            probe, records["sharpness"], records["sharpness_iterations"] = jax.lax.cond(
                t % every == 0,
                lambda p, q: sharpness(self.loss, p, batch, q),
                lambda p, q: (q, jnp.full((), jnp.nan, q.vector.dtype), jnp.int32(0)),
                state.params,
                probe,
            )
        every = self.instruments.noise_scale_every
        if every is not None:
            dtype = jnp.result_type(*jax.tree_util.tree_leaves(state.params))
            records["noise_scale"] = jax.lax.cond(
                t % every == 0,
                lambda p: _noise.simple(self.loss, p, batch, NOISE_CHUNK).astype(dtype),
                lambda p: jnp.full((), jnp.nan, dtype),
                state.params,
            )
        state, metrics = self.inner(data, state, inner_x)
        return (state, probe), {**metrics, **records}


def record_steps(every: int | None, first_step: int, steps: int):
    """The global steps a run of ``steps`` from ``first_step`` records at (multiples of
    ``every``), or None without the instrument."""
    if every is None:
        return None
    start = -(-first_step // every) * every
    return list(range(start, first_step + steps, every))
