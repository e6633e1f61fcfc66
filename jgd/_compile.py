"""Compile once per program and shape, and say how long it took.

``jax.jit`` caches too, but hides whether a call compiled and for how long. jgd needs both (a
``FitResult`` keeps compile time apart from run time, and a changed learning rate must visibly
reuse the program), so runners are lowered and compiled ahead of time here and kept in a small
LRU cache keyed by the static program and the arguments' tree structure, shapes, dtypes and
shardings: never by their values.
"""

from __future__ import annotations

import collections
import contextlib
import threading
import time
from collections.abc import Callable, Hashable
from typing import Any

import jax

_CACHE: collections.OrderedDict = collections.OrderedDict()
_MAX_ENTRIES = 64
_stats = {"compiles": 0}
_clocks = threading.local()  # the clocks open in this thread (``clock()``)


def _signature(args: tuple) -> Hashable:
    leaves, treedef = jax.tree_util.tree_flatten(args)
    avals = []
    for x in leaves:
        aval = jax.typeof(x) if hasattr(jax, "typeof") else jax.core.get_aval(x)
        sharding = getattr(x, "sharding", None)
        avals.append((aval.shape, str(aval.dtype), getattr(aval, "weak_type", False), sharding))
    return treedef, tuple(avals)


def call(fn: Callable, static: Hashable, *args: Any) -> tuple[Any, float]:
    """Runs ``fn(static, *args)`` compiled; returns ``(output, seconds spent compiling)``.

    The seconds are 0.0 when an earlier call already compiled the same program and shapes.
    """
    key = (fn, static, _signature(args))
    compiled = _CACHE.get(key)
    seconds = 0.0
    if compiled is None:
        start = time.perf_counter()
        compiled = jax.jit(fn, static_argnums=0).lower(static, *args).compile()
        seconds = time.perf_counter() - start
        _stats["compiles"] += 1
        _CACHE[key] = compiled
        if len(_CACHE) > _MAX_ENTRIES:
            _CACHE.popitem(last=False)
    else:
        _CACHE.move_to_end(key)
    return compiled(*args), seconds


class Clock:
    """The seconds spent compiling while it was open (``clock()``)."""

    seconds: float = 0.0


@contextlib.contextmanager
def clock():
    """``with clock() as c:``: every ``run`` inside adds its compile seconds to ``c.seconds``."""
    c = Clock()
    open_clocks = _clocks.__dict__.setdefault("open", [])
    open_clocks.append(c)
    try:
        yield c
    finally:
        open_clocks.remove(c)


def run(fn: Callable, static: Hashable, *args: Any) -> Any:
    """``fn(static, *args)`` compiled (``call``), its compile seconds added to the open clocks."""
    out, seconds = call(fn, static, *args)
    for c in getattr(_clocks, "open", ()):
        c.seconds += seconds
    return out


def compile_count() -> int:
    """How many programs jgd's runners have compiled in this process (for tests and curiosity).

    Examples:
      >>> import jgd
      >>> isinstance(jgd.compile_count(), int)
      True
    """
    return _stats["compiles"]
