"""``sweep``: many runs (learning rates × seeds) as one compiled, vmapped program.

Each run is ``fit``'s run function under ``jax.vmap`` (``_engine.run_many``): one compilation,
one call, whatever the count. Every run is checked as ``fit`` checks a chunk, and one that blew
up is replayed by ``fit``'s own guard, so ``sweep(...)[i]`` is ``fit``'s result for run ``i``.
"""

from __future__ import annotations

import dataclasses
import functools
import time
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jgd import (
    _batch_runs,
    _compile,
    _config,
    _engine,
    _errors,
    _grid,
    _guard,
    _modules,
    _optim,
    _parallel,
    _sweep_result,
    _sweep_turns,
    _timing,
)
from jgd._engine import Chunk
from jgd._keys import seed_keys
from jgd._options import RunOptions
from jgd._schedules import InverseTimeDecay
from jgd._sweep_result import SweepResult


@_parallel.on_mesh
def sweep(
    loss: Any,
    params: Any,
    data: Any,
    *,
    optimizer: Any,
    learning_rate: Any,
    grid: dict[str, Any] | None = None,
    seeds: Sequence[int] | None = None,
    key: Any = None,
    mesh: Any = None,
    batch_runs: int | str = "auto",
    **fit_options: Any,
) -> SweepResult:
    """``fit`` over a grid of learning rates and seeds, in one compiled, vmapped call.

    Args:
      loss: as for ``fit``.
      params: as for ``fit``.
      data: as for ``fit``.
      optimizer: an optax factory (``optax.sgd``, a ``functools.partial`` of one), so the
        rates can be batched.
      learning_rate: a sequence of numbers, or of ``jgd.schedules`` schedules of one kind (a
        single value is a sweep of one).
      grid: the factory's other arguments to sweep, ``name -> values``, e.g.
        ``{"weight_decay": [0.0, 1e-4], "b1": [0.8, 0.9]}``, crossed with the learning rates
        and seeds. Floats are values in one compiled program; ints (``every_k``, warmup steps)
        compile one program per value. Runs are ordered ints outermost, then learning rates,
        then floats (as given), then seeds; ``result.grid[i]`` holds run ``i``'s values and
        ``result.find(learning_rate=..., **values)`` the index of a run.
      seeds: int seeds, one run per (learning rate, seed) pair, learning rates outermost; each
        run's key is the one ``fit(key=seed)`` would use. ``None``: every run uses ``key`` (and,
        when shuffling, one shared batch plan).
      key: the key for every run when ``seeds`` is None.
      mesh: a ``jax.sharding.Mesh``: the runs are spread over its data axis (each device runs
        its share of them, batched; the data is replicated).
      batch_runs: the runs batched together: ``"all"`` (one ``jax.vmap``), an int k (k at a
        time, in one program: ``jax.lax.map``), 1 (in turn, each ``fit``'s own program), or
        ``"auto"``: 1 for a loss with a convolution (slower vmapped on CPU) or for at most 16
        runs of at most 4,096 steps in all (compiling dominates them), else ``"all"``.
      **fit_options: ``fit``'s other run arguments (``batch_size``, ``epochs``, ``order``,
        ``mode``, ``chunk_size``, ``step_size``, ``num_tangents``, ``tangent``, ``record_params``,
        ``grad_norm``, ``update_norm``, ``recorders``, ``sharpness_every``,
        ``noise_scale_every``, ``guard``, ``max_loss``: the fields of the run's options, with
        ``fit``'s defaults); the recorders record per run (``result.sharpness.values[i]``,
        ``result.columns[name][i]``).

    Returns:
      A ``SweepResult`` with a leading run axis; ``result[i]`` is run ``i``'s ``FitResult``.

    Examples:
      >>> import jax.numpy as jnp, optax, jgd
      >>> bowl = lambda w, batch: 0.5 * (w - 3.0) ** 2
      >>> result = jgd.sweep(bowl, jnp.array(-2.0), jnp.zeros(1), optimizer=optax.sgd,
      ...                    learning_rate=[0.1, 0.6, 1.9, 2.1], epochs=30)
      >>> result.diverged.tolist()
      [False, False, False, True]
    """
    if isinstance(optimizer, optax.GradientTransformation):
        raise ValueError(
            "sweep needs optimizer as an optax factory (e.g. optimizer=optax.sgd) so that "
            "learning rates can be batched; got a ready GradientTransformation."
        )
    rates = _as_list("learning_rate", learning_rate)
    _check_same_kind(rates)
    if seeds is not None and key is not None:
        raise ValueError("give seeds= or key=, not both: with seeds, run i uses key=seeds[i].")
    seed_list = [None] if seeds is None else _seed_list(seeds)
    first_key = seed_list[0] if seeds is not None else key
    options = RunOptions.from_keywords(fit_options)
    mesh = None if mesh is None else _parallel.auto(mesh)
    _batch_runs.check(batch_runs, mesh)
    results = []
    for factory, floats in _grid.groups(optimizer, grid):
        first = functools.partial(factory, **{name: v[0] for name, v in floats.items()})
        config = _config.configure(
            loss,
            params,
            data,
            optimizer=first,
            learning_rate=rates[0],
            key=first_key,
            mesh=None,
            options=options,
        )
        runs = _grid.runs(rates, floats, seed_list, _grid.static_values(factory, grid))
        dtype = jnp.result_type(*jax.tree.leaves(config.state.params))
        for run in runs:
            _optim.check_learning_rate(run.learning_rate)
            numbers = {"learning_rate": run.learning_rate, **run.values}
            _optim.check_representable(
                {k: v for k, v in numbers.items() if k in floats or k == "learning_rate"}, dtype
            )
        model_state = _modules.split(params)[1] if _modules.is_module(params) else ()
        fold = _modules.is_module(params) and (seeds is not None or key is not None)
        together = _batch_runs.together(batch_runs, config, len(runs), model_state, mesh)
        results.append(_Sweep(config, runs, seeds, mesh, model_state, fold, together).run())
    return results[0] if len(results) == 1 else _sweep_result.concatenate(results)


