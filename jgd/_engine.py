"""The run as a function: a chunk of a run's steps as one compiled loop, and many runs under vmap.

``run_chunk`` is pure: a ``Carry`` and the run's index rows in, ``count`` steps from row
``offset`` (both traced: every chunk, a short last one and a guard's replay run one program),
the carry and every recorder's per-step columns out, with the end state's finiteness. A step is
``make_step``'s ``Step.advance`` on the batch gathered by ``rows`` (``_batching.gather``, as
``with_data`` does), or on all the data for full-batch descent, followed by the run's recorders.
Recorders with ``every=N`` run only on their steps: the loop runs the plain step up to the next
record step, then one step with them (``_loop``). ``run_many`` is the same function under
``jax.vmap``, over fresh carries (and rows). A ``Chunk`` is one call of ``run_chunk`` with its
arguments, which the drivers (``_driver``, ``_sweep``) hand to the guard (``_guard``).
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jgd import _batching, _compile, _modules, _parallel, _recorders
from jgd._recorders import Context
from jgd._state import Carry, TrainState
from jgd._step import Step

_CHECKS = (_recorders.GRAD_NORM, _recorders.STATE_FINITE)  # what a guard's replay records


@dataclasses.dataclass(frozen=True)
class Program:
    """What a run's compiled programs depend on, besides shapes (hashable; values are arguments).

    Attributes:
      step: the run's ``jgd.make_step`` step.
      num_examples: the examples the rows index (a streamed chunk's block, or all the data).
      full_batch: every step sees all the data (no rows).
      chunk: the steps of one compiled loop.
      recorders: the run's recorders (the loss first); their states are ``Carry.records``.
      mesh: a ``jax.sharding.Mesh`` the batches are split over, or None.
      checked: a guard's replay: the gradient's norm and the state's finiteness recorded too.
    """

    step: Step
    num_examples: int
    full_batch: bool
    chunk: int
    recorders: tuple = (_recorders.LOSS,)
    mesh: Any = None
    checked: bool = False

    def replay(self) -> Program:
        """The same program for a guard's checked replay."""
        return dataclasses.replace(self, checked=True)

    def periods(self) -> tuple[int, ...]:
        """The ``every`` of the run's periodic recorders, sorted, without repeats."""
        found = {_recorders.every_of(r) for r in self.recorders}
        return tuple(sorted(e for e in found if e is not None))

    def extras(self) -> tuple:
        """The stateless recorders a replay adds (those the run does not record already)."""
        return tuple(r for r in _CHECKS if r not in self.recorders) if self.checked else ()


def run_chunk(program: Program, data, carry: Carry, rows, offset, count, first, context):
    """``count`` steps from ``carry`` over rows ``offset, offset + 1, ...``; pure and vmappable.

    Args:
      program: the ``Program`` (static).
      data: the device-resident data (an argument, never a constant of the program).
      carry: the ``Carry`` to start from.
      rows: the run's int rows ``(steps, batch_size)`` (padded to whole chunks), or None for
        full-batch descent.
      offset: the first row of this chunk (traced).
      count: the steps to run, at most ``program.chunk`` (traced).
      first: the global step of the chunk's first step (traced; unbatched under ``vmap``).
      context: the recorders' ``Context`` (the run's probe examples).

    Returns:
      ``(carry, columns, end_finite)``: columns stacked over ``program.chunk`` steps (NaN past
      ``count``), and whether every float of the end ``TrainState`` is finite.
    """
    if program.full_batch:
        xs = jnp.zeros(program.chunk, jnp.int32)  # only a step counter
    else:
        xs = jax.lax.dynamic_slice_in_dim(rows, offset, program.chunk)
    extras = program.extras()

    def one(carry: Carry, x: Any, due: Any) -> tuple[Carry, dict]:
        if program.full_batch:
            batch = data
        else:
            batch = _parallel.shard_batch(_batching.gather(data, x), program.mesh)
        state, view = program.step.advance(carry.train, batch, context)
        records, columns = _recorders.update(program.recorders, carry.records, view, due)
        _, checks = _recorders.update(extras, tuple(() for _ in extras), view)
        return carry.advanced(state, records), {**columns, **checks}

    carry, columns = _loop(one, carry, xs, count, first, program.periods())
    return carry, columns, _recorders.all_finite(carry.train)


def _loop(one, carry, xs, count, first, periods):
    """The first ``count`` steps of ``one`` over ``xs``, their columns in buffers of the chunk's
    length. Without periods, one ``fori_loop``; with them, the plain step (periodic recorders
    skipped) up to each record step, and one step with them there: no conditional in between."""
    length = xs.shape[0]
    count = jnp.clip(jnp.asarray(count, jnp.int32), 0, length)
    first = jnp.asarray(first, jnp.int32)
    x0 = jax.lax.dynamic_index_in_dim(xs, 0, 0, False)
    shapes = jax.eval_shape(lambda c, x: one(c, x, None)[1], carry, x0)
    buffers = jax.tree_util.tree_map(
        lambda s: jnp.full((length, *s.shape), _recorders.blank(s.dtype), s.dtype), shapes
    )

    def stepper(due):  # due(t, every): whether a periodic recorder records at global step t
        def body(i, state):
            carry, buffers = state
            x = jax.lax.dynamic_index_in_dim(xs, i, 0, False)
            carry, cols = one(carry, x, None if due is None else functools.partial(due, first + i))
            return carry, jax.tree_util.tree_map(lambda b, c: b.at[i].set(c), buffers, cols)

        return body

    if not periods:
        return jax.lax.fori_loop(0, count, stepper(None), (carry, buffers))
    plain = stepper(lambda t, every: False)
    if len(periods) == 1:
        record = stepper(lambda t, every: True)
    else:  # recorders of several periods: at a record step, each on its own multiples
        record = stepper(lambda t, every: t % every == 0)

    def next_record(i):  # the index of the first record step at or after index i, or count
        t = first + i
        due = jnp.stack([((t + e - 1) // e) * e for e in periods])
        return jnp.minimum(jnp.min(due) - first, count)

    def segment(loop):
        i, state = loop
        state = record(i, state)
        end = next_record(i + 1)
        return end, jax.lax.fori_loop(i + 1, end, plain, state)

    start = next_record(0)
    state = jax.lax.fori_loop(0, start, plain, (carry, buffers))
    _, state = jax.lax.while_loop(lambda loop: loop[0] < count, segment, (start, state))
    return state


@dataclasses.dataclass(frozen=True, eq=False)
class Chunk:
    """One chunk of a run from its start carry, ready to run (and to replay) compiled."""

    program: Program
    data: Any
    carry: Carry
    rows: Any
    offset: int
    first: int
    context: Context

    def run(self, count: int, checked: bool = False) -> tuple[Carry, dict, jax.Array]:
        """The chunk's first ``count`` steps: ``(carry, columns, end_finite)``; ``checked``:
        with the guard's per-step checks (``Program.replay``)."""
        program = self.program.replay() if checked else self.program
        offset, count, first = np.int32(self.offset), np.int32(count), np.int32(self.first)
        return _compile.run(
            run_chunk, program, self.data, self.carry, self.rows, offset, count, first, self.context
        )


def evaluate(step, data, rows, params, model_state):
    """The loss at ``params`` (and a module's model state) on the examples ``rows`` of ``data``:
    what a run's divergence verdict compares at its start and end."""
    return step.evaluate(params, model_state, _batching.gather(data, rows))


def evaluate_both(step, data, rows, start, end):
    """The losses at a run's ``start`` and ``end`` ``(params, model_state)`` on the examples
    ``rows`` (gathered once): one program, one transfer back, shape ``(2,)``."""
    batch = _batching.gather(data, rows)
    return jnp.stack([step.evaluate(*start, batch), step.evaluate(*end, batch)])


def probe(data, rows) -> Context:
    """The recorders' ``Context``: the examples ``rows`` of ``data`` (the run's probe)."""
    return Context(_batching.gather(data, rows))


def run_many(static, params, model_state, hyperparams, keys, data, order, eval_rows, context):
    """Many fresh runs of one factory optimizer under ``jax.vmap``: one compiled program.

    Args:
      static: ``(program, factory, plan, per_run_rows, fold, together)``: the run, its
        ``_optim.Factory``, its batch plan (``_plans``), whether each run draws its rows with its
        own key, whether each run's key is folded into a module's RNG streams
        (``fit(model, key=k)``), and how many runs go through the program together: None, all
        of them (``jax.vmap``); k, k at a time, one batch after another (``jax.lax.map``'s
        ``batch_size``; 1: the runs in turn, each as ``fit``'s program runs it).
      params: the initial params (shared).
      model_state: a module's model state (shared; ``()`` for params).
      hyperparams, keys: the numbers and the key of each run, stacked.
      data: the device-resident data.
      order: the explicit plan's rows ``(steps, batch_size)``, or None.
      eval_rows: the examples the loss at the start and the end is evaluated on.
      context: the recorders' ``Context``.

    Returns:
      ``(starts, rows, (carries, columns, end_finite), (initial, final))``: every run's first
      carry, the rows (one plan for all, or one per run), the runs, and the loss on the
      ``eval_rows`` at the shared start and at each run's end.
    """
    program, factory, plan, per_run_rows, fold, together = static

    def init(h, key):
        opt_state = factory.transformation(h).init(params)
        mine = _modules.fold(model_state, key) if fold else model_state
        state = TrainState(params, opt_state, jnp.zeros((), jnp.int32), key, mine)
        return Carry.start(state, _recorders.init(program.recorders, params, context))

    starts = jax.vmap(init)(hyperparams, keys)
    if per_run_rows:
        rows = jax.vmap(lambda key: plan.draw(key, order))(keys)
    else:
        rows = plan.draw(keys[0], order)
    count = jnp.int32(plan.steps)

    def one(carry, run_rows):
        return run_chunk(program, data, carry, run_rows, 0, count, 0, context)

    def each(fn, *xs):  # fn over the runs' leading axis: all at once, or k at a time
        if together is None:
            return jax.vmap(fn)(*xs)
        return jax.lax.map(lambda x: fn(*x), xs, batch_size=together)

    mine = one if per_run_rows else lambda carry: one(carry, rows)
    runs = each(mine, starts, rows) if per_run_rows else each(mine, starts)
    step = program.step
    initial = evaluate(step, data, eval_rows, params, model_state)
    if fold:  # each run's start: its own dropout masks
        initial = each(lambda s: evaluate(step, data, eval_rows, params, s), starts.model_state)
    end = runs[0]
    final = each(lambda p, s: evaluate(step, data, eval_rows, p, s), end.params, end.model_state)
    return starts, rows, runs, (initial, final)


def digest(program: Program, data, carry: Carry, rows, context) -> str:
    """What the run computes, as a digest of its lowered program (a checkpoint's identity).

    The chunk program is lowered (traced, not compiled) on the arguments' shapes and printed
    without debug info, its symbol names numbered in order: a comment, a renamed local or
    function leaves it as it is, while a changed constant, attribute, closure, schedule or
    optimizer changes it (closed-over arrays are constants of the program, printed by value).
    The arguments' values (params, data) are not in it; a run's description holds them apart.
    """
    specs = jax.tree_util.tree_map(
        lambda x: jax.ShapeDtypeStruct(np.shape(x), x.dtype), (data, carry, rows, context)
    )
    data, carry, rows, context = specs
    i32 = jax.ShapeDtypeStruct((), jnp.int32)

    def fresh(*args):  # a new function: traced now, never a trace cached for an equal program
        return run_chunk(program, *args)

    return _compile.digest(jax.jit(fresh).lower(data, carry, rows, i32, i32, i32, context))
