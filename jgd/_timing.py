"""The one timer: warm-up outside the clock, blocked calls, repeats, the median and the spread.

Every time jgd reports goes through here: ``check_grads(timing=True)``, the tour, ``jgd bench``
and the jgd-vs-PyTorch comparison. Two shapes of measurement:

- ``timeit(fn)``: call ``fn`` (warm-up first), block on its result, repeat; wall time per call.
- ``interleaved({name: run})``: each ``run()`` times itself and returns seconds (``fit``'s
  ``run_time``, a PyTorch loop's wall time); the runs take turns, round after round, so a machine
  whose speed drifts over minutes slows all of them alike. Ratios between contenders are taken
  between medians of one such measurement, never across measurements.

``timeit`` (the standard library's) or ``pytest-benchmark`` measure a Python callable but neither
blocks on JAX's asynchronous results nor alternates contenders, hence these few lines.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import jax
import numpy as np


class Timing(NamedTuple):
    """Seconds per call: the median, the spread (min, max) and every sample."""

    median: float
    min: float
    max: float
    samples: tuple[float, ...]

    @classmethod
    def of(cls, samples: list[float]) -> Timing:
        if not samples:
            raise ValueError("a Timing needs at least one sample; got none.")
        s = np.asarray(samples, np.float64)
        return cls(float(np.median(s)), float(s.min()), float(s.max()), tuple(map(float, s)))

    @property
    def repeats(self) -> int:
        return len(self.samples)

    def rate(self, units: float = 1.0) -> float:
        """``units`` per second at the median (e.g. steps per second for a run of ``units``)."""
        return units / self.median


def blocked(fn: Callable[[], Any]) -> float:
    """Seconds of one call of ``fn``, blocked until its (JAX) result is ready."""
    start = time.perf_counter()
    jax.block_until_ready(fn())
    return time.perf_counter() - start


def timeit(fn: Callable[[], Any], *, repeats: int = 5, warmup: int = 1) -> Timing:
    """The ``Timing`` of ``repeats`` blocked calls of ``fn`` after ``warmup`` untimed ones.

    Examples:
      >>> import jax.numpy as jnp
      >>> t = timeit(lambda: jnp.ones(3) * 2, repeats=3)
      >>> t.repeats, t.min <= t.median <= t.max
      (3, True)
    """
    for _ in range(warmup):
        jax.block_until_ready(fn())
    return Timing.of([blocked(fn) for _ in range(repeats)])


def interleaved(
    runs: Mapping[str, Callable[[], float]], *, rounds: int = 5, warmup: int = 1
) -> dict[str, Timing]:
    """Each self-timing ``run() -> seconds`` once per round, in turn; ``warmup`` rounds untimed.

    Examples:
      >>> t = interleaved({"a": lambda: 1.0, "b": lambda: 2.0}, rounds=3)
      >>> t["b"].median / t["a"].median
      2.0
    """
    samples: dict[str, list[float]] = {name: [] for name in runs}
    for r in range(warmup + rounds):
        for name, run in runs.items():
            seconds = float(run())
            if r >= warmup:
                samples[name].append(seconds)
    return {name: Timing.of(s) for name, s in samples.items()}


__all__ = ["Timing", "blocked", "interleaved", "timeit"]
