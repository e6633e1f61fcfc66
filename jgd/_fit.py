"""The descent engine: a training step you can compose, and ``fit``, the whole run as one scan.

Full-batch, stochastic and mini-batch descent are one program over a batch plan (``_batching``):
``lax.scan`` over index rows, gathering each batch on the device, computing the gradient by any
mode, applying the optax update, and a divergence guard that stops updating at the first
non-finite loss or gradient. The host sees the run once at the end (or once per chunk of steps
when a progress bar or checkpoints are asked for).
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import time
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jgd import _batching, _compile, _errors, _optim, _parallel
from jgd._grad import MODES, value_and_grad
from jgd._state import TrainState, as_key
from jgd._step import make_step

Loss = Callable[[Any, Any], jax.Array]


class Progress(NamedTuple):
    """What ``fit``'s callback receives after each chunk of steps."""

    step: int  # steps done so far
    loss: float  # the last finite batch loss
    losses: np.ndarray  # the batch losses of this chunk
    state: TrainState  # the state after these steps


class Guard(NamedTuple):
    """The divergence guard carried by the scan."""

    stopped: jax.Array  # bool: a step hit a non-finite loss/gradient or max_loss; no more updates
    stopped_at: jax.Array  # int32: that step, or -1
    reason: jax.Array  # int32: 0 none, 1 non-finite, 2 above max_loss


@dataclasses.dataclass(frozen=True)
class Program:
    """The static part of a run: the compiled program depends on these and on shapes only."""

    loss: Loss
    optimizer: Any  # _optim.OptimizerSpec.static
    mode: str
    grad_options: tuple
    full_batch: bool
    chunk: int
    record_params: bool
    guard: str = "full"
    mesh: Any = None  # a jax.sharding.Mesh: batches split over its data axis


def init_state(program: Program, params: Any, hparams: dict, key: jax.Array) -> TrainState:
    """The run's first state (compiled with the hyperparameters traced)."""
    optimizer = _optim.build(program.optimizer, hparams)
    return TrainState(params, optimizer.init(params), jnp.zeros((), jnp.int32), key)


def run_chunk(
    program: Program,
    state: TrainState,
    guard: Guard,
    hparams: dict,
    settings: dict,
    data: Any,
    indices: jax.Array | None,
    start: jax.Array,
):
    """``program.chunk`` steps of the run from step ``start``, as one ``lax.scan``.

    Every step is computed; a step at or past ``settings["steps"]`` (padding of the last chunk),
    or after the guard stopped, changes nothing and records NaN. Selecting with ``jnp.where``
    (fused by XLA into the update) is cheaper per step than a ``lax.cond``, whose branches make
    XLA copy the carried parameters.
    """
    optimizer = _optim.build(program.optimizer, hparams)
    step_fn = make_step(
        program.loss,
        optimizer,
        program.mode,
        check_grads=program.guard == "full",
        **dict(program.grad_options),
    )

    def body(carry, t):
        state, guard = carry
        if program.full_batch:
            batch = data
        else:
            rows = jax.lax.dynamic_index_in_dim(indices, t, 0, False)
            batch = _parallel.shard_batch(_batching.gather(data, rows), program.mesh)
        new, metrics = step_fn(state, batch)
        live = (t < settings["steps"]) & ~guard.stopped
        too_big = metrics["loss"] > settings["max_loss"]
        ok = metrics["finite"] & ~too_big
        apply = live & ok
        stops = live & ~ok
        reason = jnp.where(metrics["finite"], jnp.where(too_big, 2, 0), 1).astype(jnp.int32)
        guard = Guard(
            guard.stopped | stops,
            jnp.where(stops, t, guard.stopped_at).astype(jnp.int32),
            jnp.where(stops, reason, guard.reason),
        )
        outputs = {
            "loss": jnp.where(live, metrics["loss"], jnp.nan),
            "grad_norm": jnp.where(live, metrics["grad_norm"], jnp.nan),
        }
        if program.record_params:
            outputs["params"] = state.params
        state = jax.tree_util.tree_map(lambda a, b: jnp.where(apply, a, b), new, state)
        return (state, guard), outputs

    ts = start + jnp.arange(program.chunk, dtype=jnp.int32)
    (state, guard), outputs = jax.lax.scan(body, (state, guard), ts)
    return state, guard, outputs