class _Sweep:
    """One configured sweep: the vmapped run, then fit's guard for the runs that blew up."""

    def __init__(self, config, runs, per_run_keys, mesh, model_state, fold, together):
        self.config, self.runs, self.mesh, self.together = config, runs, mesh, together
        self.model_state, self.fold = model_state, fold  # the module's, before any key
        self.per_run_rows = per_run_keys is not None and config.plan.keyed
        self.program = config.program(config.plan.steps)

    def run(self) -> SweepResult:
        started = time.perf_counter()
        with _timing.alone(), _compile.clock() as compiling:
            result = self._run()
        run_time = time.perf_counter() - started - compiling.seconds
        return dataclasses.replace(result, compile_time=compiling.seconds, run_time=run_time)

    def _run(self) -> SweepResult:
        params, model_state, hyperparams, keys = self._arguments()
        config = self.config
        static = (self.program, config.optimizer.static, config.plan, self.per_run_rows)
        static += (self.fold, self.together)
        order = getattr(config.plan, "order", None)
        order = None if order is None else jnp.asarray(order)
        args = (params, model_state, hyperparams, keys, config.data, order, config.eval_rows)
        if self.together == 1:  # in turn: each run is fit's own program
            out = _sweep_turns.run(static, *args, config.context)
        else:
            out = _compile.run(_engine.run_many, static, *args, config.context)
        starts, rows, (ends, metrics, finite), (initial, final) = out
        n = len(self.runs)
        if len(finite) > n:  # a mesh padded the runs
            ends, finite, final = jax.tree.map(lambda x: x[:n], (ends, finite, final))
        initial = np.broadcast_to(np.asarray(initial), (len(finite),))[:n]
        final = np.array(final)
        metrics = jax.tree.map(lambda m: np.array(m[:n]), jax.device_get(metrics))
        options, stops = config.options, [None] * n
        for i in np.flatnonzero(
            _guard.blown_up(metrics, np.asarray(finite), options.guard, options.max_loss)
        ):
            mine = jax.tree.map(lambda m, i=i: m[i], metrics)
            carry, out, stops[i] = self._replay(i, starts, rows, ends, mine, finite[i])
            ends = jax.tree.map(lambda e, s, i=i: e.at[i].set(s), ends, carry)
            final[i] = self._evaluate(carry.params, carry.model_state)
            jax.tree.map(lambda m, o, i=i: m.__setitem__(i, o), metrics, out)  # in place
        return _sweep_result.sweep_result(
            self.runs, ends.train, metrics, stops, (initial, final), config, 0.0, 0.0
        )

    def _arguments(self):
        """The shared params, and every run's numbers and key, stacked (spread over a mesh)."""
        config = self.config
        dtype = np.dtype(jnp.result_type(*jax.tree.leaves(config.state.params)))
        numbers = [
            {**config.optimizer.hyperparams, "learning_rate": r.learning_rate, **self._floats(r)}
            for r in self.runs
        ]
        stacked = jax.tree.map(lambda *xs: np.asarray(xs, dtype), *numbers)  # one transfer
        if all(r.seed is None for r in self.runs):
            keys = np.broadcast_to(np.asarray(config.key), (len(self.runs), 2))
        else:
            keys = seed_keys([r.seed for r in self.runs])
        params, model_state = config.state.params, self.model_state
        if self.mesh is not None:
            stacked, keys = _spread(self.mesh, stacked, keys)
            params, model_state, data, context = _parallel.put_replicated(
                (params, model_state, config.data, config.context), self.mesh
            )
            self.config = dataclasses.replace(config, data=data, context=context)
        return params, model_state, stacked, keys

    def _floats(self, run) -> dict[str, Any]:
        """The run's grid values that are numbers in the optimizer state (not bound ints)."""
        names = self.config.optimizer.hyperparams
        return {k: v for k, v in run.values.items() if k in names}

    def _replay(self, i, starts, rows, ends, mine, finite):
        """Run ``i`` through ``fit``'s guard: its vmapped result first, the replays alone."""
        config = self.config
        start = jax.tree.map(lambda x: x[i], starts)
        run_rows = rows[i] if self.per_run_rows else rows
        if self.mesh is not None:
            start, run_rows = _parallel.put_replicated((start, run_rows), self.mesh)
        chunk = Chunk(self.program, config.data, start, run_rows, 0, 0, config.context)
        first_look = (jax.tree.map(lambda x: x[i], ends), mine, finite)
        options = config.options
        carry, out, stop = _guard.run(
            chunk,
            config.plan.steps,
            guard=options.guard,
            max_loss=options.max_loss,
            first_look=first_look,
        )
        return carry, out, None if stop is None else _guard.Stop(*stop)

    def _evaluate(self, params, model_state) -> float:
        config = self.config
        if self.mesh is not None:
            params, model_state = _parallel.put_replicated((params, model_state), self.mesh)
        return float(
            _compile.run(
                _engine.evaluate, config.step, config.data, config.eval_rows, params, model_state
            )
        )


