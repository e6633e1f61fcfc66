"""``jgd bench ad --function MODULE:NAME --input-shape N[,M...]``: forward or reverse for your own
function. ``MODULE`` is an importable module (``mypkg.models``) or a file (``path/to/f.py``);
``NAME`` a function of one array of the given shape, evaluated at standard normal numbers."""

from __future__ import annotations

import importlib
import importlib.util
import pathlib
import sys
from collections.abc import Callable
from typing import Any

import jax

import jgd
from jgd.bench import _harness as hn


def load(spec: str) -> Callable:
    """The callable ``MODULE:NAME`` names; a ValueError naming what is wrong otherwise."""
    module_name, sep, name = spec.rpartition(":")
    if not sep or not module_name or not name:
        raise ValueError(f"--function {spec!r}: expected MODULE:NAME, e.g. mypkg.nets:f or f.py:f.")
    try:
        if module_name.endswith(".py"):
            path = pathlib.Path(module_name)
            if not path.is_file():
                raise ValueError(f"--function {spec!r}: no file {module_name}.")
            found = importlib.util.spec_from_file_location(path.stem, path)
            module = importlib.util.module_from_spec(found)
            sys.modules[path.stem] = module
            found.loader.exec_module(module)
        else:
            module = importlib.import_module(module_name)
    except ImportError as error:
        raise ValueError(f"--function {spec!r}: cannot import {module_name} ({error}).") from None
    f = getattr(module, name, None)
    if not callable(f):
        raise ValueError(f"--function {spec!r}: {module_name} has no function {name}.")
    return f


def run(function: str, input_shape: tuple[int, ...] | None, out: str) -> dict[str, Any]:
    if not input_shape:
        raise ValueError("--function needs --input-shape, e.g. --input-shape 1000 or 32,32.")
    f = load(function)
    x = jax.random.normal(jax.random.key(0), input_shape)
    report = jgd.compare_modes(f, x)
    print(report)
    results = {
        "function": function,
        "input_shape": list(input_shape),
        "what": report.what,
        "rows": [r._asdict() for r in report.rows],
        "verdict": report.verdict,
    }
    text = hn.markdown(
        ["mode", "time (ms)", "XLA memory (MiB)"],
        [[r.mode, f"{r.seconds * 1e3:.3f}", f"{r.memory_mib:.2f}"] for r in report.rows],
    )
    files = hn.write(
        out, "ad_function", results, f"{report.what}\n\n{text}\n\n{report.verdict}", []
    )
    print("written:", ", ".join(str(p) for p in files))
    return results
