"""``jgd bench ad --function MODULE:NAME --input-shape N[,M...]``: forward or reverse for your own
function. ``MODULE`` is an importable module (``mypkg.models``) or a file (``path/to/f.py``);
``NAME`` a function of one array of the given shape, evaluated at standard normal numbers."""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

import jgd
from jgd.apps.user_code import load, where
from jgd.bench import _harness as hn

# A Jacobian larger than this share of the machine's memory is refused before anything runs:
# forward mode builds it column by column and reverse mode row by row, both hold all of it.
_MEMORY_SHARE = 0.5


def check(f: Callable, spec: str, input_shape: tuple[int, ...]) -> tuple[int, int]:
    """Traces ``f`` once on the shape (nothing runs) and returns ``(n, m)`` of its Jacobian.

    Raises:
      ValueError: naming ``--function`` or ``--input-shape`` when ``f`` cannot be called on one
        array of that shape, is written with NumPy instead of ``jax.numpy``, returns something
        that is not an array of floats, or its Jacobian would not fit in memory.
    """
    n = math.prod(input_shape)
    budget = _MEMORY_SHARE * _physical_memory()
    if 4 * n > budget:
        raise ValueError(
            f"--input-shape {','.join(map(str, input_shape))}: {n:,} float32 inputs "
            f"({4 * n / 2**30:.1f} GiB) do not fit in {budget / 2**30:.1f} GiB "
            f"(half this machine's memory)."
        )
    x = jax.ShapeDtypeStruct(input_shape, jnp.float32)
    try:
        out = jax.eval_shape(f, x)
    except jax.errors.TracerArrayConversionError:
        raise ValueError(
            f"--function {spec!r} converts its input to a NumPy array; jgd differentiates it "
            "with JAX, so write it with jax.numpy (import jax.numpy as jnp) instead of numpy."
        ) from None
    except Exception as error:
        raise ValueError(
            f"--function {spec!r}: calling it on one float32 array of shape {input_shape} "
            f"raised {where(error)}"
        ) from None
    leaves = jax.tree_util.tree_leaves(out)
    bad = [leaf for leaf in leaves if not jnp.issubdtype(leaf.dtype, jnp.inexact)]
    if not leaves or bad:
        raise ValueError(
            f"--function {spec!r} returned {_describe(out)}; it must return an array of floats "
            "(or a pytree of them) to be differentiated."
        )
    m = sum(math.prod(leaf.shape) for leaf in leaves)
    if 4 * n * m > budget:
        raise ValueError(
            f"--input-shape {','.join(map(str, input_shape))}: the Jacobian R^{n} -> R^{m} holds "
            f"{n * m:,} numbers ({4 * n * m / 2**30:.1f} GiB), more than {budget / 2**30:.1f} GiB "
            "(half this machine's memory); choose a smaller shape."
        )
    return n, m


def _describe(out: Any) -> str:
    leaves = jax.tree_util.tree_leaves(out)
    if not leaves:
        return f"{type(out).__name__} with no arrays"
    return ", ".join(sorted({f"{leaf.dtype} array" for leaf in leaves}))


def _physical_memory() -> int:
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):  # not POSIX: assume a laptop's 8 GiB
        return 8 * 2**30


def run(function: str, input_shape: tuple[int, ...] | None, out: str) -> dict[str, Any]:
    if not input_shape:
        raise ValueError("--function needs --input-shape, e.g. --input-shape 1000 or 32,32.")
    f = load(function)
    check(f, function, input_shape)
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
