"""The timer behind every time jgd reports: warm-up, blocked calls, repeats, median and spread."""

from jgd._timing import (
    Ratio,
    Timing,
    alone,
    backend_compiles,
    blocked,
    interleaved,
    pausing,
    ratio,
    timeit,
)

__all__ = [
    "Ratio",
    "Timing",
    "alone",
    "backend_compiles",
    "blocked",
    "interleaved",
    "pausing",
    "ratio",
    "timeit",
]
