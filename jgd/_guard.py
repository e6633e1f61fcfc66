"""The divergence guard: the first step whose loss, gradient or update is not finite ends a run,
with the last finite state, at no cost per step while nothing goes wrong.

Checking every gradient costs a pass over it each step (at batch size 1 on a 784-128-10 MLP, more
than the rest of the step), and selecting between the new and the old state each step changes
XLA's fusion (Adam: +60% per step). So a block of steps runs unchecked, and two things that cost
nothing per step tell whether it went wrong: its losses (the loss turns non-finite one step after
a non-finite update) and the finiteness of its end state (one pass per block). When either is bad,
the block is replayed from its start state, which the caller kept: first with the gradient's norm
and the state's finiteness recorded per step, to find the first bad step ``t``; then ``t`` steps
of the unchecked program itself (same executable, ``count=t``), which gives the state before step
``t`` bit for bit. A non-finite gradient that the optimizer discards by design
(``optax.apply_if_finite``, ``optax.zero_nans``) never reaches the state and is not a blow-up.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, NamedTuple, Protocol

import jax
import numpy as np

from jgd import _blocks, _errors, _recorders
from jgd._step import Step

GUARDS = ("full", "loss")


class Stop(NamedTuple):
    """Where and why a guarded run stopped.

    Attributes:
      step: the step whose loss, gradient or update was not finite (or whose loss exceeded
        ``max_loss``); its update was not applied, and the state returned is the one before it.
      reason: ``"non-finite"`` or ``"max_loss"``.

    Examples:
      >>> import jax.numpy as jnp, numpy as np, optax, jgd
      >>> quartic = lambda w, b: jnp.sum(w**4)  # GD with a large step explodes
      >>> guarded = jgd.guard(jgd.scan_steps(jgd.make_step(quartic, optax.sgd(1.0))))
      >>> state = jgd.TrainState.create(jnp.array([1.0]), optax.sgd(1.0))
      >>> _, _, stop = guarded(state, np.zeros((20, 1)))
      >>> stop, stop.step, stop.reason
      (Stop(step=3, reason='non-finite'), 3, 'non-finite')
    """

    step: int
    reason: str


def checked(step: Callable) -> Callable:
    """``step`` with the gradient's norm and the state's finiteness reported every step."""
    if not isinstance(step, Step):
        raise TypeError(
            f"the guard replays a failed block with the gradient's norm, which needs a step made "
            f"by jgd.make_step; got {_errors.describe(step)}."
        )
    return step.with_recorders(_recorders.GRAD_NORM, _recorders.STATE_FINITE)


class Runnable(Protocol):
    """A block of steps from a fixed start, as the guard runs it (``_engine.Chunk``)."""

    def run(self, count: int, checked: bool = False) -> tuple[Any, Any, Any]:
        """The first ``count`` steps: ``(state, metrics, end_finite)``; ``checked``: with the
        gradient's norm and the state's finiteness in the metrics."""


def run(
    block: Runnable,
    count: int,
    *,
    guard: str = "full",
    max_loss: float | None = None,
    first_look: tuple[Any, Any, Any] | None = None,
) -> tuple[Any, dict[str, np.ndarray], tuple[int, str] | None]:
    """One guarded block of ``count`` steps.

    Args:
      block: the block from its start state: ``block.run(n)`` runs its first ``n`` steps
        unchecked (the same program for every ``n``), ``block.run(n, checked=True)`` with
        ``grad_norm`` and ``state_finite`` in the metrics.
      count: the steps of the block.
      guard: ``"full"`` (loss, gradient and update) or ``"loss"`` (the loss alone: a non-finite
        gradient under a finite loss is caught a step later, with the params of that step).
      max_loss: a loss above it stops the run too.
      first_look: ``block.run(count)``'s output when the caller has it already (``sweep``).

    Returns:
      ``(state, metrics, stop)``: the state after the block, or before its first bad step; the
      metrics on the host, ``count`` long, NaN after a stop; ``stop`` is ``(t, reason)`` with
      ``t`` counted within the block, or None.
    """
    state, metrics, end_finite = first_look if first_look is not None else block.run(count)
    metrics = _host(metrics, count)
    bad = first_bad(metrics, max_loss)
    if bad is None and (guard == "loss" or bool(end_finite)):
        return state, metrics, None
    if guard == "full":  # up to the first bad loss, or the whole block for a non-finite end
        checked_state, checked, _ = block.run(count if bad is None else bad[0] + 1, True)
        checked = _host(checked, count)
        found = first_bad(checked, max_loss)
        if found is None and bad is None:  # the checked replay saw a finite block: its result
            return checked_state, {k: checked[k] for k in metrics}, None  # in the fast layout
        bad = found if found is not None else bad
    t, reason = bad
    state, _, _ = block.run(t)
    return state, _after_stop(metrics, t), (t, reason)


def first_bad(metrics: dict[str, np.ndarray], max_loss: float | None) -> tuple[int, str] | None:
    """The first step whose loss, gradient norm or new state is not finite, or loss > max_loss."""
    loss = metrics["loss"]
    finite = np.isfinite(loss)
    if "grad_norm" in metrics:
        finite &= np.isfinite(metrics["grad_norm"])
    if "state_finite" in metrics:
        finite &= metrics["state_finite"].astype(bool)
    too_big = np.zeros_like(finite) if max_loss is None else finite & (loss > max_loss)
    bad = ~finite | too_big
    if not bad.any():
        return None
    t = int(np.argmax(bad))
    return t, "max_loss" if too_big[t] else "non-finite"


def blown_up(metrics: dict, finite: np.ndarray, guard: str, max_loss: float | None) -> np.ndarray:
    """Which of many runs (metrics stacked, ``(runs, steps)``) ``run`` would replay: a bad loss
    (or gradient norm), or a non-finite end state."""
    loss = metrics["loss"]
    ok = np.isfinite(loss)
    if "grad_norm" in metrics:
        ok &= np.isfinite(metrics["grad_norm"])
    if max_loss is not None:
        ok &= ~(loss > max_loss)
    bad = ~ok.all(axis=1)
    return bad if guard == "loss" else bad | ~finite


def _host(metrics: Any, count: int) -> dict[str, np.ndarray]:
    return jax.tree_util.tree_map(lambda m: np.asarray(m)[:count], jax.device_get(metrics))


def _after_stop(metrics: dict, t: int) -> dict:
    """Metrics of the steps after a stop blanked: NaN, and params frozen at the stop."""

    def blank(path, m):
        m = np.array(m)
        if path and getattr(path[0], "key", None) == "params":
            m[t + 1 :] = m[t]
        elif np.issubdtype(m.dtype, np.inexact):
            m[t + 1 :] = np.nan
        return m

    return jax.tree_util.tree_map_with_path(blank, metrics)


def guard(steps: Callable, *, check: str = "full", max_loss: float | None = None) -> Callable:
    """A block of steps with the divergence guard of ``jgd.fit``.

    ``guarded(state, xs, count=None) -> (state, metrics, stop)`` runs ``steps`` (from
    ``jgd.scan_steps``) unchecked, and when a loss or the end state is not finite, replays the
    block from ``state`` to its first bad step: the state returned is then the one before that
    step (the last finite one), exactly, and ``stop`` is a ``jgd.Stop``; otherwise ``stop`` is
    None. Each call waits for its block's losses (one small transfer per block, not per step).

    Args:
      steps: ``jgd.scan_steps(...)`` of a step made by ``jgd.make_step`` (with or without
        ``jgd.with_data``).
      check: ``"full"``: a non-finite loss, gradient or update stops; ``"loss"``: the loss alone.
      max_loss: a loss above it stops too.

    Returns:
      ``guarded(state, xs, count=None) -> (state, metrics, stop)``, ``metrics`` on the host.

    Examples:
      >>> import jax.numpy as jnp, numpy as np, optax, jgd
      >>> quartic = lambda w, b: jnp.sum(w**4)  # GD with a large step explodes
      >>> steps = jgd.scan_steps(jgd.make_step(quartic, optax.sgd(1.0)))
      >>> guarded = jgd.guard(steps)
      >>> state = jgd.TrainState.create(jnp.array([1.0]), optax.sgd(1.0))
      >>> state, metrics, stop = guarded(state, np.zeros((20, 1)))
      >>> stop.reason, int(state.step) == stop.step, bool(jnp.isfinite(state.params).all())
      ('non-finite', True, True)
    """
    _errors.one_of("check", check, GUARDS)
    if max_loss is not None:
        max_loss = _errors.positive_float("max_loss", max_loss)
    if not (isinstance(steps, _blocks.Bound) and isinstance(steps.program, _blocks.Scan)):
        raise TypeError(
            f"steps={_errors.describe(steps)} is not a block of steps; expected "
            "jgd.scan_steps(jgd.make_step(...)) or jgd.scan_steps(jgd.with_data(...))."
        )
    if steps.donate:  # a blown-up block is replayed from its start state, which it would delete
        raise ValueError(
            "steps donates its state (with_data(..., donate=True)), but the guard replays a "
            "blown-up block from its start state; guard a block of a step without donate=True."
        )
    replay = _blocks.Bound(_blocks.Scan(_map_step(steps.program.inner, checked)), steps.operands)

    def guarded(state: Any, xs: Any, count: Any = None):
        length = _blocks.leading_length(xs)
        whole = isinstance(count, int | np.integer) and not isinstance(count, bool)
        if count is not None and not (whole and 0 <= count <= length):
            raise ValueError(
                f"count={_errors.describe(count)} is not valid; expected an int from 0 to "
                f"{length} (the steps in xs), or None for all of them."
            )
        count = length if count is None else int(count)
        block = _Block(steps, replay, state, xs)
        new, metrics, stop = run(block, count, guard=check, max_loss=max_loss)
        return new, metrics, None if stop is None else Stop(int(state.step) + stop[0], stop[1])

    return guarded


@dataclasses.dataclass(frozen=True)
class _Block:
    """A user's block of steps (``jgd.scan_steps``) from ``state`` over ``xs``, as ``run`` runs
    it: the block itself, or its ``replay`` with the checks."""

    steps: Callable
    replay: Callable
    state: Any
    xs: Any

    def run(self, count: int, checked: bool = False) -> tuple[Any, Any, Any]:
        new, metrics = (self.replay if checked else self.steps)(self.state, self.xs, count)
        return new, metrics, _recorders.all_finite(new)


def _map_step(program: Callable, fn: Callable) -> Callable:
    """``program`` (a block's per-step program) with its ``jgd.make_step`` step replaced by
    ``fn(step)``."""
    if isinstance(program, _blocks.Gather | _blocks.Plain):
        return dataclasses.replace(program, step=fn(program.step))
    raise TypeError(f"cannot guard a block of {_errors.describe(program)}.")
