"""Data bigger than memory: ``fit(..., stream=True)`` keeps ``data`` on the host and moves each
chunk's batches to the device ahead of the compute.

The data (a NumPy memmap, or any array-like with ``shape``, ``dtype`` and integer-array
indexing) is never read whole. For each chunk of steps the host reads the rows the batch plan
names (one fancy-indexed read per array), checks them, and puts the block on the device; the
compiled chunk then gathers its batches from that block exactly as it gathers them from
device-resident data, so a streamed run equals the in-memory one. While the device runs chunk k,
a background thread reads chunk k+1.

Why not grain: grain's samplers and loaders draw their own order, but a jgd run must replay its
own batch plan exactly (``jax.random`` permutations per epoch, or an explicit ``order``), and the
guard replays a chunk from its start; a chunk here is a single indexed read of known rows, so one
prefetch thread is all that is needed, and nothing of grain's would be used but a thread.
"""

from __future__ import annotations

import concurrent.futures
import os
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jgd import _tensors

BLOCK_BYTES = 16 * 2**20  # at most about this much of the data in one chunk's block


class HostData:
    """The run's data left on the host: checked once for shape and kind, read by rows."""

    def __init__(self, data: Any):
        self.data = data
        self.leaves, self.treedef = jax.tree_util.tree_flatten(data)
        self.leaves = [TorchRows(x) if _tensors.is_torch(x) else x for x in self.leaves]
        self.data = jax.tree_util.tree_unflatten(self.treedef, self.leaves)
        if not self.leaves:
            raise ValueError("data has no arrays; stream=True needs arrays of examples.")
        for i, leaf in enumerate(self.leaves):
            shape, dtype = getattr(leaf, "shape", None), getattr(leaf, "dtype", None)
            if shape is None or dtype is None or not hasattr(leaf, "__getitem__") or not shape:
                raise TypeError(
                    f"data array {i} ({type(leaf).__name__}) cannot be streamed; stream=True "
                    "takes arrays with shape, dtype and integer-array indexing (a NumPy memmap)."
                )
            try:
                dtype = np.dtype(dtype)
            except TypeError:
                raise TypeError(
                    f"data array {i} ({type(leaf).__name__}) has dtype {dtype!r}, which NumPy "
                    "cannot read; stream=True takes arrays of NumPy dtypes (or torch tensors)."
                ) from None
            if not jnp.issubdtype(dtype, jnp.number):  # bfloat16 included
                raise TypeError(f"data array {i} ({self.name(i)}) has dtype {dtype}, not numbers.")
        self.m = int(self.leaves[0].shape[0])
        for i, leaf in enumerate(self.leaves):
            if int(leaf.shape[0]) != self.m:
                raise ValueError(
                    f"data arrays disagree on the number of examples: {self.name(0)} has "
                    f"{self.m}, {self.name(i)} has {leaf.shape[0]}."
                )
        self.row_bytes = sum(
            int(np.prod(leaf.shape[1:], dtype=np.int64)) * np.dtype(leaf.dtype).itemsize
            for leaf in self.leaves
        )

    def name(self, i: int) -> str:
        path = getattr(self.leaves[i], "filename", None)
        return f"data array {i}" + (f" (file {path})" if path else "")

    def read(self, rows: np.ndarray, into: list | None = None) -> Any:
        """The examples ``rows`` of every array, as NumPy arrays (checked finite); ``into``:
        one buffer per array (or None) to read them into, its rows past ``len(rows)`` zeroed."""
        into = into or [None] * len(self.leaves)
        return jax.tree_util.tree_unflatten(
            self.treedef,
            [self._read(i, leaf, rows, into[i]) for i, leaf in enumerate(self.leaves)],
        )

    def _read(self, i: int, leaf: Any, rows: np.ndarray, into: Any = None) -> np.ndarray:
        self._check_file(i, leaf)
        try:
            block, finite = _take(leaf, rows, into)
        except Exception as first:  # any array-like's own error: named below, never raw
            # an h5py-style dataset takes increasing, distinct indices only: read those, reorder
            unique, inverse = np.unique(rows, return_inverse=True)
            try:
                block, finite = np.asarray(leaf[unique])[inverse], None
            except Exception:
                raise OSError(
                    f"reading examples from {self.name(i)} failed: {type(first).__name__}: {first}"
                ) from first
        read = block[: len(rows)] if block is into else block  # in place: padded after them
        expected = (len(rows), *tuple(leaf.shape[1:]))
        if read.shape != expected:
            raise OSError(
                f"{self.name(i)} returned an array of shape {read.shape} for {len(rows)} rows; "
                f"expected {expected}: its indexing does not return the rows asked for."
            )
        if jnp.issubdtype(read.dtype, jnp.inexact) and not (
            finite if finite is not None else np.isfinite(read).all()
        ):
            bad = int(rows[np.argwhere(~np.isfinite(read.reshape(len(rows), -1)))[0][0]])
            raise ValueError(f"{self.name(i)} holds a NaN or Inf in example {bad}.")
        return block

    def _check_file(self, i: int, leaf: Any) -> None:
        """A memmap whose file shrank would crash the process on reading (SIGBUS): say so."""
        path = getattr(leaf, "filename", None)
        if path is None or not isinstance(leaf, np.memmap):
            return
        need = int(getattr(leaf, "offset", 0)) + leaf.nbytes
        try:
            have = os.stat(path).st_size
        except OSError as e:
            raise OSError(f"{self.name(i)} cannot be read: {e.strerror}") from e
        if have < need:
            raise OSError(
                f"{self.name(i)} holds {have:,} bytes but its shape {tuple(leaf.shape)} needs "
                f"{need:,}: the file was truncated or the shape does not match it."
            )


