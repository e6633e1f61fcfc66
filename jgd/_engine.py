"""The run as a function: a chunk of a run's steps as one compiled loop, and many runs under vmap.

``run_chunk`` is pure: a state and the run's index rows in, ``count`` steps from row ``offset``
(both traced: every chunk, a short last one and a guard's replay run one program), the state and
per-step metrics out, with the end state's finiteness. It is built from the public blocks:
``scan_steps(with_data(make_step(...), data))``, or the step on all the data for full-batch
descent. ``run_many`` is the same function under ``jax.vmap``, over states (and rows). The host
drivers (``_fit``, ``_sweep``) call them through ``_compile`` and guard them with ``_guard``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from jgd import _batching, _blocks, _guard, _instruments
from jgd._instruments import NO_INSTRUMENTS, Instruments
from jgd._state import TrainState
from jgd._step import Step


@dataclasses.dataclass(frozen=True)
class Program:
    """What a run's compiled programs depend on, besides shapes (hashable; values are arguments).

    Attributes:
      step: the run's ``jgd.make_step`` step.
      num_examples: the examples in the data.
      full_batch: every step sees all the data (no rows).
      chunk: the steps of one compiled loop.
      record_params: record the params before every step.
      mesh: a ``jax.sharding.Mesh`` the batches are split over, or None.
      instruments: what the run records besides its loss (``_instruments``): the loop's carry
        is then ``(state, probe)``.
    """

    step: Step
    num_examples: int
    full_batch: bool
    chunk: int
    record_params: bool = False
    mesh: Any = None
    instruments: Instruments = NO_INSTRUMENTS

    def block(self, checked: bool) -> _blocks.Scan:
        """``steps(data, state, xs, count)``: the chunk's loop (``checked``: for a replay)."""
        step = _guard.checked(self.step) if checked else self.step
        if self.record_params:
            step = Recording(step)
        if self.full_batch:
            inner = FullBatch(step)
        else:
            inner = _blocks.Gather(step, self.num_examples, self.mesh)
        if self.instruments.active:
            inner = _instruments.Watching(inner, self.step.loss, self.instruments)
        return _blocks.Scan(inner)


@dataclasses.dataclass(frozen=True)
class FullBatch:
    """Program: the step on all the data (the loop's ``x`` is only a step counter)."""

    step: Callable

    def __call__(self, data: Any, state: Any, x: Any) -> tuple[Any, Any]:
        return self.step(state, data)  # x, the step counter, is not needed


@dataclasses.dataclass(frozen=True)
class Recording:
    """A step that also records the params it starts from (``metrics["params"]``)."""

    step: Callable

    def __call__(self, state: TrainState, batch: Any) -> tuple[TrainState, dict[str, Any]]:
        new, metrics = self.step(state, batch)
        return new, {**metrics, "params": state.params}


def run_chunk(static: tuple[Program, bool], data, state, rows, offset, count, watch=None):
    """``count`` steps from ``state`` over rows ``offset, offset + 1, ...``; pure and vmappable.

    Args:
      static: ``(program, checked)``.
      data: the device-resident data (an argument, never a constant of the program).
      state: the ``TrainState`` to start from; with instruments, ``(state, probe)``.
      rows: the run's int rows ``(steps, batch_size)`` (padded to whole chunks), or None for
        full-batch descent.
      offset: the first row of this chunk (traced).
      count: the steps to run, at most ``program.chunk`` (traced).
      watch: with instruments, ``(probe_batch, first)``: the examples they measure on and the
        global step of this chunk's first step (traced; unbatched under ``vmap``).

    Returns:
      ``(state, metrics, end_finite)``: metrics stacked over ``program.chunk`` steps (NaN past
      ``count``), and whether every float of the end ``TrainState`` is finite.
    """
    program, checked = static
    if program.full_batch:
        xs = jnp.zeros(program.chunk, jnp.int32)
    else:
        xs = jax.lax.dynamic_slice_in_dim(rows, offset, program.chunk)
    if program.instruments.active:
        batch, first = watch
        data, xs = (data, batch), (xs, first + jnp.arange(program.chunk, dtype=jnp.int32))
    state, metrics = program.block(checked)(data, state, xs, count)
    train = state[0] if program.instruments.active else state
    return state, metrics, _guard.all_finite(train)


def evaluate(static: Callable, data, rows, params):
    """The loss ``static`` at ``params`` on the examples ``rows`` of ``data``: what a run's
    divergence verdict compares at its start and end."""
    return static(params, _batching.gather(data, rows))


def run_many(
    static: tuple[Program, Any, Any, bool], params, hyperparams, keys, data, order, eval_rows
):
    """Many fresh runs of one factory optimizer under ``jax.vmap``: one compiled program.

    Args:
      static: ``(program, factory, plan, per_run_rows)``: the run, its ``_optim.Factory``, its
        batch plan, and whether each run shuffles with its own key (else with the first). With
        instruments, the states are ``(state, probe)`` pairs, measured on the ``eval_rows``.
      params: the initial params (shared).
      hyperparams, keys: the numbers and the key of each run, stacked.
      data: the device-resident data.
      order: the explicit rows ``(steps, batch_size)``, or None.
      eval_rows: the examples the loss at the start and the end is evaluated on.

    Returns:
      ``(starts, rows, (states, metrics, end_finite), (initial, final))``: every run's first
      state, the rows (one plan for all, or one per run), the runs, and the loss on the
      ``eval_rows`` at the shared start and at each run's end.
    """
    program, factory, plan, per_run_rows = static

    def init(h, key):
        opt_state = factory.transformation(h).init(params)
        state = TrainState(params, opt_state, jnp.zeros((), jnp.int32), key)
        if program.instruments.active:
            return state, _instruments.fresh_probe(params, program.instruments)
        return state

    starts = jax.vmap(init)(hyperparams, keys)
    rows = order
    if plan.kind == "shuffle" and per_run_rows:
        rows = jax.vmap(lambda key: _batching.shuffled_indices(key, plan))(keys)
    elif plan.kind == "shuffle":
        rows = _batching.shuffled_indices(keys[0], plan)
    count = jnp.int32(plan.steps)
    watch = (_batching.gather(data, eval_rows), jnp.int32(0))

    def one(state, run_rows):
        return run_chunk((program, False), data, state, run_rows, 0, count, watch)

    runs = jax.vmap(one, in_axes=(0, 0 if per_run_rows else None))(starts, rows)
    ends = runs[0][0] if program.instruments.active else runs[0]
    initial = evaluate(program.step.loss, data, eval_rows, params)
    final = jax.vmap(lambda p: evaluate(program.step.loss, data, eval_rows, p))(ends.params)
    return starts, rows, runs, (initial, final)


def shuffled_rows(static: tuple[_batching.Plan, int, bool], key, first_step):
    """The shuffled plan's rows from ``first_step``, padded with zeros to whole chunks."""
    plan, chunk, aligned = static
    rows = _batching.shuffled_indices(key, plan, first_step, aligned)
    return jnp.pad(rows, ((0, (-plan.steps) % chunk), (0, 0)))
