"""How ``sweep`` maps its runs over the compiled program: all under ``jax.vmap``, k at a time,
or in turn.

``jax.vmap`` over the runs fills the cores when one run of a small model leaves them idle. A
convolution vmapped over runs with their own kernels becomes a grouped convolution, which
XLA:CPU compiles and runs slower than the runs in turn (``benchmarks/speed.py sweep``): by
default a loss that convolves runs its runs in turn, each as ``fit``'s own compiled program
(``_sweep_turns``); so does a sweep of a few short runs, where compiling dominates
(``FEW_RUNS``, ``FEW_STEPS``); other sweeps are vmapped.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.extend
import numpy as np

from jgd import _errors


def check(batch_runs: Any, mesh: Any) -> None:
    whole = isinstance(batch_runs, int | np.integer) and not isinstance(batch_runs, bool)
    if not (batch_runs in ("auto", "all") or (whole and batch_runs >= 1)):
        raise ValueError(
            f"batch_runs={_errors.describe(batch_runs)} is not valid; expected 'auto', 'all' "
            "or an int >= 1 (the runs batched together)."
        )
    if mesh is not None and batch_runs not in ("auto", "all"):
        raise ValueError(
            f"batch_runs={batch_runs} was given with mesh=; over a mesh the runs are spread over "
            "the devices and batched on each: leave batch_runs='auto'."
        )


# A sweep of at most FEW_RUNS runs and FEW_STEPS steps in all runs in turn: its runs share fit's
# compiled program, while a vmapped one compiles its own (0.3-0.5 s for the seeds' MLP) to save
# milliseconds of run time; measured end to end, compile included (``benchmarks/speed.py sweep``,
# MLP 784-128-10, 32 steps: in turn 1.03-1.14x a loop of fits at 4-16 runs, vmapped 1.21-1.33x;
# at 64 runs vmapped 1.03x, in turn 1.11x: each run in turn has its own dispatch and read back).
FEW_RUNS, FEW_STEPS = 16, 4096


def together(batch_runs: Any, config: Any, count: int, model_state: Any, mesh: Any = None):
    """``run_many``'s ``together``: None (all runs vmapped), k (k at a time), or 1 (in turn,
    each run ``fit``'s own program: ``_sweep_turns``). Over a mesh, always None."""
    if mesh is not None:
        return None
    if batch_runs == "auto":
        few = count <= FEW_RUNS and count * config.plan.steps <= FEW_STEPS
        batch_runs = 1 if few or convolves(config, model_state) else "all"
    if batch_runs == "all" or int(batch_runs) >= count:
        return None
    return int(batch_runs)


def convolves(config: Any, model_state: Any) -> bool:
    """Whether the run's loss convolves (its jaxpr holds a ``conv_general_dilated``)."""
    plan, step = config.plan, config.step
    batch = jax.tree.map(
        lambda a: jax.ShapeDtypeStruct((plan.batch_size, *a.shape[1:]), a.dtype), config.data
    )
    closed = jax.make_jaxpr(lambda p, b: step.evaluate(p, model_state, b))(
        config.state.params, batch
    )
    return any(e.primitive.name == "conv_general_dilated" for e in _equations(closed.jaxpr))


def _equations(jaxpr: Any):
    for eqn in jaxpr.eqns:
        yield eqn
        for sub in jax.extend.core.jaxprs_in_params(eqn.params):
            yield from _equations(sub)
