"""The benchmark suite behind ``jgd bench``: results as JSON, a markdown table and PNGs.

``run(name, quick, out)`` runs one of ``BENCHMARKS`` and writes ``out/<name>.json``,
``out/<name>.md`` and ``out/<name>_<i>.png``. The latest full results live in
``benchmarks/README.md``.
"""

from __future__ import annotations

import importlib
from typing import Any

BENCHMARKS = {
    "ad": "_ad",
    "train": "_train",
    "sweep": "_sweep",
    "fwdgrad": "_fwdgrad",
    "scale": "_scale",
    "xla": "_xla",
    "stream": "_memmap",
    "instruments": "_instruments",
}


def run(
    name: str,
    quick: bool = False,
    out: str = "benchmarks/results",
    tiny: bool = False,
    **options: Any,
) -> dict[str, Any]:
    """Runs benchmark ``name`` and writes its results into ``out``.

    ``quick``: a smaller run, under 2 minutes each. ``tiny``: the smallest sizes, seconds, for the
    harness's own tests (the numbers mean little). ``options``: the benchmark's own, e.g.
    ``run("ad", function="mypkg.nets:f", input_shape=(1000,))``.
    """
    if name not in BENCHMARKS:
        raise ValueError(f"benchmark {name!r} is unknown; expected one of {sorted(BENCHMARKS)}.")
    module = importlib.import_module(f"jgd.bench.{BENCHMARKS[name]}")
    return module.run(quick=quick or tiny, out=out, tiny=tiny, **options)


__all__ = ["BENCHMARKS", "run"]
