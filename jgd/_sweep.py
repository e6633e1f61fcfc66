"""``sweep``: many runs (learning rates × seeds) as one compiled, vmapped program.

Each run is ``fit``'s run function (``_engine.run_chunk``) under ``jax.vmap``: one compilation,
one call, whatever the count. Every run is checked as ``fit`` checks a chunk, and one that blew
up is replayed by ``fit``'s own guard, so ``sweep(...)[i]`` is ``fit``'s result for run ``i``.
"""

from __future__ import annotations

import dataclasses
import inspect
import itertools
import time
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jgd import _compile, _config, _engine, _errors, _guard, _optim, _parallel, _result
from jgd._fit import fit
from jgd._keys import seed_keys
from jgd._result import SweepResult
from jgd._schedules import InverseTimeDecay

_DRIVER_ONLY = (
    "progress",
    "report_every",
    "callback",
    "checkpoint_dir",
    "checkpoint_every",
    "stream",
)


@_parallel.on_mesh
def sweep(
    loss: Any,
    params: Any,
    data: Any,
    *,
    optimizer: Any,
    learning_rate: Any,
    seeds: Sequence[int] | None = None,
    key: Any = None,
    mesh: Any = None,
    **fit_options: Any,
) -> SweepResult:
    """``fit`` over a grid of learning rates and seeds, in one compiled, vmapped call.

    Args:
      loss, params, data, optimizer: as for ``fit``; ``optimizer`` must be an optax factory
        (``optax.sgd``, a ``functools.partial`` of one) so the rates can be batched.
      learning_rate: a sequence of numbers, or of ``jgd.schedules`` schedules of one kind (a
        single value is a sweep of one).
      seeds: int seeds, one run per (learning rate, seed) pair, learning rates outermost; each
        run's key is the one ``fit(key=seed)`` would use. ``None``: every run uses ``key`` (and,
        when shuffling, one shared batch plan).
      key: the key for every run when ``seeds`` is None.
      mesh: a ``jax.sharding.Mesh``: the runs are spread over its data axis (each device runs
        its share of them; the data is replicated).
      **fit_options: ``fit``'s other run arguments (``batch_size``, ``epochs``, ``order``,
        ``mode``, ``chunk_size``, ``step_size``, ``num_tangents``, ``tangent``, ``record_params``,
        ``grad_norm``, ``sharpness_every``, ``noise_scale_every``, ``guard``, ``max_loss``), with
        ``fit``'s defaults; the instruments record per run (``result.sharpness.values[i]``).

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
    runs = list(itertools.product(rates, seed_list))
    first_key = seed_list[0] if seeds is not None else key
    config = _config.configure(
        **_fit_arguments(loss, params, data, optimizer, rates[0], first_key, fit_options)
    )
    dtype = jnp.result_type(*jax.tree.leaves(config.state.params))
    for lr, _ in runs:
        _optim.check_learning_rate(lr)
        _optim.check_representable({"learning_rate": lr}, dtype)
    mesh = None if mesh is None else _parallel.auto(mesh)
    return _Sweep(config, runs, seeds is not None, mesh).run()


class _Sweep:
    """One configured sweep: the vmapped run, then fit's guard for the runs that blew up."""

    def __init__(self, config, runs, per_run_keys, mesh):
        self.config, self.runs, self.mesh = config, runs, mesh
        self.per_run_rows = per_run_keys and config.plan.kind == "shuffle"
        self.program = config.program(config.plan.steps)
        self.compile_time = 0.0

    def run(self) -> SweepResult:
        started = time.perf_counter()
        params, hyperparams, keys = self._arguments()
        config = self.config
        static = (self.program, config.optimizer.static, config.plan, self.per_run_rows)
        order = None if config.order is None else jnp.asarray(config.order)
        (states, rows, (ends, metrics, finite), (initial, final)), seconds = _compile.call(
            _engine.run_many,
            static,
            params,
            hyperparams,
            keys,
            config.data,
            order,
            config.eval_rows,
        )
        self.compile_time += seconds
        n = len(self.runs)
        if len(finite) > n:  # a mesh padded the runs
            ends, finite, final = jax.tree.map(lambda x: x[:n], (ends, finite, final))
        initial = np.full(n, float(initial))
        final = np.array(final)
        metrics = jax.tree.map(lambda m: np.array(m[:n]), jax.device_get(metrics))
        stops = [None] * n
        for i in np.flatnonzero(
            _guard.blown_up(metrics, np.asarray(finite), config.guard, config.max_loss)
        ):
            mine = jax.tree.map(lambda m, i=i: m[i], metrics)
            state, out, stops[i] = self._replay(i, states, rows, ends, mine, finite[i])
            ends = jax.tree.map(lambda e, s, i=i: e.at[i].set(s), ends, state)
            final[i] = self._evaluate(self._train(state).params)
            jax.tree.map(lambda m, o, i=i: m.__setitem__(i, o), metrics, out)  # in place
        run_time = time.perf_counter() - started - self.compile_time
        return _result.sweep_result(
            self.runs,
            self._train(ends),
            metrics,
            stops,
            (initial, final),
            config,
            self.compile_time,
            run_time,
        )

    def _arguments(self):
        """The shared params, and every run's numbers and key, stacked (spread over a mesh)."""
        config = self.config
        dtype = np.dtype(jnp.result_type(*jax.tree.leaves(config.state.params)))
        numbers = [{**config.optimizer.hyperparams, "learning_rate": lr} for lr, _ in self.runs]
        stacked = jax.tree.map(lambda *xs: np.asarray(xs, dtype), *numbers)  # one transfer
        if all(s is None for _, s in self.runs):
            keys = np.broadcast_to(np.asarray(config.key), (len(self.runs), 2))
        else:
            keys = seed_keys([s for _, s in self.runs])
        params = config.state.params
        if self.mesh is not None:
            stacked, keys = _spread(self.mesh, stacked, keys)
            params, data = _parallel.put_replicated((params, config.data), self.mesh)
            self.config = dataclasses.replace(config, data=data)
        return params, stacked, keys

    def _replay(self, i, states, rows, ends, mine, finite):
        """Run ``i`` through ``fit``'s guard: its vmapped result first, the replays alone."""
        start = jax.tree.map(lambda x: x[i], states)
        run_rows = rows[i] if self.per_run_rows else rows
        swept = {"result": (jax.tree.map(lambda x: x[i], ends), mine, finite)}

        def fast(n):
            if "result" in swept:  # the guard's first look: what the vmapped run gave
                return swept.pop("result")
            return self._call(False, start, run_rows, n)

        def check(n):
            return self._call(True, start, run_rows, n)

        config = self.config
        state, out, stop = _guard.run(
            fast, check, config.plan.steps, guard=config.guard, max_loss=config.max_loss
        )
        return state, out, None if stop is None else _guard.Stop(*stop)

    def _train(self, carry):
        """The ``TrainState`` of a run's carry (with instruments, ``(state, probe)``)."""
        return carry[0] if self.config.instruments.active else carry

    def _evaluate(self, params) -> float:
        config = self.config
        if self.mesh is not None:
            params = _parallel.put_replicated(params, self.mesh)
        out, seconds = _compile.call(
            _engine.evaluate, config.step.loss, config.data, config.eval_rows, params
        )
        self.compile_time += seconds
        return float(out)

    def _call(self, checked, state, rows, count):
        config = self.config
        watch = None
        if config.instruments.active:  # the examples they measure on; runs start at step 0
            watch = (config.probe_batch, np.int32(0))
        if self.mesh is not None:
            state, rows, watch = _parallel.put_replicated((state, rows, watch), self.mesh)
        static = (self.program, checked)
        out, seconds = _compile.call(
            _engine.run_chunk, static, config.data, state, rows, np.int32(0), np.int32(count), watch
        )
        self.compile_time += seconds
        return out


def _fit_arguments(loss, params, data, optimizer, learning_rate, key, options) -> dict:
    """``configure``'s arguments: the given ones, and ``fit``'s defaults for the rest."""
    refused = sorted(set(options) & {*_DRIVER_ONLY, "on_divergence", "mesh"})
    if refused:
        raise ValueError(
            f"sweep does not take {refused}; it runs as one call on device-resident data. Use "
            "fit for progress bars, reports, checkpoints, streaming and on_divergence='raise'."
        )
    signature = inspect.signature(fit)
    shared = [name for name in signature.parameters if name not in {*_DRIVER_ONLY, "on_divergence"}]
    unknown = sorted(set(options) - set(shared))
    if unknown:
        allowed = sorted(set(shared) - {"loss", "params", "data", "optimizer", "learning_rate"})
        raise TypeError(
            f"sweep got unexpected arguments {unknown}; besides loss, params, data, optimizer, "
            f"learning_rate, seeds, key and mesh it takes {allowed}."
        )
    given = {"optimizer": optimizer, "learning_rate": learning_rate, "key": key, **options}
    bound = signature.bind(loss, params, data, **given)
    bound.apply_defaults()
    arguments = {name: bound.arguments[name] for name in shared}
    return {**arguments, "mesh": None}


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
