"""Fingerprints that say what a checkpoint belongs to, the same in every process.

A run's checkpoint must not be resumed by another run: other data values, another loss function,
other optimizer numbers. Python's ``hash`` and ``repr`` of functions change with every process
(``<function f at 0x7f...>``), so a function is identified by what it computes: its code
(bytecode, constants, names), its defaults, the values its closure holds and the globals it reads,
recursively. Arrays by their bytes. No library does this for closures (``pickle`` refuses lambdas;
``cloudpickle`` output is not stable across processes), hence this module.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import re
import types
from typing import Any

import jax
import numpy as np

_ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+")
_DEPTH = 6  # how deep closures and containers are followed


def fingerprint(obj: Any) -> str:
    """A hex digest of what ``obj`` is and computes (see the module docstring).

    Examples:
      >>> from jgd._fingerprint import fingerprint
      >>> fingerprint(lambda w: w + 1) == fingerprint(lambda w: w + 1)
      True
      >>> fingerprint(lambda w: w + 1) == fingerprint(lambda w: w + 2)
      False
    """
    digest = hashlib.sha1()
    _feed(digest, obj, _DEPTH, set())
    return digest.hexdigest()


def _feed(digest: Any, obj: Any, depth: int, seen: set[int]) -> None:
    def text(s: str) -> None:
        digest.update(s.encode())

    if obj is None or isinstance(obj, bool | int | float | complex | str | bytes):
        text(f"{type(obj).__name__}:{obj!r};")
        return
    if isinstance(obj, jax.Array) and jax.dtypes.issubdtype(obj.dtype, jax.dtypes.prng_key):
        text(f"key:{jax.random.key_impl(obj)};")  # a typed PRNG key: by its impl and data
        obj = jax.random.key_data(obj)
    if isinstance(obj, np.ndarray | np.generic | jax.Array):
        arr = np.asarray(obj)
        text(f"array{arr.shape}{arr.dtype};")
        digest.update(np.ascontiguousarray(arr).tobytes())
        return
    if depth <= 0 or id(obj) in seen:
        text(f"{type(obj).__qualname__};")
        return
    seen = seen | {id(obj)}

    def feed(x: Any) -> None:
        _feed(digest, x, depth - 1, seen)

    if isinstance(obj, types.ModuleType):
        text(f"module:{obj.__name__};")
    elif isinstance(obj, list | tuple):
        text(f"{type(obj).__qualname__}[")
        for x in obj:
            feed(x)
        text("]")
    elif isinstance(obj, dict):
        text("dict{")
        for k in sorted(obj, key=repr):
            feed(k)
            feed(obj[k])
        text("}")
    elif isinstance(obj, functools.partial):
        text("partial(")
        feed(obj.func)
        feed(obj.args)
        feed(obj.keywords)
        text(")")
    elif isinstance(obj, types.MethodType):
        feed(obj.__func__)
        text(f"bound to {type(obj.__self__).__qualname__};")
    elif isinstance(obj, types.FunctionType):
        _feed_function(text, feed, obj)
    elif isinstance(obj, types.CodeType):
        _feed_code(text, feed, obj)
    elif dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        text(f"{type(obj).__qualname__}(")
        for field in dataclasses.fields(obj):
            text(f"{field.name}=")
            feed(getattr(obj, field.name))
        text(")")
    else:  # builtins, library objects: their repr without memory addresses
        text(f"{type(obj).__qualname__}:{_ADDRESS.sub('', repr(obj))};")


def _feed_function(text: Any, feed: Any, fn: types.FunctionType) -> None:
    text(f"function {fn.__module__}.{fn.__qualname__}(")
    _feed_code(text, feed, fn.__code__)
    feed(fn.__defaults__)
    feed(fn.__kwdefaults__)
    for cell in fn.__closure__ or ():
        try:
            feed(cell.cell_contents)
        except ValueError:  # an empty cell
            text("<empty>;")
    for name in _global_names(fn.__code__):  # the globals it reads, when they are values
        if name in fn.__globals__:
            value = fn.__globals__[name]
            text(f"global {name}=")
            feed(value)
    text(")")


def _feed_code(text: Any, feed: Any, code: types.CodeType) -> None:
    text(f"code {code.co_name}:")
    text(code.co_code.hex())
    feed(code.co_names)
    for const in code.co_consts:
        feed(const)


def _global_names(code: types.CodeType) -> list[str]:
    names = list(code.co_names)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            names += _global_names(const)
    return sorted(set(names))
