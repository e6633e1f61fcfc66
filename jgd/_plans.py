"""Batch plans: which examples each step sees. Full-batch, stochastic and mini-batch descent
differ only here.

A plan is one of three typed objects with one interface (``Plan``):
- ``FullBatch``: every step sees all the data (no index array; the batch is the data itself);
- ``Shuffled``: a fresh ``jax.random`` permutation per epoch, cut into ``m // B`` batches. When B
  does not divide m, the last ``m % B`` examples of each epoch's permutation are left out (a
  different set each epoch), so every batch has the same shape and the run compiles once;
- ``Explicit``: an index array, replayed exactly (a NumPy notebook's or a PyTorch run's).

Equal plans are equal objects (an ``Explicit`` plan compares by shape: its rows are an argument
of the compiled program, never a constant), so a plan can be part of a program's cache key.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import jax
import jax.numpy as jnp
import numpy as np

from jgd import _batching, _compile, _errors, _parallel
from jgd._fingerprint import fingerprint
from jgd._keys import as_key

MAX_STEPS = 2**31 - 1  # steps are counted in int32 on the device


@dataclasses.dataclass(frozen=True)
class Plan:
    """What every plan answers.

    Attributes:
      num_examples: the examples in the data.
      batch_size: the examples a step sees.
      steps: the steps of the run.
      steps_per_epoch: the steps of one pass over the data (1 for full batch).
      kind: ``"full"``, ``"shuffle"`` or ``"order"`` (what a checkpoint records).
      full_batch: whether each step sees the data itself (no rows).
      keyed: whether the rows are drawn from the run's key.
    """

    num_examples: int
    batch_size: int
    steps: int
    steps_per_epoch: int
    kind: ClassVar[str] = ""
    full_batch: ClassVar[bool] = False
    keyed: ClassVar[bool] = False

    def epoch_of(self, step: int) -> int:
        """The epochs completed at global step ``step``."""
        return int(step) // self.steps_per_epoch

    def describe(self) -> dict[str, Any]:
        """What a checkpoint records of the plan (compared when a run resumes)."""
        shape = [self.kind, self.num_examples, self.batch_size, self.steps, self.steps_per_epoch]
        return {"plan": shape, "order": None}

    def rows(self, key: jax.Array, first_step: int, chunk: int, mesh: Any = None) -> Any:
        """The run's int32 rows ``(steps, batch_size)`` from global step ``first_step``, padded
        with zeros to whole chunks of ``chunk`` steps, on the device; None for full batch."""
        return None

    def draw(self, key: jax.Array, order: Any) -> Any:
        """The run's rows from step 0 inside a traced program (``sweep``): ``order`` is the
        explicit plan's rows, passed as an argument."""
        return None


@dataclasses.dataclass(frozen=True)
class FullBatch(Plan):
    """Every step on all the data."""

    kind: ClassVar[str] = "full"
    full_batch: ClassVar[bool] = True


@dataclasses.dataclass(frozen=True)
class Shuffled(Plan):
    """A fresh permutation per epoch from the run's key (``shuffled_indices``)."""

    kind: ClassVar[str] = "shuffle"
    keyed: ClassVar[bool] = True

    def rows(self, key: jax.Array, first_step: int, chunk: int, mesh: Any = None) -> Any:
        # Drawn and padded on the device, never on the host, by two programs: the epochs'
        # permutations (one program per number of examples and power of two of epochs), then
        # their cut into batches. A permutation's program takes ~0.4 s to compile on a CPU,
        # the cut's a few ms: one such draw per run shape was a large part of a first call.
        per_epoch = self.steps_per_epoch
        first_epoch, offset = divmod(first_step, per_epoch)
        needed = (first_step + self.steps - 1) // per_epoch - first_epoch + 1
        count = 1 << (needed - 1).bit_length()  # epochs drawn: a power of two >= needed
        static = (self.num_examples, count)
        perms = _compile.run(_permutations, static, key, np.int32(first_epoch))
        return _compile.run(_cut, (self, chunk), perms, np.int32(offset))

    def draw(self, key: jax.Array, order: Any) -> Any:
        return shuffled_indices(key, self)


