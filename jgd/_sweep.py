"""``sweep``: many runs (learning rates × seeds) as one compiled, vmapped program.

Each run is exactly ``fit``'s program (same init, same batch plan, same scan), put under
``jax.vmap`` over the hyperparameters and keys: one compilation, one call, whatever the count.
"""

from __future__ import annotations

import dataclasses
import itertools
import time
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jgd import _batching, _compile, _errors, _fit, _optim, _parallel
from jgd._schedules import InverseTimeDecay
from jgd._state import as_key


@dataclasses.dataclass(frozen=True)
class SweepResult:
    """What ``sweep`` returns; every array has a leading run axis of length R.

    Attributes:
      learning_rate: the learning rate (or schedule) of each run, a list of length R.
      seed: the seed of each run (None where one ``key`` served all), a list of length R.
      params, opt_state: the final state of each run.
      losses, grad_norms: shape (R, steps).
      diverged: bool array (R,); diverged_at: int array (R,), -1 where it did not.
      divergence: the reason per run (see ``FitResult``), a list.
      params_history: with ``record_params=True``, shape (R, steps + 1, ...).
      compile_time, run_time: seconds for the whole sweep.
    """

    learning_rate: list
    seed: list
    params: Any
    opt_state: Any
    losses: np.ndarray
    grad_norms: np.ndarray
    diverged: np.ndarray
    diverged_at: np.ndarray
    divergence: list
    params_history: Any
    compile_time: float
    run_time: float

    def __len__(self) -> int:
        return len(self.learning_rate)


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
        run's key is the one ``fit(key=seed)`` would use. ``None``: every run uses ``key``.
      key: the key for every run when ``seeds`` is None.
      mesh: a ``jax.sharding.Mesh``: the runs are spread over its data axis (each device runs
        its share of them; the data is replicated).
      **fit_options: ``batch_size``, ``epochs``, ``order``, ``mode``, ``chunk_size``,
        ``step_size``, ``num_tangents``, ``record_params``, ``max_loss`` as for ``fit``.

    Returns:
      A ``SweepResult`` with a leading run axis.

    Examples:
      >>> import jax.numpy as jnp, optax, jgd
      >>> bowl = lambda w, batch: 0.5 * (w - 3.0) ** 2
      >>> result = jgd.sweep(bowl, jnp.array(-2.0), jnp.zeros(1), optimizer=optax.sgd,
      ...                    learning_rate=[0.1, 0.6, 1.9, 2.1], epochs=30)
      >>> result.diverged.tolist()
      [False, False, False, True]
    """
    unsupported = set(fit_options) & {
        "progress",
        "checkpoint_dir",
        "checkpoint_every",
        "callback",
        "on_divergence",
    }
    if unsupported:
        raise ValueError(
            f"sweep does not take {sorted(unsupported)}; it runs as one call. Use "
            "fit for progress bars, checkpoints and on_divergence='raise'."
        )
    rates = _as_list("learning_rate", learning_rate)
    _check_same_kind(rates)
    seed_list = [None] if seeds is None else _seed_list(seeds)
    if seeds is not None and key is not None:
        raise ValueError("give seeds= or key=, not both: with seeds, run i uses key=seeds[i].")
    runs = list(itertools.product(rates, seed_list))
    first = _fit._prepare(
        loss=loss,
        params=params,
        data=data,
        optimizer=optimizer,
        learning_rate=rates[0],
        key=seed_list[0] if seeds is not None else key,
        on_divergence="stop",
        progress=False,
        checkpoint_dir=None,
        checkpoint_every=None,
        callback=None,
        mesh=None,
        **_fit_defaults(fit_options),
    )
    if first.program.optimizer[0] != "factory":
        raise ValueError(
            "sweep needs optimizer as an optax factory (e.g. optimizer=optax.sgd) so "
            "that learning rates can be batched; got a ready GradientTransformation."
        )
    dtype = jnp.result_type(*jax.tree_util.tree_leaves(first.params))
    hparams = [_optim.as_arrays({**first.hparams, "learning_rate": lr}, dtype) for lr, _ in runs]
    for lr, _ in runs:
        _optim.check_learning_rate(lr)
    stacked = jax.tree_util.tree_map(lambda *xs: jnp.stack(xs), *hparams)
    keys = jnp.stack([first.key if s is None else as_key(s) for _, s in runs])
    order = None if first.order is None else jnp.asarray(first.order)
    shared = (first.params, first.settings, first.data, order)
    if mesh is not None:
        stacked, keys, shared = _spread(mesh, stacked, keys, shared)
    started = time.perf_counter()
    (state, guard, out), compile_time = _compile.call(
        _run_many,
        (first.program, first.plan),
        shared[0],
        stacked,
        keys,
        shared[1],
        shared[2],
        shared[3],
    )
    state, guard, out = jax.tree_util.tree_map(lambda x: x[: len(runs)], (state, guard, out))
    out = jax.device_get(out)
    return _result(
        first, runs, state, guard, out, compile_time, time.perf_counter() - started - compile_time
    )


def _spread(mesh, stacked, keys, shared):
    """Runs split over the mesh's data axis (padded with copies of the last run to a multiple
    of the device count; the copies are dropped from the result), everything else replicated."""
    n = mesh.shape[_parallel.axis_of(mesh)]
    extra = (-len(keys)) % n

    def pad(x):
        return jnp.concatenate([x, jnp.repeat(x[-1:], extra, axis=0)]) if extra else x

    stacked, keys = jax.tree_util.tree_map(pad, (stacked, keys))
    stacked, keys = _parallel.put_by_examples((stacked, keys), mesh)
    return stacked, keys, _parallel.put_replicated(shared, mesh)


def _run_many(static, params, hparams, keys, settings, data, order):
    program, plan = static

    def one(h, k):
        state = _fit.init_state(program, params, h, k)
        indices = _batching.shuffled_indices(k, plan) if plan.kind == "shuffle" else order
        guard = _fit.new_guard()
        return _fit.run_chunk(
            program, state, guard, h, settings, data, indices, jnp.zeros((), jnp.int32)
        )

    return jax.vmap(one)(hparams, keys)


def _result(first, runs, state, guard, out, compile_time, run_time) -> SweepResult:
    guards = jax.device_get(guard)
    verdicts = [
        _fit.verdict(
            out["loss"][r], _fit.Guard(*(g[r] for g in guards)), first.plan.steps_per_epoch
        )
        for r in range(len(runs))
    ]
    history = None
    if first.program.record_params:
        history = jax.tree_util.tree_map(
            lambda h, p: np.concatenate([h, np.asarray(p)[:, None]], axis=1),
            out["params"],
            state.params,
        )
    return SweepResult(
        learning_rate=[lr for lr, _ in runs],
        seed=[s for _, s in runs],
        params=state.params,
        opt_state=state.opt_state,
        losses=out["loss"],
        grad_norms=out["grad_norm"],
        diverged=np.array([v[0] for v in verdicts]),
        diverged_at=np.array([-1 if v[1] is None else v[1] for v in verdicts]),
        divergence=[v[2] for v in verdicts],
        params_history=history,
        compile_time=compile_time,
        run_time=run_time,
    )


def _fit_defaults(options: dict) -> dict:
    allowed = {
        "batch_size": None,
        "epochs": 1,
        "order": None,
        "mode": "reverse",
        "chunk_size": None,
        "step_size": None,
        "num_tangents": 1,
        "record_params": False,
        "guard": "full",
        "max_loss": None,
    }
    unknown = set(options) - set(allowed)
    if unknown:
        raise TypeError(
            f"sweep got unexpected arguments {sorted(unknown)}; it takes "
            f"{sorted(allowed)} besides loss, params, data, optimizer, learning_rate, "
            "seeds and key."
        )
    return {**allowed, **options}


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
