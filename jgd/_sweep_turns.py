"""``sweep``'s runs in turn: each run is ``fit``'s own compiled chunk, dispatched one after another.

Where vmapping the runs does not pay (a few runs, whose one vmapped program compiles longer than
it saves, or a convolution, which vmapped over per-run kernels compiles and runs slower on
CPU), the runs go one by one through the program ``fit`` compiles for one run: a sweep then
costs a loop of ``fit`` calls less their fixed costs, and shares its compiled programs with
``fit``. The runs are dispatched without waiting for each other; ``run`` returns what
``_engine.run_many`` returns, stacked over the runs, so the rest of ``sweep`` (the guard's
replays, the result) is the same for both.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jgd import _compile, _engine, _modules, _recorders
from jgd._engine import Chunk
from jgd._state import Carry, TrainState


def run(static, params, model_state, hyperparams, keys, data, order, eval_rows, context):
    """``_engine.run_many``'s result, the runs computed in turn (its arguments, the same)."""
    program, factory, plan, per_run_rows, fold, _ = static
    del order  # an explicit plan's rows are the plan's own (``plan.rows``)
    starts, rows, ends, columns, finite, losses = [], [], [], [], [], []
    shared = None
    for i in range(len(keys)):
        numbers = jax.tree.map(lambda x, i=i: x[i], hyperparams)
        key = jnp.asarray(keys[i])
        opt_state = factory.transformation(numbers).init(params)
        mine = _modules.fold(model_state, key) if fold else model_state
        state = TrainState(params, opt_state, jnp.zeros((), jnp.int32), key, mine)
        start = Carry.start(state, _recorders.init(program.recorders, params, context))
        if per_run_rows or shared is None:
            shared = plan.rows(key, 0, program.chunk)
        end, out, ok = Chunk(program, data, start, shared, 0, 0, context).run(plan.steps)
        both = _compile.run(
            _engine.evaluate_both,
            program.step,
            data,
            eval_rows,
            (params, mine),
            (end.params, end.model_state),
        )
        for kept, value in zip(
            (starts, rows, ends, columns, finite, losses),
            (start, shared, end, out, ok, both),
            strict=True,
        ):
            kept.append(value)

    kept = (starts, rows if per_run_rows else (), ends, columns, finite, losses)
    starts, stacked_rows, ends, columns, finite, losses = _stack(kept)
    run_rows = stacked_rows if per_run_rows else rows[0]
    return starts, run_rows, (ends, columns, finite), (losses[:, 0], losses[:, 1])


def _stack(lists: tuple) -> tuple:
    """Each list of per-run trees stacked over the runs, on the host, then put on the device in
    one transfer: a jitted stack compiled a program per tree structure and number of runs (0.2 to
    0.5 s each), and an eager one a program per leaf shape; a copy of the runs' states costs
    milliseconds. (Runs in turn are never spread over a mesh: the default device holds them.)"""
    stacked = [jax.tree.map(_stacked, *trees) if trees else () for trees in lists]
    return jax.device_put(tuple(stacked))


def _stacked(*leaves: Any) -> Any:
    """The runs' values of one leaf, stacked on the host (a typed PRNG key, a module's dropout
    stream, by its key data)."""
    first = leaves[0]
    if jnp.issubdtype(jnp.result_type(first), jax.dtypes.prng_key):
        data = np.stack([np.asarray(jax.random.key_data(x)) for x in leaves])
        return jax.random.wrap_key_data(data, impl=jax.random.key_impl(first))
    return np.stack([np.asarray(x) for x in leaves])
