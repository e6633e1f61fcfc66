"""The blocks a training loop is built from besides ``make_step``: ``with_data``, ``scan_steps``.

``with_data(step, data)`` keeps the data on the device and gathers each batch by index inside the
compiled program; ``scan_steps(step)`` runs K steps as one loop. ``fit`` and ``sweep`` are built
from these same blocks (``_engine``), so a loop of your own runs the same programs.

A block holding data is a ``Bound``: a hashable program and its operands (the data). Calling it
runs ``jax.jit(program)(operands, ...)``, so the data is an argument of the compiled program, not
a constant: ``jax.jit`` of a function that closes over a concrete array bakes the array into the
program (for 8192 MNIST-sized rows, 51 MB of HLO and a slower compile), and compiles again for
other data of the same shape. Inside your own ``jax.jit``, pass the data as an argument and call
``with_data`` there; the block is then an ordinary traced function.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jgd import _batching, _errors, _parallel, _tensors


@dataclasses.dataclass(frozen=True)
class Gather:
    """Program: gather the batch at ``rows`` from the operands (the data), then ``step``."""

    step: Callable
    num_examples: int
    mesh: Any = None
    checked: bool = False

    def __call__(self, data: Any, state: Any, rows: Any) -> tuple[Any, Any]:
        rows = _batching.one_batch(jnp.asarray(rows))
        rows = _batching.in_range(rows, self.num_examples, self.checked)
        batch = _parallel.shard_batch(_batching.gather(data, rows), self.mesh)
        return self.step(state, batch)

    def check(self, rows: Any) -> None:
        """Host-side check of index values, when they are on the host (free of a device sync).

        Kept to a few Python operations: it runs on every call, while XLA computes the previous
        step on the cores, where NumPy's reductions cost several times their quiet-machine time.
        """
        if isinstance(rows, list | tuple):
            rows = np.asarray(rows)
        if not isinstance(rows, np.ndarray):
            return
        if rows.dtype.kind not in "iu":
            raise TypeError(
                f"rows has dtype {rows.dtype}; expected integer example indices, e.g. "
                "np.array([3, 1, 4])."
            )
        if rows.size <= 64:
            values = rows.ravel().tolist()
            if values and (min(values) < 0 or max(values) >= self.num_examples):
                _batching.check_rows(rows, self.num_examples)  # raises, naming the index
        else:
            _batching.check_rows(rows, self.num_examples)


@dataclasses.dataclass(frozen=True)
class Scan:
    """Program: ``inner`` over the leading axis of ``xs``; ``count`` steps only, when given."""

    inner: Callable

    def __call__(self, operands: Any, state: Any, xs: Any, count: Any = None):
        return loop(functools.partial(self.inner, operands), state, xs, count)

    def check(self, xs: Any, count: Any = None) -> None:
        if count is not None:
            _batching.check_count(count, leading_length(xs))
        check = getattr(self.inner, "check", None)
        if check is not None:
            check(xs)


@dataclasses.dataclass(frozen=True)
class Plain:
    """Program: a step that holds no operands."""

    step: Callable

    def __call__(self, operands: Any, state: Any, x: Any) -> tuple[Any, Any]:
        del operands
        return self.step(state, x)


@dataclasses.dataclass(frozen=True, eq=False)
class Bound:
    """A program and its operands; calling it runs the compiled program (see the module doc)."""

    program: Callable
    operands: Any
    donate: bool = False

    def __post_init__(self):
        # looked up once here, not per call: hashing the program's dataclasses on every call
        # (jax.jit's static arguments) cost more than the rest of a batch-1 step's dispatch
        object.__setattr__(self, "_compiled", compiled(self.program, self.donate))
        object.__setattr__(self, "_check", getattr(self.program, "check", None))
        object.__setattr__(self, "_mesh", _mesh_of(self.program))

    def __call__(self, state: Any, x: Any, *args: Any) -> tuple[Any, Any]:
        if self._check is not None:
            self._check(x, *args)
        if self._mesh is None:  # no context manager: it costs a tenth of a batch-1 step
            return self._compiled(self.operands, state, x, *args)
        with _parallel.within(self._mesh):
            return self._compiled(self.operands, state, x, *args)


def _mesh_of(program: Any) -> Any:
    """The mesh a program (or the program it wraps, ``inner``) splits its batches over."""
    while program is not None:
        if getattr(program, "mesh", None) is not None:
            return program.mesh
        program = getattr(program, "inner", None)
    return None


@functools.lru_cache(maxsize=256)
def compiled(program: Callable, donate: bool = False) -> Callable:
    """``jax.jit(program)``, one per program (and ``donate``: the state, argument 1, donated)."""
    return jax.jit(program, donate_argnums=(1,) if donate else ())


def with_data(
    step: Callable, data: Any, *, mesh: Any = None, donate: bool = False, checked: bool = False
) -> Bound:
    """``step(state, rows) -> (state, metrics)``: the batch is gathered from ``data`` by index.

    The data is put on the device once; each call passes only the int index array ``rows`` and
    the batch ``jnp.take(array, rows, axis=0)`` of every array in ``data`` is gathered inside the
    compiled program. The returned step compiles itself on its first call (with the data as an
    argument of the program, so other data of the same shapes reuses it); call it directly, or
    compose it (``scan_steps``, ``jax.vmap``).

    Args:
      step: ``step(state, batch) -> (state, metrics)``, e.g. from ``jgd.make_step``.
      data: a pytree of arrays sharing a leading example axis, e.g. ``(X, y)`` (torch tensors
        are read as the NumPy arrays they hold).
      mesh: a ``jax.sharding.Mesh``: each gathered batch is split by examples over its data axis.
      donate: donate the state's buffers to the new state (``jax.jit``'s ``donate_argnums``):
        XLA updates the params and optimizer state in place, and the state passed in is
        deleted by the call (use only the state it returns). Off by default: the step is pure.
      checked: rows out of range raise under ``checkify.checkify`` (below). Off by default: a
        program with a check loses jax's C++ dispatch fast path (as much as a batch-1 step).

    Returns:
      ``step(state, rows) -> (state, metrics)``, ``rows`` a 1-D int array of example indices.

    Raises:
      ValueError, TypeError: for data that is not a pytree of arrays with one leading example
        axis; at the call, for ``rows`` that are not 1-D ints, or (host arrays) out of range.

    Which row checks run where: ``rows`` given as a NumPy array or a list is checked on the host
    before the call (a ValueError naming the first bad index, at no device cost). ``rows`` on the
    device, or traced inside your own ``jax.jit``, are checked in the program: a row outside
    ``0..m - 1`` (negative ones too) gathers NaN, so the loss and the params become NaN rather
    than silently using another example; to get an error naming the row there, make the step
    with ``checked=True`` and run it under ``checkify.checkify``
    (``from jax.experimental import checkify``)::

        err, (state, metrics) = checkify.checkify(jax.jit(my_loop))(state, rows)
        err.throw()  # JaxRuntimeError: with_data: rows[3] = -1 is outside 0..99, ...

    Examples:
      >>> import jax.numpy as jnp, numpy as np, optax, jgd
      >>> X, y = np.array([[1.0], [2.0], [3.0]]), np.array([2.0, 4.0, 6.0])
      >>> loss = lambda w, b: jnp.mean((b[0] @ w - b[1]) ** 2)
      >>> step = jgd.with_data(jgd.make_step(loss, optax.sgd(0.1)), (X, y))
      >>> state = jgd.TrainState.create(jnp.zeros(1), optax.sgd(0.1))
      >>> state, metrics = step(state, np.array([2, 0]))
      >>> float(metrics["loss"])  # the batch of rows 2 and 0: ((0 - 6)² + (0 - 2)²) / 2
      20.0
    """
    if not callable(step):
        raise TypeError(
            f"step={_errors.describe(step)} is not callable; expected step(state, batch), "
            "e.g. jgd.make_step(loss, optimizer)."
        )
    for name, flag in (("donate", donate), ("checked", checked)):
        if not isinstance(flag, bool):
            raise TypeError(f"{name}={_errors.describe(flag)} is not valid; expected a bool.")
    data = _tensors.as_numpy(data)  # torch tensors: the arrays they hold
    m = _batching.num_examples(data)
    if mesh is not None:
        mesh = _parallel.auto(mesh)
    data = jax.tree_util.tree_map(jnp.asarray, data)
    return Bound(Gather(step, m, mesh, checked), jax.device_put(data), donate)


def scan_steps(step: Callable) -> Callable:
    """``steps(state, xs, count=None) -> (state, metrics)``: K steps as one compiled loop.

    Step ``k`` is ``step(state, x_k)`` with ``x_k`` the k-th slice of every array in ``xs`` along
    its leading axis (for a ``with_data`` step, ``xs`` is an int array of rows ``(K, B)``). The
    metrics come back stacked, with a leading axis of K. With ``count`` (an int, traced: any value
    reuses the program), only the first ``count`` steps run; the metrics of the others are NaN
    (0 for ints). That runs a short last block, or a prefix of one, with the same program.
    A host ``count`` (a Python or NumPy int) must lie in 0..K; a device int array's value is not
    read back, and is clamped to 0..K in the program.

    Args:
      step: ``step(state, x) -> (state, metrics)``: a ``jgd.make_step`` step (``xs`` then holds
        batches), a ``jgd.with_data`` step (``xs`` holds rows), or any such function.

    Returns:
      ``steps(state, xs, count=None)``, pure (donating the state when the ``with_data`` step
      does: ``donate=True``); it compiles itself on its first call (with a ``with_data`` step's
      data as an argument of the program).

    Raises:
      ValueError: when the arrays of ``xs`` disagree on their leading axis (at the call).

    Examples:
      >>> import jax.numpy as jnp, numpy as np, optax, jgd
      >>> X, y = np.arange(8.0)[:, None], 3 * np.arange(8.0)
      >>> loss = lambda w, b: jnp.mean((b[0] @ w - b[1]) ** 2)
      >>> steps = jgd.scan_steps(jgd.with_data(jgd.make_step(loss, optax.sgd(0.01)), (X, y)))
      >>> state = jgd.TrainState.create(jnp.zeros(1), optax.sgd(0.01))
      >>> rows = np.arange(8).reshape(4, 2)  # 4 steps of 2 examples
      >>> state, metrics = steps(state, rows)
      >>> metrics["loss"].shape, int(state.step)
      ((4,), 4)
      >>> state, metrics = steps(state, rows, 1)  # the same program, one step
      >>> int(state.step), bool(np.isnan(metrics["loss"][1]))
      (5, True)
    """
    if isinstance(step, Bound):  # a donating step's block donates the state too
        return Bound(Scan(step.program), step.operands, step.donate)
    if not callable(step):
        raise TypeError(
            f"step={_errors.describe(step)} is not callable; expected step(state, x), "
            "e.g. jgd.make_step(loss, optimizer)."
        )
    return Bound(Scan(Plain(step)), None)


def loop(step: Callable, state: Any, xs: Any, count: Any = None) -> tuple[Any, Any]:
    """``lax.scan(step, state, xs)``, or its first ``count`` steps (a ``fori_loop``, same body)."""
    length = leading_length(xs)
    if count is None:
        return jax.lax.scan(step, state, xs)
    shapes = jax.eval_shape(step, state, _slice(xs, 0))[1]
    records = jax.tree_util.tree_map(
        lambda s: jnp.full((length, *s.shape), _blank(s.dtype)), shapes
    )
    if np.shape(count) != () or not jnp.issubdtype(jnp.result_type(count), jnp.integer):
        raise TypeError(
            f"count has shape {np.shape(count)} and dtype {jnp.result_type(count)}; expected an "
            f"int from 0 to {length}."
        )
    count = jnp.clip(jnp.asarray(count, jnp.int32), 0, length)

    def body(i, carry):
        state, records = carry
        state, metrics = step(state, _slice(xs, i))
        records = jax.tree_util.tree_map(lambda r, m: r.at[i].set(m), records, metrics)
        return state, records

    return jax.lax.fori_loop(0, count, body, (state, records))


def leading_length(xs: Any) -> int:
    """The shared leading (step) axis of ``xs``, checked."""
    sizes = [(path, np.shape(leaf)) for path, leaf in _errors.leaf_paths(xs)]
    if not sizes or any(len(shape) == 0 for _, shape in sizes):
        raise ValueError(
            "xs needs a leading axis to scan over (one slice per step), e.g. rows of shape "
            f"(K, batch_size); got shapes {[s for _, s in sizes]}."
        )
    if len({shape[0] for _, shape in sizes}) > 1:
        listed = ", ".join(f"xs{p}: {s[0]}" for p, s in sizes)
        raise ValueError(f"the arrays of xs disagree on their leading axis (steps): {listed}.")
    return int(sizes[0][1][0])


def _slice(xs: Any, i: Any) -> Any:
    return jax.tree_util.tree_map(lambda x: jax.lax.dynamic_index_in_dim(x, i, 0, False), xs)


def _blank(dtype: Any) -> Any:
    return jnp.nan if jnp.issubdtype(dtype, jnp.inexact) else 0
