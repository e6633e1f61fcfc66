"""The timer behind every time jgd reports: warm-up, blocked calls, repeats, median and spread."""

from jgd._timing import Timing, blocked, interleaved, timeit

__all__ = ["Timing", "blocked", "interleaved", "timeit"]
