"""Batch plans: which examples each step sees, as one int32 array of shape (steps, batch_size).

Full-batch, stochastic and mini-batch descent differ only here. A plan is
- ``full``: every step sees all the data (no index array; the batch is the data itself);
- ``shuffle``: a fresh ``jax.random`` permutation per epoch, cut into ``m // B`` batches. When B
  does not divide m, the last ``m % B`` examples of each epoch's permutation are left out (a
  different set each epoch), so every batch has the same shape and the run compiles once;
- ``order``: an explicit index array, replayed exactly (a NumPy notebook's or a PyTorch run's).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jgd import _errors
from jgd._keys import as_key


class Plan(NamedTuple):
    """The static shape of a run: what the compiled program depends on."""

    kind: str  # "full" | "shuffle" | "order"
    num_examples: int
    batch_size: int
    steps: int
    steps_per_epoch: int


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
    """
    for path, leaf in _errors.leaf_paths(data):
        if not jnp.issubdtype(jnp.result_type(leaf), jnp.inexact):
            continue
        if isinstance(leaf, jax.Array):
            if bool(_all_finite(leaf)):
                continue
            bad = np.asarray(_bad_rows(leaf))
        else:
            arr = np.asarray(leaf)
            bad = ~np.isfinite(arr.reshape(arr.shape[0], -1)).all(axis=1)
        if bad.any():
            row = int(np.argmax(bad))
            raise ValueError(
                f"data{path} has a non-finite value (NaN or Inf) in row {row} "
                f"({int(bad.sum())} bad rows in all); clean or drop those examples first."
            )


@jax.jit
def _all_finite(x: jax.Array) -> jax.Array:
    return jnp.all(jnp.isfinite(x))


@jax.jit
def _bad_rows(x: jax.Array) -> jax.Array:
    return ~jnp.all(jnp.isfinite(x.reshape(x.shape[0], -1)), axis=1)


def make_plan(m: int, batch_size: int | None, epochs: int, order: Any | None) -> Plan:
    """Validates the run's shape arguments and returns its ``Plan``."""
    if order is not None:
        order = np.asarray(order)
        if order.ndim != 2 or order.shape[0] == 0 or order.shape[1] == 0:
            raise ValueError(
                f"order has shape {order.shape}; expected a non-empty int array of shape "
                "(steps, batch_size)."
            )
        if batch_size is not None and batch_size != order.shape[1]:
            raise ValueError(
                f"batch_size={batch_size} does not match order.shape[1]={order.shape[1]}; "
                "leave batch_size=None when order is given."
            )
        if epochs != 1:
            raise ValueError(
                f"epochs={epochs} cannot be combined with order: the order array is the whole "
                "run (one row per step). Leave epochs=1, or tile the order yourself."
            )
        return Plan("order", m, int(order.shape[1]), int(order.shape[0]), int(order.shape[0]))
    epochs = _errors.positive_int("epochs", epochs)
    if batch_size is None:
        return _bounded(Plan("full", m, m, epochs, 1), epochs)
    batch_size = _errors.positive_int("batch_size", batch_size)
    if batch_size > m:
        raise ValueError(
            f"batch_size={batch_size} is larger than the number of examples ({m}); use "
            f"batch_size<={m}, or batch_size=None for full-batch descent."
        )
    per_epoch = m // batch_size
    return _bounded(Plan("shuffle", m, batch_size, per_epoch * epochs, per_epoch), epochs)


MAX_STEPS = 2**31 - 1  # steps are counted in int32 on the device


def _bounded(plan: Plan, epochs: int) -> Plan:
    if plan.steps > MAX_STEPS:
        raise ValueError(
            f"epochs={epochs} makes {plan.steps:,} steps; a run has at most {MAX_STEPS:,} "
            "(the step counter is int32)."
        )
    return plan


def check_order(order: Any, m: int) -> np.ndarray:
    """``order`` as int32, after checking that it holds integer indices in [0, m)."""
    arr = np.asarray(order)
    check_rows(arr, m, name="order")
    return arr.astype(np.int32)


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


def shuffled_indices(
    key: jax.Array, plan: Plan, first_step: Any = 0, aligned: bool = True
) -> jax.Array:
    """The ``shuffle`` plan's (steps, batch_size) indices from global step ``first_step``. Jittable.

    Epoch ``e`` uses ``jax.random.permutation(jax.random.fold_in(key, e), m)``, so an epoch's
    batches do not depend on how the run is chunked, checkpointed, resumed or continued: a run
    continued from step ``s`` sees the rows one longer run would have seen from step ``s``.
    ``aligned`` (static) says that ``first_step`` starts an epoch, which saves drawing one more.
    """
    per_epoch, batch = plan.steps_per_epoch, plan.batch_size
    used = per_epoch * batch
    first_step = jnp.asarray(first_step, jnp.int32)
    epochs = plan.steps // per_epoch + (1 if plan.steps % per_epoch else 0)
    epochs += 0 if aligned else 1  # a run that starts inside an epoch reaches into one more

    def epoch(e):
        return jax.random.permutation(jax.random.fold_in(key, e), plan.num_examples)[:used]

    first_epoch = first_step // per_epoch
    perms = jax.vmap(epoch)(first_epoch + jnp.arange(epochs))
    rows = perms.reshape(epochs * per_epoch, batch).astype(jnp.int32)
    return jax.lax.dynamic_slice_in_dim(rows, first_step - first_epoch * per_epoch, plan.steps)


def gather(data: Any, rows: jax.Array) -> Any:
    """The batch of ``data`` at example indices ``rows``."""
    return jax.tree_util.tree_map(lambda a: jnp.take(a, rows, axis=0), data)


def shuffled_order(num_examples: int, batch_size: int, epochs: int, key: Any) -> np.ndarray:
    """The (steps, batch_size) example indices ``fit(batch_size=..., key=key)`` uses, on the host.

    Pass it to ``fit(order=...)``, or to a PyTorch loop, to replay jgd's plan exactly.

    Examples:
      >>> import jgd
      >>> order = jgd.shuffled_order(10, 3, epochs=2, key=0)
      >>> order.shape  # 10 // 3 = 3 batches per epoch, the last example of each epoch left out
      (6, 3)
    """
    num_examples = _errors.positive_int("num_examples", num_examples)
    plan = make_plan(num_examples, batch_size, epochs, None)
    # a writable copy: torch.from_numpy warns on the read-only view of a device array
    return np.array(jax.jit(shuffled_indices, static_argnums=1)(as_key(key), plan))
