"""The benchmark suite behind ``jgd bench``: results as JSON, a markdown table and PNGs.

``run(name, quick, out)`` runs one of ``BENCHMARKS`` and writes ``out/<name>.json``,
``out/<name>.md`` and ``out/<name>_<i>.png``. The latest full results live in
``benchmarks/README.md``.
"""

from __future__ import annotations

import importlib
from typing import Any

BENCHMARKS = {"ad": "_ad", "train": "_train", "sweep": "_sweep", "fwdgrad": "_fwdgrad"}


def run(name: str, quick: bool = False, out: str = "benchmarks/results") -> dict[str, Any]:
    """Runs benchmark ``name`` (``--quick``: a smaller run, under 2 minutes) and writes results."""
    if name not in BENCHMARKS:
        raise ValueError(f"benchmark {name!r} is unknown; expected one of {sorted(BENCHMARKS)}.")
    module = importlib.import_module(f"jgd.bench.{BENCHMARKS[name]}")
    return module.run(quick=quick, out=out)


__all__ = ["BENCHMARKS", "run"]
