"""``check_grads``: every gradient mode against reverse mode, as data and as a readable table."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jgd import _errors, _modes, _modules, _tensors
from jgd._grad import MODES, TANGENTS, Loss, grad, loss_evaluations
from jgd._keys import as_key


class GradCheckRow(NamedTuple):
    """One mode's agreement with the reference (reverse mode), a row of a ``GradCheck``.

    Attributes:
      mode: the gradient mode checked.
      relative_error: ``‖g - g_ref‖ / ‖g_ref‖`` over the whole parameter tree.
      max_abs_error: the largest ``|g - g_ref|`` of any parameter.
      loss_evaluations: the passes over the loss one gradient costs in this mode (reverse: 2,
        a forward and a backward pass; forward: P + 1; ``fd_central``: 2P).
      seconds: with ``timing=True``, the median time of one jitted gradient; else None.
      memory_bytes: with ``timing=True``, XLA's compiled temporaries + outputs; else None.
      skipped: why this mode cannot run on this loss (its errors are then NaN), or None.

    Examples:
      >>> import jax.numpy as jnp, jgd
      >>> loss = lambda w, b: jnp.sum(jnp.sin(w) * b)
      >>> report = jgd.check_grads(loss, jnp.ones(3), jnp.arange(3.0), modes=("fd_central",))
      >>> row = report["fd_central"]
      >>> row.mode, row.loss_evaluations, row.relative_error < 1e-3, row.skipped
      ('fd_central', 6, True, None)
    """

    mode: str
    relative_error: float
    max_abs_error: float
    loss_evaluations: int
    seconds: float | None = None
    memory_bytes: int | None = None
    skipped: str | None = None


class GradCheck(NamedTuple):
    """What ``check_grads`` found: a row per mode, printable as a table.

    ``report["forward"]`` is the ``GradCheckRow`` of one mode; ``print(report)`` shows the table.

    Attributes:
      rows: a ``GradCheckRow`` per mode checked, in the order of ``modes=``.
      num_params: P, the number of scalar parameters.
      dtype: the parameters' dtype, e.g. ``"float32"``.
      reference: the mode compared against: ``"reverse"``, or ``"forward"`` (then
        ``"fd_central"``) where reverse mode cannot run on the loss.

    Examples:
      >>> import jax.numpy as jnp, jgd
      >>> loss = lambda w, b: jnp.sum(jnp.sin(w) * b)
      >>> modes = ("forward", "fd_central")
      >>> report = jgd.check_grads(loss, jnp.ones(3), jnp.arange(3.0), modes=modes)
      >>> report.num_params, report.dtype, report.reference, [row.mode for row in report.rows]
      (3, 'float32', 'reverse', ['forward', 'fd_central'])
      >>> print(report)
      gradient check: P = 3 parameters (float32), vs reverse mode
      mode                rel. error   max abs err  loss evals
      forward ... 4
      fd_central ... 6
    """

    rows: tuple[GradCheckRow, ...]
    num_params: int
    dtype: str
    reference: str = "reverse"

    @property
    def verdict(self) -> str:
        """Which exact mode is cheapest here, by how much, at what memory (needs timing=True)."""
        ran = [r for r in self.rows if r.skipped is None]
        if any(r.seconds is None for r in ran):
            return "not timed: check_grads(..., timing=True) measures each mode."
        rows = [
            _modes.ModeCost(r.mode, r.seconds or 0.0, r.memory_bytes or 0, r.skipped)
            for r in self.rows
        ]
        return _modes.verdict(rows, estimates=("forward_gradient",))

    def __getitem__(self, mode):  # type: ignore[override]
        if isinstance(mode, str):
            for row in self.rows:
                if row.mode == mode:
                    return row
            raise KeyError(f"mode {mode!r} was not checked; checked: {[r.mode for r in self.rows]}")
        return tuple.__getitem__(self, mode)

    def __str__(self) -> str:
        head = (
            f"gradient check: P = {self.num_params:,} parameters ({self.dtype}), "
            f"vs {self.reference} mode"
        )
        timed = all(r.seconds is not None for r in self.rows if r.skipped is None)
        title = f"{'mode':<18}{'rel. error':>12}{'max abs err':>14}{'loss evals':>12}"
        lines = [head, title + (f"{'time':>12}{'XLA memory':>14}" if timed else "")]
        for r in self.rows:
            if r.skipped is not None:
                lines.append(f"{r.mode:<18}skipped: {r.skipped}")
                continue
            line = (
                f"{r.mode:<18}{r.relative_error:>12.2e}{r.max_abs_error:>14.2e}"
                f"{r.loss_evaluations:>12,}"
            )
            if timed:
                line += f"{r.seconds * 1e3:>10.3f}ms{(r.memory_bytes or 0) / 2**20:>10.2f} MiB"
            lines.append(line)
        return "\n".join([*lines, self.verdict] if timed else lines)


def check_grads(
    loss: Loss,
    params: Any,
    batch: Any,
    *,
    modes: tuple[str, ...] = MODES,
    key: jax.Array | None = None,
    num_tangents: int = 1,
    chunk_size: int | None = None,
    step_size: float | None = None,
    tangent: str = TANGENTS[0],
    timing: bool = False,
    repeats: int = 5,
    timeit: bool | None = None,
) -> GradCheck:
    """Every gradient mode against reverse mode, as data and as a readable table.

    Args:
      loss: ``loss(params, batch) -> scalar``.
      params: a pytree of float arrays, or an ``nnx.Module`` with ``loss(model, batch)``: its
        ``nnx.Param``s are checked, at the module's state (batch statistics, RNG streams),
        which is read and never written.
      batch: the batch the loss is evaluated on.
      modes: which modes to compare; only these run, besides the reference (reverse mode, or
        forward mode where reverse cannot run). A mode JAX cannot apply to ``loss`` (forward
        modes through a ``jax.custom_vjp``, reverse mode through a ``lax.while_loop``) is
        reported as skipped, with JAX's reason, and the others are compared.
      key: for ``forward_gradient``; defaults to ``jax.random.key(0)``.
      num_tangents: passed to ``value_and_grad``.
      chunk_size: passed to ``value_and_grad``.
      step_size: passed to ``value_and_grad``.
      tangent: passed to ``value_and_grad``.
      timing: also measure each mode: the median of ``repeats`` calls of the jitted gradient
        (compiled and warmed up first, each blocked until ready) and the memory XLA's compiled
        program allocates (temporaries + outputs, from ``memory_analysis()``); the report ends
        with a verdict: the cheapest exact mode, by how much, at what memory.
      repeats: timed calls per mode.
      timeit: an alias of ``timing``.

    Returns:
      A ``GradCheck``: ``result["fd_central"].relative_error``; ``print(result)`` for the table;
      ``result.verdict``.

    Examples:
      >>> import jax.numpy as jnp
      >>> import jgd
      >>> loss = lambda w, b: jnp.sum(jnp.sin(w) * b)
      >>> report = jgd.check_grads(loss, jnp.ones(3), jnp.arange(3.0), modes=("forward",))
      >>> report["forward"].relative_error < 1e-6
      True
    """
    if isinstance(modes, str):
        raise ValueError(
            f"modes={modes!r} is one string; check_grads takes a tuple of modes, e.g. "
            f"modes=({modes!r},)."
        )
    for mode in modes:
        _errors.one_of("modes[...]", mode, MODES)
    key = as_key(0 if key is None else key)
    repeats = _errors.positive_int("repeats", repeats)
    timing = bool(timeit) if timeit is not None else timing
    loss, params = _modules.as_pure(loss, params)  # a module: its nnx.Params
    batch = _tensors.as_numpy(batch)  # torch tensors: the arrays they hold
    _errors.scalar_loss(loss, params, batch)  # a mistake in the loss is an error, not a skip
    options = dict(
        chunk_size=chunk_size, step_size=step_size, num_tangents=num_tangents, tangent=tangent
    )
    reference, ref = _reference(loss, params, batch)
    rows = []
    for mode in modes:
        fn = jax.jit(grad(loss, mode, **options))
        try:
            got = _flat64(fn(params, batch, key=key))
        except Exception as e:
            reason = _modes.cannot_run(e)
            if reason is None:
                raise
            nan = float("nan")
            rows.append(GradCheckRow(mode, nan, nan, 0, skipped=reason))
            continue
        cost = _modes.measure(mode, fn, (params, batch), repeats, key=key) if timing else None
        err = got - ref
        rows.append(
            GradCheckRow(
                mode=mode,
                relative_error=float(np.linalg.norm(err) / max(np.linalg.norm(ref), 1e-300)),
                max_abs_error=float(np.max(np.abs(err))) if err.size else 0.0,
                loss_evaluations=loss_evaluations(mode, ref.size, num_tangents),
                seconds=cost.seconds if cost else None,
                memory_bytes=cost.memory_bytes if cost else None,
            )
        )
    dtype = str(jnp.result_type(*jax.tree_util.tree_leaves(params)))
    return GradCheck(tuple(rows), int(ref.size), dtype, reference)


def _reference(loss: Loss, params: Any, batch: Any) -> tuple[str, np.ndarray]:
    """The exact gradient to compare against: reverse mode's, else forward mode's, else the
    central difference's (the mode it came from, and the flat gradient)."""
    for mode in ("reverse", "forward"):
        try:
            return mode, _flat64(jax.jit(grad(loss, mode))(params, batch))
        except Exception as e:
            if _modes.cannot_run(e) is None:
                raise
    return "fd_central", _flat64(jax.jit(grad(loss, "fd_central"))(params, batch))


def _flat64(tree: Any) -> np.ndarray:
    leaves = [np.asarray(x, np.float64).ravel() for x in jax.tree_util.tree_leaves(tree)]
    return np.concatenate(leaves) if leaves else np.zeros(0)