def _loss_dtype(state: TrainState, batch: Any) -> Any:
    leaves = jax.tree_util.tree_leaves(state.params)
    return jnp.result_type(*leaves) if leaves else jnp.float32


@dataclasses.dataclass(frozen=True)
class FitResult:
    """What ``fit`` returns.

    Attributes:
      params: the final parameters (the last finite ones if the run blew up).
      opt_state: the final optimizer state.
      state: the final ``TrainState``.
      losses: the batch loss of each step, at the params before that step's update (NaN for the
        steps after a blow-up).
      grad_norms: the gradient's global norm at each step.
      diverged: True if the run blew up (a non-finite loss or gradient, or a loss above
        ``max_loss``: updates stopped there) or its loss ended above where it started.
      diverged_at: the step where that happened, or None.
      divergence: ``"non-finite"``, ``"max_loss"``, ``"rose"`` or None.
      params_history: with ``record_params=True``, the params before each step and the final
        ones, with a leading axis of ``steps + 1``; otherwise None.
      steps: the number of steps in the plan.
      compile_time: seconds spent compiling (0.0 when the program was reused).
      run_time: seconds spent running, compile time excluded.
    """

    params: Any
    opt_state: Any
    state: TrainState
    losses: np.ndarray
    grad_norms: np.ndarray
    diverged: bool
    diverged_at: int | None
    divergence: str | None
    params_history: Any
    steps: int
    compile_time: float
    run_time: float


def new_guard() -> Guard:
    """The guard of a run that has not stopped."""
    return Guard(jnp.zeros((), bool), jnp.full((), -1, jnp.int32), jnp.zeros((), jnp.int32))


_REASONS = {1: "non-finite", 2: "max_loss"}


