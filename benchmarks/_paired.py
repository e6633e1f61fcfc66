"""What ``benchmarks/speed.py``'s measurements share, as ``../shared/SPEED.md`` asks.

Each measurement runs in ``--processes`` fresh processes, every one pinned to the same cores with
``os.sched_setaffinity`` before jax is imported, timing its contenders interleaved (round after
round, warm-up excluded, each blocking on its result). A contender is timed beside its own twin
(the A/A pair), whose spread is the noise floor. A process reports each contender's median
seconds; the parent takes per-process ratios and reports their median and min-max over
processes, beside the A/A min-max, and the verdict.

Written by hand because no benchmarking library both pins fresh processes before jax starts
and pairs contenders round by round (``timeit`` and ``pytest-benchmark`` time one callable).
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
from collections.abc import Callable
from typing import Any


def pin(cores: list[int]) -> None:
    """Pins this process to ``cores``: call before jax is imported (its thread pool sizes itself
    from the affinity)."""
    os.sched_setaffinity(0, cores)


def interleaved(contenders: dict[str, Callable[[], float]], rounds: int) -> dict[str, float]:
    """Median seconds of each contender (``once() -> seconds``), run in turn ``rounds`` times
    after one warm-up round; the order rotates each round so that no contender always runs
    first."""
    names = list(contenders)
    for name in names:
        contenders[name]()
    times: dict[str, list[float]] = {n: [] for n in names}
    for r in range(rounds):
        turn = names[r % len(names) :] + names[: r % len(names)]
        for name in turn:
            times[name].append(contenders[name]())
    return {n: statistics.median(t) for n, t in times.items()}


def spawn(script: str, argv: list[str], processes: int) -> list[dict[str, Any]]:
    """Runs ``script --worker argv`` in ``processes`` fresh processes, one after another; each
    prints one JSON line last. Returns those records."""
    records = []
    for i in range(processes):
        done = subprocess.run(
            [sys.executable, script, "--worker", *argv], capture_output=True, text=True
        )
        if done.returncode != 0:
            sys.exit(f"worker {i + 1} failed:\n{done.stderr[-3000:]}")
        records.append(json.loads(done.stdout.strip().splitlines()[-1]))
        print(f"  process {i + 1}/{processes} done", file=sys.stderr, flush=True)
    return records


def ratios(records: list[dict[str, float]], top: str, bottom: str) -> list[float]:
    """``top / bottom`` seconds per process."""
    return [r[top] / r[bottom] for r in records]


def spread(values: list[float]) -> str:
    """``median [min-max]``."""
    return f"{statistics.median(values):.3f} [{min(values):.3f}-{max(values):.3f}]"


def verdict(values: list[float], aa: list[float], limit: float) -> str:
    """``"holds"`` when the median ratio is <= ``limit``; ``"unresolved"`` when above it but
    the A/A spread is wider than the margin judged; else ``"missed"``."""
    median = statistics.median(values)
    if median <= limit:
        return "holds"
    floor = max(max(aa), 1 / min(aa))
    return "unresolved" if median <= floor and floor - 1 > limit - 1 else "missed"


def versions() -> dict[str, str]:
    """The versions of what was measured (jax, jaxlib, optax, flax, numpy), and the cores."""
    import importlib.metadata as md

    found = {}
    for name in ("jax", "jaxlib", "optax", "flax", "numpy"):
        try:
            found[name] = md.version(name)
        except md.PackageNotFoundError:
            found[name] = "-"
    return found
