"""What every benchmark shares: honest timing, the machine's facts, and result files.

Timing: compile and warm up outside the clock, block on the result (``jax.block_until_ready``),
repeat, report the median and the spread.
"""

from __future__ import annotations

import datetime
import json
import os
import pathlib
import platform
from typing import Any

import jax
import numpy as np

from jgd import io
from jgd.timing import timeit


def say(*parts: Any) -> None:
    """A progress line of a benchmark, printed at once (benchmarks run for minutes)."""
    print(*parts, flush=True)


def matmul_gflops(n: int = 2048, repeats: int = 7) -> float:
    """The machine's measured float32 matmul rate (n x n times n x n), in GFLOP/s."""
    a = jax.numpy.ones((n, n), jax.numpy.float32)
    mm = jax.jit(lambda a: a @ a)
    t = timeit(lambda: mm(a), repeats=repeats).median
    return 2 * n**3 / t / 1e9


def machine() -> dict[str, Any]:
    """Where and with what the numbers were measured."""
    info = {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "jax": jax.__version__,
        "device": str(jax.devices()[0]),
    }
    try:
        import torch

        info["torch"] = torch.__version__
        info["torch_threads"] = torch.get_num_threads()
    except ImportError:
        info["torch"] = None
    return info


def write(
    out: str | os.PathLike, name: str, results: dict[str, Any], table: str, figures: list[Any]
) -> list[pathlib.Path]:
    """Writes ``<name>.json``, ``<name>.md`` and ``<name>_<i>.png`` into ``out``."""
    folder = pathlib.Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    payload = {"benchmark": name, "machine": machine(), **results}
    files = [folder / f"{name}.json", folder / f"{name}.md"]
    io.write_text(files[0], json.dumps(payload, indent=2, default=_jsonable))
    io.write_text(files[1], f"# jgd bench {name}\n\n{_header(payload['machine'])}\n\n{table}\n")
    for i, fig in enumerate(figures):
        path = folder / f"{name}_{i + 1}.png"
        with io.atomic(path) as f:
            fig.savefig(f, dpi=110, format="png")
        files.append(path)
    import matplotlib.pyplot as plt

    for fig in figures:
        plt.close(fig)
    return files


def _header(m: dict[str, Any]) -> str:
    return (
        f"Measured {m['date']} on {m['platform']} ({m['cpu_count']} CPUs), "
        f"jax {m['jax']}, torch {m.get('torch')}, device {m['device']}."
    )


def _jsonable(x: Any) -> Any:
    if isinstance(x, np.generic):
        return x.item()
    if isinstance(x, np.ndarray):
        return x.tolist()
    return str(x)


def markdown(headers: list[str], rows: list[list[Any]]) -> str:
    """A markdown table."""
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def slope(x: Any, y: Any) -> float:
    """The log-log slope of y against x (least squares)."""
    return float(np.polyfit(np.log(np.asarray(x, float)), np.log(np.asarray(y, float)), 1)[0])
