"""Compile once per program and shape, and say how long it took.

``jax.jit`` caches too, but hides whether a call compiled and for how long. jgd needs both (a
``FitResult`` keeps compile time apart from run time, and a changed learning rate must visibly
reuse the program), so runners are lowered and compiled ahead of time here and kept in a small
LRU cache keyed by the static program and the arguments' tree structure, shapes, dtypes and
shardings: never by their values.

A static program holding new objects (an equal optimizer, loss or schedule built afresh, as a
notebook cell or a loop over folds does) misses that cache: it is then lowered, and the lowered
program's digest (``digest``: its text without debug info, symbols numbered in order) finds the
executable an equal program compiled before. Lowering costs tens of milliseconds; XLA's compile,
seconds. jax's persistent compilation cache keys by the same kind of fingerprint, but only on
disk, for programs slower to compile than a threshold, and set globally: jgd leaves it to the
user.
"""

from __future__ import annotations

import collections
import contextlib
import hashlib
import re
import threading
import time
from collections.abc import Callable, Hashable
from typing import Any

import jax
import numpy as np

_CACHE: collections.OrderedDict = collections.OrderedDict()
_BY_DIGEST: collections.OrderedDict = collections.OrderedDict()  # executables by ``digest``
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
    signature = _signature(args)
    key = (fn, static, signature)
    compiled = _CACHE.get(key)
    seconds = 0.0
    if compiled is None:
        start = time.perf_counter()
        lowered = jax.jit(fn, static_argnums=0).lower(static, *args)
        twin = (digest(lowered), signature, lowered.out_tree)
        compiled = _BY_DIGEST.get(twin)
        if compiled is None:
            compiled = lowered.compile()
            _stats["compiles"] += 1
            _remember(_BY_DIGEST, twin, compiled)
        seconds = time.perf_counter() - start
        _remember(_CACHE, key, compiled)
    else:
        _CACHE.move_to_end(key)
    return compiled(*args), seconds


def _remember(cache: collections.OrderedDict, key: Hashable, value: Any) -> None:
    cache[key] = value
    if len(cache) > _MAX_ENTRIES:
        cache.popitem(last=False)


_SYMBOL = re.compile(r"@[\w$.\-]+")


def digest(lowered: Any) -> str:
    """The sha256 of a lowered program's text without debug info, its symbols (function names)
    numbered in order of appearance: a renamed function or local leaves it unchanged, while
    any changed constant, shape, dtype, sharding or operation changes it (constants the
    program closes over are printed by value)."""
    text = lowered.as_text(debug_info=False)
    names: dict[str, str] = {}
    text = _SYMBOL.sub(lambda m: names.setdefault(m.group(0), f"@f{len(names)}"), text)
    return hashlib.sha256(text.encode()).hexdigest()


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


_TRACE_ONLY = (
    jax.errors.ConcretizationTypeError,
    jax.errors.TracerArrayConversionError,
    jax.errors.TracerIntegerConversionError,
)


def concrete(fn: Callable, static: Hashable, *args: Any) -> Any:
    """``fn(static, *args)``, compiled as one program (``run``) when called on concrete arrays.

    The analysis tools (``hvp``, ``max_stable_learning_rate``, ``gradient_noise_scale``) are
    written as traced code (the first two are jittable); called eagerly, each of their many small
    operations would dispatch (and first compile) on its own: several seconds for a small
    module. Traced arguments (the tool inside the user's ``jax.jit``), leaves that are not
    arrays (Python numbers too), an unhashable ``static``, or a loss that reads its batch's
    values in Python (which ``jax.jit`` cannot trace) run ``fn`` as it is.
    """
    leaves = jax.tree_util.tree_leaves(args)
    if not all(isinstance(x, jax.Array | np.ndarray) for x in leaves) or any(
        isinstance(x, jax.core.Tracer) for x in leaves
    ):  # a Python number in a batch may be a shape or an index the loss needs as it is
        return fn(static, *args)
    try:
        hash(static)
    except TypeError:
        return fn(static, *args)
    try:
        return run(fn, static, *args)
    except _TRACE_ONLY:
        return fn(static, *args)


def compile_count() -> int:
    """How many programs jgd's runners have compiled in this process (for tests and curiosity).

    Examples:
      >>> import jgd
      >>> isinstance(jgd.compile_count(), int)
      True
    """
    return _stats["compiles"]