def _spread(mesh, stacked, keys):
    """Runs split over the mesh's data axis (padded with copies of the last run to a multiple
    of the device count; the copies are dropped from the result)."""
    n = mesh.shape[_parallel.axis_of(mesh)]
    extra = (-len(keys)) % n

    def pad(x):
        return jnp.concatenate([x, jnp.repeat(x[-1:], extra, axis=0)]) if extra else x

    stacked, keys = jax.tree.map(pad, (stacked, keys))
    return _parallel.put_by_examples((stacked, keys), mesh)


def _as_list(name: str, value: Any) -> list:
    if isinstance(value, str | bytes):
        raise ValueError(f"{name}={value!r} is not valid; expected numbers or schedules.")
    if isinstance(value, jax.Array) and not isinstance(value, jax.core.Tracer):
        value = np.asarray(value)  # a jnp array of rates, as a NumPy one
    if isinstance(value, np.ndarray) and value.ndim > 1:
        raise ValueError(
            f"{name} has shape {value.shape}; expected a flat list of values, one per run "
            "(other hyperparameters go in grid=, crossed with the rates)."
        )
    values = list(value) if isinstance(value, Sequence | np.ndarray) else [value]
    if not values:
        raise ValueError(f"{name} is empty; give at least one value.")
    return [float(v) if isinstance(v, int | np.integer | np.floating) else v for v in values]


def _check_same_kind(rates: list) -> None:
    kinds = {type(r) for r in rates}
    if len(kinds) > 1 or not (kinds <= {float} or kinds <= {InverseTimeDecay}):
        raise ValueError(
            "learning_rate values must all be numbers or all jgd.schedules schedules of one kind "
            "(they are stacked into one batched program); got types "
            f"{sorted(k.__name__ for k in kinds)}."
        )


def _seed_list(seeds: Any) -> list[int]:
    values = list(seeds) if isinstance(seeds, Sequence | np.ndarray | range) else None
    if not values or not all(
        isinstance(s, int | np.integer) and not isinstance(s, bool) for s in values
    ):
        raise ValueError(
            f"seeds={_errors.describe(seeds)} is not valid; expected a non-empty "
            "sequence of int seeds."
        )
    return [int(s) for s in values]
