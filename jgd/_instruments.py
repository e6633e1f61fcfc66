"""Instruments that watch a run from inside its compiled loop: sharpness and gradient noise scale.

``fit(..., sharpness_every=N)`` records the sharpness, the top eigenvalue of the loss's Hessian
(Cohen et al., "Gradient Descent on Neural Networks Typically Occurs at the Edge of Stability",
ICLR 2021), and ``noise_scale_every=N`` the simple gradient noise scale tr(Σ)/‖G‖² (McCandlish et
al., "An Empirical Model of Large-Batch Training", 2018), at every global step ``t`` with
``t % N == 0``, at the params before that step's update (where the step's loss is taken). Both
are measured on the run's fixed probe examples: all the data, or a fixed sample of 4,096 (the
run's start and end losses are taken on a smaller sample of those).

How: each instrument is a recorder (``_recorders``) with ``every=N``: the run's loop jumps from
one record step to the next (``_engine``), so a step between records runs only the step. The
sharpness is power iteration on Hessian-vector products (forward over reverse, about two
gradients each), warm-started from the previous record's eigenvector, which the run carries in
its recorder state (checkpointed, resumed): ``COLD_ITERATIONS`` at most for a run's first
record, ``WARM_ITERATIONS`` after, stopping earlier when the estimate changes by less than
``TOLERANCE``.

What it finds is the eigenvalue of largest magnitude: λ_max whenever the Hessian's positive part
dominates, as it does along a training run (a negative one larger in magnitude would show as a
negative record).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, ClassVar, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

from jgd import _curvature, _noise, _recorders

COLD_ITERATIONS = 100  # the first record of a run (from a random vector)
WARM_ITERATIONS = 20  # later records, from the previous eigenvector
TOLERANCE = 1e-4  # stop when the Rayleigh quotient changes less than this (relative)
NOISE_CHUNK = 256  # per-example gradients held at once


class Probe(NamedTuple):
    """What the sharpness carries from record to record (zeros(0) without it).

    Attributes:
      vector: the last top eigenvector estimate, the params flattened (unit norm).
      warm: whether ``vector`` came from a record (else it is the random start).
    """

    vector: jax.Array
    warm: jax.Array


def fresh_probe(params: Any) -> Probe:
    """A run's first probe: a fixed random unit vector (the same for every run), not warm."""
    flat, _ = ravel_pytree(params)
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
class Sharpness:
    """Recorder: the top Hessian eigenvalue every ``every`` steps, on the run's probe examples
    (columns ``sharpness`` and ``sharpness_iterations``; state: the last eigenvector)."""

    every: int
    uses_context: ClassVar[bool] = True

    def init(self, params: Any, context: _recorders.Context) -> Probe:
        return fresh_probe(params)

    def update(self, probe: Probe, view: _recorders.View) -> tuple[Probe, dict[str, Any]]:
        probe, value, steps = sharpness(view.loss_fn, view.params, view.context.probe, probe)
        return probe, {"sharpness": value, "sharpness_iterations": steps}


@dataclasses.dataclass(frozen=True)
class NoiseScale:
    """Recorder: the simple gradient noise scale every ``every`` steps, on the run's probe
    examples (column ``noise_scale``)."""

    every: int
    uses_context: ClassVar[bool] = True

    def init(self, params: Any, context: _recorders.Context) -> tuple:
        return ()

    def update(self, state: tuple, view: _recorders.View) -> tuple[tuple, dict[str, Any]]:
        dtype = jnp.result_type(*jax.tree_util.tree_leaves(view.params))
        value = _noise.simple(view.loss_fn, view.params, view.context.probe, NOISE_CHUNK)
        return state, {"noise_scale": value.astype(dtype)}


class Series(NamedTuple):
    """An instrument's records: ``values[k]`` was measured at global step ``steps[k]``, at the
    params before that step's update (NaN for records after a blow-up).

    Attributes:
      steps: int array of the global steps recorded at (multiples of the ``*_every`` given).
      values: the measurements, shape (records,) (``SweepResult``: (runs, records)).
      iterations: for the sharpness, the power-iteration steps each record took; else None.

    Examples:
      >>> import jax.numpy as jnp, optax, jgd
      >>> bowl = lambda w, batch: 2.0 * jnp.sum((w - 3.0) ** 2)  # Hessian 4 I: sharpness 4
      >>> result = jgd.fit(bowl, jnp.zeros(2), jnp.zeros(1), optimizer=optax.sgd,
      ...                  learning_rate=0.1, epochs=6, sharpness_every=2)
      >>> result.sharpness.steps.tolist(), result.sharpness.values.round(3).tolist()
      ([0, 2, 4], [4.0, 4.0, 4.0])
    """

    steps: np.ndarray
    values: np.ndarray
    iterations: np.ndarray | None = None

    def pick(self, i: int) -> Series:
        """Run ``i``'s records of a sweep's series."""
        iterations = None if self.iterations is None else self.iterations[i]
        return Series(self.steps, self.values[i], iterations)


def series(columns: dict, recorders: tuple, kind: type, first_step: int = 0) -> Series | None:
    """The records of the run's ``kind`` instrument (``Sharpness`` or ``NoiseScale``) from its
    per-step columns (steps on their last axis), or None when the run has none."""
    found = [r for r in recorders if isinstance(r, kind)]
    if not found:
        return None
    name = "sharpness" if kind is Sharpness else "noise_scale"
    steps = record_steps(found[0].every, first_step, np.shape(columns["loss"])[-1])
    at = np.asarray(steps, np.int64) - first_step
    taken = None
    if kind is Sharpness:
        taken = np.asarray(columns["sharpness_iterations"])[..., at]
    return Series(np.asarray(steps, np.int64), np.asarray(columns[name])[..., at], taken)


def record_steps(every: int, first_step: int, steps: int) -> list[int]:
    """The global steps a run of ``steps`` from ``first_step`` records at (multiples of
    ``every``)."""
    start = -(-first_step // every) * every
    return list(range(start, first_step + steps, every))