@dataclasses.dataclass(frozen=True)
class Explicit(Plan):
    """The given rows, replayed exactly."""

    order: np.ndarray = dataclasses.field(default=None, compare=False, repr=False)
    kind: ClassVar[str] = "order"

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "order": fingerprint(self.order)}

    def rows(self, key: jax.Array, first_step: int, chunk: int, mesh: Any = None) -> Any:
        padded = np.zeros((-(-self.steps // chunk) * chunk, self.batch_size), np.int32)
        padded[: self.steps] = self.order
        if mesh is not None:
            return _parallel.put_replicated(padded, mesh)
        return jax.device_put(padded)

    def draw(self, key: jax.Array, order: Any) -> Any:
        return order


def make(m: int, batch_size: int | None, epochs: int, order: Any | None) -> Plan:
    """Validates the run's shape arguments and returns its plan."""
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
        _batching.check_rows(order, m, name="order")
        steps, width = (int(n) for n in order.shape)
        return Explicit(m, width, steps, steps, order.astype(np.int32))
    epochs = _errors.positive_int("epochs", epochs)
    if batch_size is None:
        return _bounded(FullBatch(m, m, epochs, 1), epochs)
    batch_size = _errors.positive_int("batch_size", batch_size)
    if batch_size > m:
        raise ValueError(
            f"batch_size={batch_size} is larger than the number of examples ({m}); use "
            f"batch_size<={m}, or batch_size=None for full-batch descent."
        )
    per_epoch = m // batch_size
    return _bounded(Shuffled(m, batch_size, per_epoch * epochs, per_epoch), epochs)


def _bounded(plan: Plan, epochs: int) -> Plan:
    if plan.steps > MAX_STEPS:
        raise ValueError(
            f"epochs={epochs} makes {plan.steps:,} steps; a run has at most {MAX_STEPS:,} "
            "(the step counter is int32)."
        )
    return plan


def shuffled_indices(
    key: jax.Array, plan: Plan, first_step: Any = 0, aligned: bool = True
) -> jax.Array:
    """The shuffled plan's (steps, batch_size) indices from global step ``first_step``. Jittable.

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

    first_epoch = first_step // per_epoch
    perms = _epochs(key, plan.num_examples, first_epoch + jnp.arange(epochs))[:, :used]
    rows = perms.reshape(epochs * per_epoch, batch).astype(jnp.int32)
    return jax.lax.dynamic_slice_in_dim(rows, first_step - first_epoch * per_epoch, plan.steps)


def _permutations(static: tuple[int, int], key, first_epoch):
    """Epochs ``first_epoch, ...`` (``count`` of them)'s permutations of the ``m`` examples, as
    ``shuffled_indices`` draws them: ``(count, m)``."""
    m, count = static
    return _epochs(key, m, first_epoch + jnp.arange(count))


def _epochs(key, m: int, epochs):
    """Each epoch ``e`` of ``epochs``'s permutation of the ``m`` examples: the plan's one rule."""
    return jax.vmap(lambda e: jax.random.permutation(jax.random.fold_in(key, e), m))(epochs)


def _cut(static: tuple[Plan, int], perms, offset):
    """The plan's rows from step ``offset`` of the first of ``perms``' epochs, padded with zeros
    to whole chunks: ``shuffled_indices``'s rows, from its epochs' permutations."""
    plan, chunk = static
    used = plan.steps_per_epoch * plan.batch_size
    rows = perms[:, :used].reshape(-1, plan.batch_size).astype(jnp.int32)
    rows = jax.lax.dynamic_slice_in_dim(rows, offset, plan.steps)
    return jnp.pad(rows, ((0, (-plan.steps) % chunk), (0, 0)))


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
    plan = make(num_examples, batch_size, epochs, None)
    if isinstance(plan, Shuffled):  # fit's own two programs: shared with its runs over m
        rows = plan.rows(as_key(key), 0, plan.steps)
    else:  # batch_size=None: one permutation of all the examples per epoch
        rows = jax.jit(shuffled_indices, static_argnums=1)(as_key(key), plan)
    # a writable copy: torch.from_numpy warns on the read-only view of a device array
    return np.array(rows)
