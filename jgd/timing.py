"""The timer behind every time jgd reports: warm-up, blocked calls, repeats, median and spread."""

from jgd._timing import Ratio, Timing, backend_compiles, blocked, interleaved, ratio, timeit

__all__ = ["Ratio", "Timing", "backend_compiles", "blocked", "interleaved", "ratio", "timeit"]
