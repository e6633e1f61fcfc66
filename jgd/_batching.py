"""Data as a run takes it: a pytree of arrays sharing a leading example axis, checked, and the
batch at some example indices (the rows a batch plan, ``_plans``, gives each step).
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental import checkify

from jgd import _errors


def num_examples(data: Any) -> int:
    """The shared leading dimension of every array in ``data``, checked."""
    leaves = _errors.leaf_paths(data)
    if not leaves:
        raise ValueError("data has no arrays; expected a pytree of arrays such as (X, y).")
    sizes = []
    for path, leaf in leaves:
        dtype = getattr(leaf, "dtype", None)
        dtype = np.asarray(leaf).dtype if dtype is None else np.dtype(dtype)
        if not any(jnp.issubdtype(dtype, kind) for kind in (jnp.bool_, jnp.integer, jnp.floating)):
            raise ValueError(
                f"data{path} has dtype {dtype}; expected numbers (bools, ints or floats). "
                "Convert it first, e.g. np.asarray(x, np.float32)."
            )
        shape = np.shape(leaf)
        if len(shape) == 0:
            raise ValueError(
                f"data{path} is a scalar; every array in data needs a leading example axis."
            )
        sizes.append((path, shape[0]))
    if len({n for _, n in sizes}) > 1:
        listed = ", ".join(f"data{p}: {n}" for p, n in sizes)
        raise ValueError(f"data arrays disagree on the number of examples (leading dim): {listed}.")
    m = sizes[0][1]
    if m == 0:
        raise ValueError("data is empty: its arrays have 0 examples (leading dimension 0).")
    return int(m)


def check_finite(data: Any) -> None:
    """Raises ValueError naming the first array and row holding a NaN or Inf.

    Host arrays are checked on the host; device arrays on their device, where one boolean per
    array comes back (a row mask only when something is wrong): the data is never copied back.
    One pass over the data, no row mask unless something is wrong: a device array's sum is
    finite exactly when every element is, unless the sum overflows (then every element is
    checked). A device array is immutable: one found finite is not read again while it lives
    (``_errors.known_finite``); a host array, which can change in place, is read every time.
    """
    for path, leaf in _errors.leaf_paths(data):
        if not jnp.issubdtype(jnp.result_type(leaf), jnp.inexact):
            continue
        if isinstance(leaf, jax.Array):
            if _errors.known_finite(leaf):
                continue
            if bool(_sum_finite(leaf)) or bool(_all_finite(leaf)):
                _errors.remember_finite(leaf)
                continue
            bad = np.asarray(_bad_rows(leaf))
        else:
            arr = np.asarray(leaf)
            if np.isfinite(arr).all():
                continue
            bad = ~np.isfinite(arr.reshape(arr.shape[0], -1)).all(axis=1)
        if bad.any():
            row = int(np.argmax(bad))
            raise ValueError(
                f"data{path} has a non-finite value (NaN or Inf) in row {row} "
                f"({int(bad.sum())} bad rows in all); clean or drop those examples first."
            )


@jax.jit
def _sum_finite(x: jax.Array) -> jax.Array:
    return jnp.isfinite(jnp.sum(x))


@jax.jit
def _all_finite(x: jax.Array) -> jax.Array:
    return jnp.all(jnp.isfinite(x))


@jax.jit
def _bad_rows(x: jax.Array) -> jax.Array:
    return ~jnp.all(jnp.isfinite(x.reshape(x.shape[0], -1)), axis=1)


def check_rows(rows: np.ndarray, m: int, name: str = "rows") -> None:
    """Raises unless ``rows`` holds integer example indices in [0, m)."""
    if not np.issubdtype(rows.dtype, np.integer):
        raise ValueError(f"{name} has dtype {rows.dtype}; expected integer example indices.")
    if rows.size == 0:
        return
    low, high = int(rows.min()), int(rows.max())
    if low < 0 or high >= m:
        bad = low if low < 0 else high
        raise ValueError(f"{name} holds index {bad}, outside [0, {m}) for data with {m} examples.")


def gather(data: Any, rows: jax.Array) -> Any:
    """The batch of ``data`` at example indices ``rows``."""
    return jax.tree_util.tree_map(lambda a: jnp.take(a, rows, axis=0), data)


def one_batch(rows: jax.Array) -> jax.Array:
    """``rows``, checked to be one batch: a non-empty 1-D int array (its shape and dtype only)."""
    if not jnp.issubdtype(rows.dtype, jnp.integer):
        raise TypeError(
            f"rows has dtype {rows.dtype}; expected a 1-D int array of example indices "
            "(one batch), e.g. jnp.array([3, 1, 4])."
        )
    if rows.ndim != 1:
        raise ValueError(
            f"rows has shape {rows.shape}; expected a 1-D int array of example indices (one "
            "batch). For K steps at once, use jgd.scan_steps with rows of shape (K, B)."
        )
    if rows.shape[0] == 0:
        raise ValueError("rows is empty (shape (0,)); a batch needs at least one example index.")
    return rows


def in_range(rows: jax.Array, num_examples: int, checked: bool = False) -> jax.Array:
    """``rows`` with every index outside ``0..num_examples - 1`` past the end (unsigned).

    Traced rows (on the device, or inside your ``jax.jit``) cannot be read without stopping the
    program, so they are not refused there; instead a row out of range gathers NaN (float arrays;
    int arrays the dtype's lowest value), making the loss NaN, never another example's value. A
    negative row would otherwise pick example ``num_examples - k``, as NumPy indexing does, which a
    NumPy array of the same rows is refused for. ``checked``: a ``checkify.debug_check`` too, so
    that under ``jax.experimental.checkify.checkify`` the step raises, naming the row. Not by
    default: a program holding a check loses jax's C++ dispatch fast path (about 90 µs a call
    here, where a batch-1 step costs about 90 µs in all).
    """
    if checked:
        ok = (rows >= 0) & (rows < num_examples)
        first = jnp.argmin(ok)
        checkify.debug_check(
            jnp.all(ok),
            f"with_data: rows[{{i}}] = {{row}} is outside 0..{num_examples - 1}, the examples "
            "of the data",
            i=first,
            row=rows[first],
        )
    if jnp.issubdtype(rows.dtype, jnp.unsignedinteger):
        return rows
    # as unsigned ints, negative rows lie past the end too: the gather fills them like rows >= m
    # (a select on the rows instead costs 20% of a batch-64 step: XLA:CPU's gather loop runs it
    # per element of the batch)
    return rows.astype(jnp.uint64 if rows.dtype.itemsize == 8 else jnp.uint32)


def check_count(count: Any, length: int) -> None:
    """``count`` of ``scan_steps``: an int from 0 to ``length``; an int array of shape () (its
    value is not read on the host: a device value is clamped to 0..length in the program)."""
    if isinstance(count, bool | np.bool_) or not (
        isinstance(count, int | np.integer)
        or (isinstance(count, jax.Array | np.ndarray) and np.shape(count) == ())
    ):
        raise TypeError(
            f"count={_errors.describe(count)} is not valid; expected an int from 0 to {length} "
            "(the steps of xs to run), or None for all."
        )
    if not jnp.issubdtype(jnp.result_type(count), jnp.integer):
        raise TypeError(
            f"count has dtype {jnp.result_type(count)}; expected an int from 0 to {length}."
        )
    if isinstance(count, int | np.integer) and not 0 <= int(count) <= length:
        raise ValueError(
            f"count={int(count)} is not valid; expected an int from 0 to {length} (xs holds "
            f"{length} steps)."
        )