ALIGN = 64  # bytes: jax's CPU client puts an array this aligned on the device without a copy


def aligned(shape: tuple, dtype: Any) -> np.ndarray:
    """A new array aligned to ``ALIGN`` bytes: on a CPU device, ``jax.device_put`` aliases it
    instead of copying it."""
    size = int(np.prod(shape, dtype=np.int64)) * np.dtype(dtype).itemsize
    raw = np.empty(size + ALIGN, np.uint8)
    skip = (-raw.ctypes.data) % ALIGN
    return raw[skip : skip + size].view(dtype).reshape(shape)


SLICE_BYTES = 2**20  # rows read, then checked, while they are in the cache


def _take(leaf: Any, rows: np.ndarray, into: Any = None) -> tuple[np.ndarray, bool | None]:
    """The examples ``rows`` of ``leaf``, and whether they are all finite (None: not known).

    A NumPy array (a memmap) is read straight into an aligned buffer (``into``, its other rows
    zeroed, or a new one), which then goes to a CPU device without a copy, a slice of about
    ``SLICE_BYTES`` at a time, each checked finite while it is still in the cache: a second
    pass over the whole block from memory cost as much again as the read, on the cores XLA
    computes on. Other array-likes are read by their own indexing (and checked by the caller).
    """
    if not isinstance(leaf, np.ndarray):
        return np.asarray(leaf[rows]), None
    if into is None:
        into = aligned((len(rows), *leaf.shape[1:]), leaf.dtype)
    finite = jnp.issubdtype(leaf.dtype, jnp.inexact) or None
    row_bytes = max(1, into[:1].nbytes)
    step = max(1, SLICE_BYTES // row_bytes)
    mask = np.empty((min(step, len(rows)), *leaf.shape[1:]), bool) if finite else None
    for start in range(0, len(rows), step):
        part = into[start : min(start + step, len(rows))]  # mode "raise" would buffer the read
        np.take(leaf, rows[start : start + len(part)], axis=0, out=part, mode="clip")
        if finite:  # into one reused mask: a new one per slice cost half as much again
            finite = bool(np.isfinite(part, out=mask[: len(part)]).all())
    into[len(rows) :] = 0
    return into, finite


class TorchRows:
    """A torch tensor read by rows as NumPy arrays (``_tensors.to_numpy``): the shape, dtype and
    integer-array indexing streaming needs; only the rows asked for are copied off a GPU."""

    def __init__(self, tensor: Any):
        import torch  # only when a tensor was given: torch is optional

        self.tensor, self._torch = tensor.detach(), torch
        self.shape = tuple(tensor.shape)
        self.dtype = _tensors.to_numpy(self.tensor[:0]).dtype

    def __getitem__(self, rows: Any) -> np.ndarray:
        index = self._torch.from_numpy(np.array(rows, dtype=np.int64)).to(self.tensor.device)
        return _tensors.to_numpy(self.tensor[index])


def chunk_length(chunk: int, batch_size: int, row_bytes: int) -> int:
    """The largest divisor of ``chunk`` whose block stays under ``BLOCK_BYTES`` (at least 1)."""
    cap = max(1, BLOCK_BYTES // max(1, batch_size * row_bytes))
    return max(d for d in range(1, min(chunk, cap) + 1) if chunk % d == 0)


RING = 3  # blocks read into reused buffers: the chunk guarded, the one running, the one read


class Prefetch:
    """Each chunk's block of examples, on the device, read one chunk ahead on a thread.

    The blocks of NumPy arrays are read into a ring of ``RING`` aligned buffers, which a CPU
    device aliases rather than copies: chunk k's buffer is read again for chunk k + 3, when the
    driver has guarded chunk k + 1 (it runs at most one chunk beyond the one it guards), so
    chunk k and any replay of it are done. Reused buffers cost no page faults; fresh 16 MB
    ones cost as much as the reading.
    """

    def __init__(self, host: HostData, rows: np.ndarray, chunk: int, put: Any):
        self.host, self.rows, self.chunk, self.put = host, np.asarray(rows), chunk, put
        self.batch = self.rows.shape[1]
        self.local = put(np.arange(chunk * self.batch, dtype=np.int32).reshape(chunk, self.batch))
        self.pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="jgd-stream")
        self.pending: dict[int, concurrent.futures.Future] = {}
        self.ring: dict[int, list] = {}

    def block(self, start: int) -> tuple[Any, Any]:
        """``(block, rows)`` for the chunk from step ``start``; starts reading the next one."""
        future = self.pending.pop(start, None) or self.pool.submit(self._load, start)
        following = start + self.chunk
        if following < len(self.rows) and following not in self.pending:
            self.pending[following] = self.pool.submit(self._load, following)
        try:
            return future.result(), self.local
        except (OSError, ValueError):  # ours: they name the array and the example
            raise
        except Exception as e:  # anything else the prefetch thread met, named here
            raise OSError(
                f"streaming the examples of steps {start}..{start + self.chunk - 1} failed: "
                f"{type(e).__name__}: {e}"
            ) from e

    def _load(self, start: int) -> Any:
        wanted = self.rows[start : start + self.chunk].reshape(-1)
        block = self.host.read(wanted, self._buffers(start // self.chunk % RING))
        size = self.chunk * self.batch  # a short last chunk: the same shapes

        def pad(a):  # an array-like read by its own indexing: padded here
            extra = size - len(a)
            return np.concatenate([a, np.zeros((extra, *a.shape[1:]), a.dtype)]) if extra else a

        return self.put(jax.tree_util.tree_map(pad, block))

    def _buffers(self, slot: int) -> list:
        """The ring's buffers of ``slot``: one per NumPy array (None for other array-likes)."""
        if slot not in self.ring:
            n = self.chunk * self.batch
            self.ring[slot] = [
                aligned((n, *leaf.shape[1:]), leaf.dtype) if isinstance(leaf, np.ndarray) else None
                for leaf in self.host.leaves
            ]
        return self.ring[slot]

    def close(self) -> None:
        for future in self.pending.values():
            future.cancel()
        self.pool.shutdown(wait=True)


__all__ = ["BLOCK_BYTES", "HostData", "Prefetch", "aligned", "chunk_length"]