def verdict(losses: np.ndarray, guard: Guard, window: int):
    """(diverged, diverged_at, divergence) from the guard and the loss curve.

    Besides a blow-up, a run diverged when it ended above where it started: the mean batch loss
    of its last ``window`` steps (one epoch) exceeds that of its first ``window`` steps. It is then
    dated at the first step from which the loss never returned below the starting level.
    """
    if bool(guard.stopped):
        return True, int(guard.stopped_at), _REASONS[int(guard.reason)]
    window = max(1, min(window, len(losses) // 2 or 1))
    start, end = np.nanmean(losses[:window]), np.nanmean(losses[-window:])
    if len(losses) > window and end > start:
        below = np.nonzero(~(losses > start))[0]
        return True, int(below[-1] + 1 if below.size else 0), "rose"
    return False, None, None


def fit(
    loss: Loss,
    params: Any,
    data: Any,
    *,
    optimizer: Any,
    learning_rate: Any = None,
    batch_size: int | None = None,
    epochs: int = 1,
    order: Any = None,
    key: Any = None,
    mode: str = "reverse",
    chunk_size: int | None = None,
    step_size: float | None = None,
    num_tangents: int = 1,
    record_params: bool = False,
    guard: str = "full",
    mesh: Any = None,
    on_divergence: str = "stop",
    max_loss: float | None = None,
    progress: bool = False,
    checkpoint_dir: Any = None,
    checkpoint_every: int | None = None,
    callback: Callable[[Progress], None] | None = None,
) -> FitResult:
    """Runs gradient descent: full-batch, stochastic or mini-batch, compiled as one scan.

    Args:
      loss: ``loss(params, batch) -> scalar``, the mean loss over a batch.
      params: the initial parameters, a pytree of float arrays.
      data: a pytree of arrays sharing a leading example axis, e.g. ``(X, y)``. Put on the device
        once.
      optimizer: an optax factory such as ``optax.sgd``, ``optax.adam`` or
        ``functools.partial(optax.sgd, momentum=0.9)``, with ``learning_rate=`` (the numbers are
        traced: other values reuse the compiled program); or a ready optax
        ``GradientTransformation`` (its numbers are compiled in).
      learning_rate: a number > 0 or a schedule (``jgd.schedules`` or any optax schedule).
      batch_size: ``None`` for full-batch GD, ``1`` for SGD, ``k`` for mini-batches over a fresh
        permutation each epoch (``m % k`` examples left out per epoch when k does not divide m).
      epochs: passes over the data (full batch: the number of steps).
      order: an int array ``(steps, batch_size)`` of example indices, replayed exactly.
      key: an int seed or PRNG key; needed to shuffle and for ``forward_gradient``.
      mode: the gradient mode, see ``jgd.value_and_grad``; ``chunk_size``, ``step_size`` and
        ``num_tangents`` are passed to it.
      record_params: keep the parameter trajectory in ``params_history``.
      guard: ``"full"`` checks the loss and the gradient every step (the gradient's norm is
        recorded in ``grad_norms``). ``"loss"`` checks the loss only, saving a pass over the
        gradient (3.6x faster per step at batch size 1 for the seeds' MLP): a non-finite
        gradient under a finite loss is then caught one step later, when the loss turns
        non-finite, and the params returned are those of that step (possibly non-finite).
      mesh: a ``jax.sharding.Mesh`` (e.g. ``jgd.data_mesh()``): data-parallel descent, each batch
        split by examples over the mesh's ``"data"`` axis (or its first axis), params and
        optimizer state replicated, the gradient all-reduced by XLA. The batch size (for full
        batch: the number of examples) must be divisible by the number of devices on that axis.
      on_divergence: ``"stop"`` (return, flagged) or ``"raise"`` (``jgd.DivergenceError``).
      max_loss: treat a loss above this as a blow-up, like a non-finite one.
      progress: show a progress bar with the current loss (updated every chunk of steps).
      checkpoint_dir: save the run there every ``checkpoint_every`` steps with orbax, and resume
        from the newest checkpoint when called again with the same arguments.
      checkpoint_every: steps between checkpoints.
      callback: ``callback(progress)`` on the host after every chunk of steps (about 1% of the
        run, dividing ``checkpoint_every``), with a ``jgd.Progress`` (step, loss, the chunk's
        losses, the state). Raising in it stops the run; the checkpoints stay.

    Returns:
      A ``FitResult``.

    Examples:
      >>> import jax.numpy as jnp, optax, jgd
      >>> bowl = lambda w, batch: 0.5 * (w - 3.0) ** 2  # seed 003
      >>> result = jgd.fit(bowl, jnp.array(-2.0), jnp.zeros(1), optimizer=optax.sgd,
      ...                  learning_rate=0.3, epochs=15)
      >>> round(float(result.params), 4)
      2.9763
    """
    run = _prepare(**locals())
    return run.execute()


@dataclasses.dataclass
class _Run:
    program: Program
    plan: _batching.Plan
    params: Any
    data: Any
    hparams: dict
    settings: dict
    key: jax.Array
    order: Any
    on_divergence: str
    progress: bool
    checkpoints: Any
    checkpoint_every: int | None
    callback: Any
    description: str

    def execute(self) -> FitResult:
        compile_time, started = 0.0, time.perf_counter()
        indices, seconds = self._indices()
        compile_time += seconds
        (state, seconds) = _compile.call(
            init_state, self.program, self.params, self.hparams, self.key
        )
        compile_time += seconds
        guard = new_guard()
        outputs: list[dict] = []
        state, guard, outputs, start = self._resume(state, guard, outputs)
        bar = _progress_bar(self.plan.steps, self.progress, start)
        try:
            while start < self.plan.steps:
                (state, guard, out), seconds = _compile.call(
                    run_chunk,
                    self.program,
                    state,
                    guard,
                    self.hparams,
                    self.settings,
                    self.data,
                    indices,
                    jnp.asarray(start, jnp.int32),
                )
                compile_time += seconds
                start = min(start + self.program.chunk, self.plan.steps)
                outputs.append(jax.device_get(out))
                self._after_chunk(start, state, guard, outputs, bar)
        finally:
            if bar is not None:
                bar.close()
            if self.checkpoints is not None:
                self.checkpoints.close()
        run_time = time.perf_counter() - started - compile_time
        return self._result(state, guard, outputs, compile_time, run_time)

    def _indices(self):
        if self.plan.kind == "full":
            return None, 0.0
        if self.plan.kind == "shuffle":  # drawn and padded on the device, never on the host
            return _compile.call(_shuffled, (self.plan, self.program.chunk), self.key)
        padded = _pad_rows(self.order, self.program.chunk)
        if self.program.mesh is not None:
            return _parallel.put_replicated(padded, self.program.mesh), 0.0
        return jax.device_put(padded), 0.0

    def _after_chunk(self, done, state, guard, outputs, bar) -> None:
        last = outputs[-1]["loss"]
        finite = last[np.isfinite(last)]
        current = float(finite[-1]) if finite.size else float("nan")
        if bar is not None:
            bar.update(done - bar.n)
            bar.set_postfix(loss=f"{current:.4g}")
        if self.checkpoints is not None and (
            done % self.checkpoint_every == 0 or done == self.plan.steps
        ):
            self.checkpoints.save(done, _payload(state, guard, outputs, self.plan.steps))
        if self.callback is not None:
            self.callback(
                Progress(done, current, _this_chunk(last, done, self.program.chunk), state)
            )

    def _resume(self, state, guard, outputs):
        if self.checkpoints is None:
            return state, guard, outputs, 0
        empty = self._empty_outputs(state)
        found = self.checkpoints.restore_latest(_payload(state, guard, [empty], self.plan.steps))
        if found is None:
            return state, guard, outputs, 0
        step, payload = found
        state = jax.tree_util.tree_unflatten(
            jax.tree_util.tree_structure(state), [jnp.asarray(x) for x in payload["state"]]
        )
        guard = Guard(*(jnp.asarray(x) for x in payload["guard"]))
        history = jax.tree_util.tree_unflatten(
            jax.tree_util.tree_structure(empty), [np.asarray(h)[:step] for h in payload["history"]]
        )
        return state, guard, [history], int(step)

    def _empty_outputs(self, state):
        steps = self.plan.steps
        dtype = _loss_dtype(state, None)
        out = {"loss": np.zeros(steps, dtype), "grad_norm": np.zeros(steps, np.float32)}
        if self.program.record_params:
            out["params"] = jax.tree_util.tree_map(
                lambda p: np.zeros((steps, *np.shape(p)), np.asarray(p).dtype), state.params
            )
        return out

    def _result(self, state, guard, outputs, compile_time, run_time) -> FitResult:
        steps = self.plan.steps
        out = _concat(outputs, steps)
        diverged, at, why = verdict(out["loss"], guard, self.plan.steps_per_epoch)
        history = None
        if self.program.record_params:
            history = jax.tree_util.tree_map(
                lambda h, p: np.concatenate([h, np.asarray(p)[None]]), out["params"], state.params
            )
        result = FitResult(
            params=state.params,
            opt_state=state.opt_state,
            state=state,
            losses=out["loss"],
            grad_norms=out["grad_norm"],
            diverged=diverged,
            diverged_at=at,
            divergence=why,
            params_history=history,
            steps=steps,
            compile_time=compile_time,
            run_time=run_time,
        )
        if diverged and self.on_divergence == "raise":
            raise _divergence_error(self, result)
        return result


def _this_chunk(losses: np.ndarray, done: int, chunk: int) -> np.ndarray:
    """The losses of the steps this chunk really ran (the last chunk may be padded)."""
    ran = done - (math.ceil(done / chunk) - 1) * chunk
    return losses[:ran]


def _shuffled(static: tuple[_batching.Plan, int], key: jax.Array) -> jax.Array:
    plan, chunk = static
    rows = _batching.shuffled_indices(key, plan)
    return jnp.pad(rows, ((0, (-plan.steps) % chunk), (0, 0)))


def _pad_rows(rows: np.ndarray, chunk: int) -> np.ndarray:
    extra = (-rows.shape[0]) % chunk
    if extra == 0:
        return rows.astype(np.int32)
    return np.concatenate([rows, np.zeros((extra, rows.shape[1]), rows.dtype)]).astype(np.int32)


def _payload(state, guard, outputs, steps) -> dict:
    """A checkpoint: flat leaves (orbax restores lists as lists), history padded to ``steps``."""
    history = _concat(outputs, steps)
    history = jax.tree_util.tree_map(lambda h: _pad_to(np.asarray(h), steps), history)
    return {
        "state": jax.tree_util.tree_leaves(state),
        "guard": list(guard),
        "history": jax.tree_util.tree_leaves(history),
    }


def _pad_to(array: np.ndarray, steps: int) -> np.ndarray:
    missing = steps - array.shape[0]
    if missing <= 0:
        return array
    fill = np.zeros((missing, *array.shape[1:]), array.dtype)
    return np.concatenate([array, fill])


def _concat(outputs: list[dict], steps: int) -> dict:
    out = jax.tree_util.tree_map(lambda *xs: np.concatenate(xs)[:steps], *outputs)
    return out


def _progress_bar(total: int, enabled: bool, initial: int):
    if not enabled:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, unit="step", desc="jgd.fit", leave=True)


def _divergence_error(run: _Run, result: FitResult) -> _errors.DivergenceError:
    hint = ""
    try:
        first = (
            run.data
            if run.plan.kind == "full"
            else _batching.gather(run.data, jnp.arange(min(run.plan.num_examples, 1024)))
        )
        bound = _curvature_bound(run.program.loss, run.params, first)
        if math.isfinite(bound):
            hint = (
                f" At the initial params the largest stable learning rate for plain GD is "
                f"about {bound:.4g} (jgd.max_stable_learning_rate)."
            )
    except Exception:  # the hint is best effort: a loss may not be twice differentiable
        hint = ""
    what = {
        "non-finite": "a non-finite loss or gradient",
        "max_loss": "a loss above max_loss",
        "rose": "the loss rising above its starting value",
    }[result.divergence]
    return _errors.DivergenceError(
        f"the run diverged at step {result.diverged_at} ({what}) with {run.description}.{hint}"
    )


def _curvature_bound(loss, params, batch) -> float:
    from jgd._curvature import max_stable_learning_rate

    return float(
        jax.jit(lambda p, b: max_stable_learning_rate(loss, p, b).learning_rate)(params, batch)
    )


def _prepare(
    loss,
    params,
    data,
    optimizer,
    learning_rate,
    batch_size,
    epochs,
    order,
    key,
    mode,
    chunk_size,
    step_size,
    num_tangents,
    record_params,
    guard,
    mesh,
    on_divergence,
    max_loss,
    progress,
    checkpoint_dir,
    checkpoint_every,
    callback,
) -> _Run:
    """Checks every argument at the boundary and sets up the run (nothing is traced yet)."""
    if not callable(loss):
        raise TypeError(
            f"loss={_errors.describe(loss)} is not callable; expected loss(params, batch)."
        )
    _errors.one_of("mode", mode, MODES)
    _errors.one_of("on_divergence", on_divergence, ("stop", "raise"))
    _errors.one_of("guard", guard, ("full", "loss"))
    value_and_grad(
        loss, mode, chunk_size=chunk_size, step_size=step_size, num_tangents=num_tangents
    )  # validates the gradient options
    _errors.float_params("params", params)
    m = _batching.num_examples(data)
    _batching.check_finite(data)
    plan = _batching.make_plan(m, batch_size, epochs, order)
    order_rows = _batching.check_order(order, m) if order is not None else None
    if key is None and (plan.kind == "shuffle" or mode == "forward_gradient"):
        need = "shuffle the data" if plan.kind == "shuffle" else "draw forward-gradient tangents"
        raise ValueError(
            f"key=None, but this run needs a key to {need}; pass key=0 or key=jax.random.key(0)."
        )
    key = as_key(0 if key is None else key)
    if max_loss is not None:
        max_loss = _errors.positive_float("max_loss", max_loss)
    if checkpoint_every is not None:
        checkpoint_every = _errors.positive_int("checkpoint_every", checkpoint_every)
    if checkpoint_dir is not None and checkpoint_every is None:
        raise ValueError(
            "checkpoint_dir is set but checkpoint_every=None; give the number of "
            "steps between checkpoints, e.g. checkpoint_every=100."
        )
    spec = _optim.spec(optimizer, learning_rate)
    params = jax.tree_util.tree_map(jnp.asarray, params)
    dtype = jnp.result_type(*jax.tree_util.tree_leaves(params))
    data = jax.tree_util.tree_map(jnp.asarray, data)
    _errors.scalar_loss(loss, params, _batch_shape(data, plan))
    hparams = _optim.as_arrays(spec.hparams, dtype)
    settings = {
        "steps": jnp.asarray(plan.steps, jnp.int32),
        "max_loss": jnp.asarray(jnp.inf if max_loss is None else max_loss, dtype),
    }
    if mesh is None:
        data = jax.device_put(data)
    else:
        what = "batch_size" if plan.kind != "full" else "the number of examples (full batch)"
        _parallel.check_divisible(mesh, plan.batch_size, what)
        params, hparams, settings, key = _parallel.put_replicated(
            (params, hparams, settings, key), mesh
        )
        place = _parallel.put_by_examples if plan.kind == "full" else _parallel.put_replicated
        data = place(data, mesh)
    chunk = _chunk_length(plan.steps, checkpoint_every, progress or callback is not None)
    program = Program(
        loss=loss,
        optimizer=spec.static,
        mode=mode,
        grad_options=(
            ("chunk_size", chunk_size),
            ("step_size", step_size),
            ("num_tangents", num_tangents),
        ),
        full_batch=plan.kind == "full",
        chunk=chunk,
        record_params=bool(record_params),
        guard=guard,
        mesh=mesh,
    )
    checkpoints = None
    if checkpoint_dir is not None:
        from jgd._checkpoint import Checkpoints

        checkpoints = Checkpoints(
            checkpoint_dir,
            _describe_run(plan, spec, key, params, mode, max_loss, record_params, order_rows),
        )
    return _Run(
        program=program,
        plan=plan,
        params=params,
        data=data,
        hparams=hparams,
        settings=settings,
        key=key,
        order=order_rows,
        on_divergence=on_divergence,
        progress=bool(progress),
        checkpoints=checkpoints,
        checkpoint_every=checkpoint_every,
        callback=callback,
        description=spec.description,
    )


def _chunk_length(steps: int, checkpoint_every: int | None, report: bool) -> int:
    """Steps per compiled call: the whole run, or about 1% of it for progress reports, and
    always a divisor of ``checkpoint_every`` so checkpoints fall on chunk ends."""
    if checkpoint_every is None:
        return max(1, math.ceil(steps / 100)) if report else steps
    every = min(checkpoint_every, steps)
    if not report:
        return every
    target = max(1, math.ceil(steps / 100))
    return max(d for d in range(1, min(every, target) + 1) if every % d == 0)


def _batch_shape(data: Any, plan: _batching.Plan) -> Any:
    """Abstract shapes of one batch, for checking the loss without running it."""
    return jax.tree_util.tree_map(
        lambda a: jax.ShapeDtypeStruct((plan.batch_size, *a.shape[1:]), a.dtype), data
    )


def _describe_run(plan, spec, key, params, mode, max_loss, record_params, order_rows) -> dict:
    """What must match for a checkpoint to be resumed by this call."""
    hparams = jax.tree_util.tree_map(lambda v: float(v), spec.hparams)
    return {
        "plan": list(plan),
        "optimizer": spec.description,
        "hparams": repr(hparams),
        "key": np.asarray(key).tolist(),
        "mode": mode,
        "max_loss": max_loss,
        "record_params": bool(record_params),
        "params": [
            [*list(np.shape(p)), str(jnp.result_type(p))] for p in jax.tree_util.tree_leaves(params)
        ],
        "order": None if order_rows is None else hashlib.sha1(order_rows.tobytes()).hexdigest(),
    }
