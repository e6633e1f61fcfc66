"""The one timer: warm-up outside the clock, blocked calls, repeats, the median and the spread.

Every time jgd reports goes through here: ``check_grads(timing=True)``, the tour, ``jgd bench``
and the jgd-vs-PyTorch comparison. Two shapes of measurement:

- ``timeit(fn)``: call ``fn`` (warm-up first), block on its result, repeat; wall time per call.
- ``interleaved({name: run})``: each ``run()`` times itself and returns seconds (``fit``'s
  ``run_time``, a PyTorch loop's wall time); the runs take turns, round after round, so a machine
  whose speed drifts over minutes slows all of them alike. Ratios between contenders are taken
  between medians of one such measurement, never across measurements.

Every measured stretch (``timeit``'s and ``interleaved``'s timed calls, a ``fit`` or ``sweep``
run, a PyTorch baseline loop) runs inside ``alone()``: nothing, unless ``pausing`` installed a
context there. ``jgd tour`` computes two untimed sections in a second process and installs one that
stops that process meanwhile, so every time the tour shows was measured alone on the cores.

``timeit`` (the standard library's) or ``pytest-benchmark`` measure a Python callable but neither
blocks on JAX's asynchronous results nor alternates contenders, hence these few lines.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any, NamedTuple

import jax
import numpy as np


class Timing(NamedTuple):
    """Seconds per call: the median, the spread (min, max) and every sample.

    ``jgd.timing.timeit`` and ``jgd.timing.interleaved`` return these; ``Timing.of(samples)``
    makes one from seconds measured some other way.

    Examples:
      >>> import jgd
      >>> t = jgd.timing.Timing.of([0.3, 0.1, 0.2])
      >>> t.median, t.min, t.max, t.repeats
      (0.2, 0.1, 0.3, 3)
      >>> t.rate(100)  # e.g. 100 steps a call: steps per second
      500.0
    """

    median: float
    min: float
    max: float
    samples: tuple[float, ...]

    @classmethod
    def of(cls, samples: list[float]) -> Timing:
        """The ``Timing`` of ``samples`` (seconds); ValueError if there are none."""
        if not samples:
            raise ValueError("a Timing needs at least one sample; got none.")
        s = np.asarray(samples, np.float64)
        return cls(float(np.median(s)), float(s.min()), float(s.max()), tuple(map(float, s)))

    @property
    def repeats(self) -> int:
        """The number of samples."""
        return len(self.samples)

    def rate(self, units: float = 1.0) -> float:
        """``units`` per second at the median (e.g. steps per second for a run of ``units``)."""
        return units / self.median


class Ratio(NamedTuple):
    """How many times faster one contender ran than another: the median of the per-round ratios
    of an interleaved run, and their spread (the slowest and fastest round's).

    ``jgd.timing.ratio(fast, slow)`` returns one. ``str`` of it gives the median and the range,
    or only the range when the rounds disagree by more than 1.5x.

    Examples:
      >>> import jgd
      >>> fast, slow = jgd.timing.Timing.of([1.0, 1.0]), jgd.timing.Timing.of([2.0, 4.0])
      >>> r = jgd.timing.ratio(fast, slow)
      >>> r.median, r.low, r.high, r.rounds
      (3.0, 2.0, 4.0, 2)
      >>> str(r)
      '2.0x to 4.0x (2 rounds, too spread to say one)'
    """

    median: float
    low: float
    high: float
    rounds: int

    def __str__(self) -> str:
        if self.low > 0 and self.high / self.low > 1.5:  # too wide for one number
            return (
                f"{self.low:.1f}x to {self.high:.1f}x ({self.rounds} rounds, too spread to say one)"
            )
        return f"{self.median:.1f}x (range {self.low:.1f}-{self.high:.1f}x, {self.rounds} rounds)"


def ratio(fast: Timing, slow: Timing) -> Ratio:
    """``slow / fast`` round by round (both from one ``interleaved`` call, so rounds pair up).

    Examples:
      >>> r = ratio(Timing.of([1.0, 1.0, 1.0]), Timing.of([2.0, 3.0, 2.5]))
      >>> (r.median, r.low, r.high), str(r)
      ((2.5, 2.0, 3.0), '2.5x (range 2.0-3.0x, 3 rounds)')
    """
    if len(fast.samples) != len(slow.samples):
        raise ValueError("ratio pairs the rounds of one interleaved run: the sample counts differ.")
    per_round = np.asarray(slow.samples) / np.asarray(fast.samples)
    return Ratio(
        float(np.median(per_round)), float(per_round.min()), float(per_round.max()), len(per_round)
    )


_PAUSERS: list[contextlib.AbstractContextManager] = []  # innermost last; see ``pausing``
_NOTHING = contextlib.nullcontext()


def alone() -> contextlib.AbstractContextManager:
    """The context every measured stretch runs in: the one ``pausing`` installed, else nothing.

    Examples:
      >>> with alone():  # no pauser installed: a null context
      ...     pass
    """
    return _PAUSERS[-1] if _PAUSERS else _NOTHING


@contextlib.contextmanager
def pausing(context: contextlib.AbstractContextManager) -> Iterator[None]:
    """Within this block, every measured stretch runs inside ``context``.

    ``context`` must be reentrant (a timed ``fit`` inside ``interleaved`` enters it twice): the
    tour's stops its second process on the outermost entry and resumes it on the last exit.

    Examples:
      >>> entered = []
      >>> class Note(contextlib.AbstractContextManager):
      ...     def __enter__(self):
      ...         entered.append(True)
      ...     def __exit__(self, *exc):
      ...         return None
      >>> with pausing(Note()):
      ...     _ = timeit(lambda: 1, repeats=1)
      >>> entered
      [True]
    """
    _PAUSERS.append(context)
    try:
        yield
    finally:
        _PAUSERS.remove(context)


def blocked(fn: Callable[[], Any]) -> float:
    """Seconds of one call of ``fn``, blocked until its (JAX) result is ready.

    JAX dispatches work asynchronously, so timing the call alone would stop the clock before
    the result is computed; ``jax.block_until_ready`` waits for it (any pytree of arrays, or
    anything else, is fine). One call, compile included: ``timeit`` warms up and repeats.

    Args:
      fn: a function of no arguments.

    Returns:
      Wall-clock seconds, from ``time.perf_counter``.

    Examples:
      >>> import jax.numpy as jnp, jgd
      >>> seconds = jgd.timing.blocked(lambda: jnp.ones(1000) @ jnp.ones(1000))
      >>> seconds > 0
      True
    """
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
    with alone():
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
    for _ in range(warmup):
        for run in runs.values():
            run()
    with alone():
        for _ in range(rounds):
            for name, run in runs.items():
                samples[name].append(float(run()))
    return {name: Timing.of(s) for name, s in samples.items()}


__all__ = ["Ratio", "Timing", "alone", "blocked", "interleaved", "pausing", "ratio", "timeit"]


BACKEND_COMPILE = "/jax/core/compile/backend_compile_duration"
CACHE_HIT = "/jax/compilation_cache/cache_hits"


@contextlib.contextmanager
def backend_compiles() -> Iterator[dict[str, int]]:
    """``with backend_compiles() as counted:``: XLA backend compiles inside the block, minus
    persistent-cache hits (``jax.monitoring``'s events), in ``counted["n"]`` after it.

    What "compiles nothing new" means: neither tracing nor lowering counts, only XLA's compile.

    Examples:
      >>> import jax, jax.numpy as jnp, jgd
      >>> f, x = jax.jit(lambda x: x * 3.0), jnp.ones(7)
      >>> with jgd.timing.backend_compiles() as counted:
      ...     _ = f(x), f(x)  # the second call reuses the first's program
      >>> counted["n"]
      1
    """
    seen = {"compiles": 0, "hits": 0}

    def on_duration(name: str, secs: float, **kw: Any) -> None:
        if name == BACKEND_COMPILE:
            seen["compiles"] += 1

    def on_event(name: str, **kw: Any) -> None:
        if name == CACHE_HIT:
            seen["hits"] += 1

    jax.monitoring.register_event_duration_secs_listener(on_duration)
    jax.monitoring.register_event_listener(on_event)
    counted: dict[str, int] = {}
    try:
        yield counted
    finally:
        jax.monitoring.unregister_event_duration_listener(on_duration)
        jax.monitoring.unregister_event_listener(on_event)
        counted["n"] = seen["compiles"] - seen["hits"]
