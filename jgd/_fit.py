"""``fit``: the host driver around the run function.

The run is cut into chunks of steps (the whole run, or what reports and checkpoints ask for);
each chunk is one call of the compiled ``_engine.run_chunk``, guarded by ``_guard.run`` (an exact
replay when a chunk blew up). Between chunks the host updates the progress bar, saves checkpoints
and calls the callback; the metrics come back once per chunk.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import numpy as np

from jgd import _compile, _config, _engine, _errors, _guard, _parallel, _result
from jgd._checkpoint import RunCheckpoints
from jgd._result import FitResult
from jgd._state import TrainState


class Progress(NamedTuple):
    """What ``fit``'s callback receives at each report.

    Attributes:
      step: the global step reached (the state's ``step``).
      loss: the last finite batch loss so far.
      losses: the batch losses since the previous report.
      steps: the global step of each of those losses.
      state: the ``TrainState`` after these steps.
      epoch: the epochs completed (``step // steps_per_epoch``).
    """

    step: int
    loss: float
    losses: np.ndarray
    steps: np.ndarray
    state: TrainState
    epoch: int


def fit(
    loss: Callable[[Any, Any], jax.Array],
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
    grad_norm: bool = False,
    guard: str = "full",
    max_loss: float | None = None,
    mesh: Any = None,
    on_divergence: str = "stop",
    progress: bool = False,
    report_every: int | str | None = None,
    callback: Callable[[Progress], None] | None = None,
    checkpoint_dir: Any = None,
    checkpoint_every: int | None = None,
) -> FitResult:
    """Runs gradient descent: full-batch, stochastic or mini-batch, compiled.

    Args:
      loss: ``loss(params, batch) -> scalar``, the mean loss over a batch.
      params: the initial parameters, a pytree of float arrays; or a ``TrainState`` (e.g.
        ``result.state``) to continue a run: its optimizer state, step (hence the schedule's
        position and the shuffle's epoch) and key are kept, so two calls equal one longer run.
      data: a pytree of arrays sharing a leading example axis, e.g. ``(X, y)``. Put on the device
        once.
      optimizer: an optax factory such as ``optax.sgd``, ``optax.adam`` or
        ``functools.partial(optax.sgd, momentum=0.9)``, with ``learning_rate=`` (the numbers are
        values in the state: other values reuse the compiled program); or a ready optax
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
      grad_norm: record the gradient's norm in ``grad_norms`` (a pass over the gradient a step).
      guard: ``"full"``: the first step whose loss, gradient or update is not finite ends the
        run, with the last finite params and that step in ``diverged_at``, at no cost per step
        (a chunk that blew up is replayed from its start to find the step). ``"loss"``: the
        loss alone; a non-finite gradient under a finite loss is caught a step later, with the
        params of that step.
      max_loss: a loss above this ends the run like a non-finite one.
      mesh: a ``jax.sharding.Mesh`` (e.g. ``jgd.data_mesh()``): data-parallel descent, each batch
        split by examples over the mesh's ``"data"`` axis (or its first axis), params and
        optimizer state replicated, the gradient all-reduced by XLA. The batch size (for full
        batch: the number of examples) must be divisible by the number of devices on that axis.
      on_divergence: ``"stop"`` (return, flagged) or ``"raise"`` (``jgd.DivergenceError``).
      progress: show a progress bar with the current loss (updated at every report).
      report_every: steps between reports (``callback`` and progress bar), or ``"epoch"``.
        Default: about 1% of the run when there is a callback or a progress bar.
      callback: ``callback(progress)`` on the host at every report, with a ``jgd.Progress``
        (step, loss, the losses since the last report with their steps, the state). Raising in
        it stops the run; the checkpoints stay.
      checkpoint_dir: save the run there every ``checkpoint_every`` steps with orbax, and resume
        from the newest checkpoint when called again with the same arguments.
      checkpoint_every: steps between checkpoints.

    Returns:
      A ``FitResult``.

    Examples:
      >>> import jax.numpy as jnp, optax, jgd
      >>> bowl = lambda w, batch: 0.5 * (w - 3.0) ** 2  # seed 003
      >>> result = jgd.fit(bowl, jnp.array(-2.0), jnp.zeros(1), optimizer=optax.sgd,
      ...                  learning_rate=0.3, epochs=15)
      >>> round(float(result.params), 4)
      2.9763

      Continuing from the state gives what one longer run gives:

      >>> more = jgd.fit(bowl, result.state, jnp.zeros(1), optimizer=optax.sgd,
      ...                learning_rate=0.3, epochs=5)
      >>> more.first_step, round(float(more.params), 4)
      (15, 2.996)
    """
    config = _config.configure(
        loss,
        params,
        data,
        optimizer=optimizer,
        learning_rate=learning_rate,
        batch_size=batch_size,
        epochs=epochs,
        order=order,
        key=key,
        mode=mode,
        chunk_size=chunk_size,
        step_size=step_size,
        num_tangents=num_tangents,
        record_params=record_params,
        grad_norm=grad_norm,
        guard=guard,
        max_loss=max_loss,
        mesh=mesh,
    )
    _errors.one_of("on_divergence", on_divergence, ("stop", "raise"))
    if callback is not None and not callable(callback):
        raise TypeError(f"callback={_errors.describe(callback)} is not callable.")
    every = _report_every(report_every, config.plan.steps_per_epoch)
    if checkpoint_every is not None:
        checkpoint_every = _errors.positive_int("checkpoint_every", checkpoint_every)
    if checkpoint_dir is not None and checkpoint_every is None:
        raise ValueError(
            "checkpoint_dir is set but checkpoint_every=None; give the number of "
            "steps between checkpoints, e.g. checkpoint_every=100."
        )
    reporting = bool(progress) or callback is not None
    steps = config.plan.steps
    if every is None and reporting:
        every = max(1, math.ceil(steps / 100))
    chunk = _chunk_length(steps, every, checkpoint_every, report_every is None)
    if report_every is None:
        every = chunk  # by default a report closes every chunk (about 1% of the run)
    checkpoints = None
    if checkpoint_dir is not None:
        checkpoints = RunCheckpoints(checkpoint_dir, config, checkpoint_every)
    result = _Driver(config, chunk, every, bool(progress), callback, checkpoints).run()
    if result.diverged and on_divergence == "raise":
        raise _result.divergence_error(
            result,
            config.optimizer.description,
            loss,
            config.state.params,
            config.data,
            config.plan,
        )
    return result


class _Driver:
    """Runs one configured run chunk by chunk (see the module docstring)."""

    def __init__(self, config, chunk, every, progress, callback, checkpoints):
        self.config, self.chunk, self.every = config, chunk, every
        self.progress, self.callback, self.checkpoints = progress, callback, checkpoints
        self.program = config.program(chunk)
        self.compile_time = 0.0

    def run(self) -> FitResult:
        started = time.perf_counter()
        rows = self._rows()
        state, stop, outputs, done = self.config.state, None, [], 0
        if self.checkpoints is not None:
            state, stop, outputs, done = self.checkpoints.resume(state, self._blank(state))
        bar = _progress_bar(self.config.plan.steps, self.progress, done)
        reported = done - done % self.every if self.every else done  # resumed: the whole report
        try:
            while done < self.config.plan.steps and stop is None:
                count = min(self.chunk, self.config.plan.steps - done)
                state, metrics, stop = self._chunk(state, rows, done, count)
                outputs.append(metrics)
                done += count
                if self.checkpoints is not None:  # before the callback, which may raise
                    self.checkpoints.after_chunk(done, state, stop, outputs)
                if self._due(done, stop):
                    self._report(done, reported, state, stop, outputs, bar)
                    reported = done
        finally:
            if bar is not None:
                bar.close()
            if self.checkpoints is not None:
                self.checkpoints.close()
        run_time = time.perf_counter() - started - self.compile_time
        return self._result(state, stop, outputs, run_time)

    def _chunk(self, start, rows, done, count):
        def fast(n):
            return self._call((self.program, False), start, rows, done, n)

        def check(n):
            return self._call((self.program, True), start, rows, done, n)

        config = self.config
        state, metrics, stop = _guard.run(
            fast, check, count, guard=config.guard, max_loss=config.max_loss
        )
        if stop is not None:
            stop = _guard.Stop(config.first_step + done + stop[0], stop[1])
        return state, metrics, stop

    def _call(self, static, state, rows, offset, count):
        data = self.config.data
        out, seconds = _compile.call(
            _engine.run_chunk, static, data, state, rows, np.int32(offset), np.int32(count)
        )
        self.compile_time += seconds
        return out

    def _rows(self):
        config, plan = self.config, self.config.plan
        if plan.kind == "full":
            return None
        if plan.kind == "shuffle":  # drawn and padded on the device, never on the host
            aligned = config.first_step % plan.steps_per_epoch == 0
            static = (plan, self.chunk, aligned)
            rows, seconds = _compile.call(
                _engine.shuffled_rows, static, config.key, np.int32(config.first_step)
            )
            self.compile_time += seconds
            return rows
        padded = np.zeros((-(-plan.steps // self.chunk) * self.chunk, plan.batch_size), np.int32)
        padded[: plan.steps] = config.order
        if config.mesh is not None:
            return _parallel.put_replicated(padded, config.mesh)
        return jax.device_put(padded)

    def _due(self, done: int, stop) -> bool:
        if not (self.progress or self.callback is not None):
            return False
        return done % self.every == 0 or done == self.config.plan.steps or stop is not None

    def _report(self, done, reported, state, stop, outputs, bar) -> None:
        losses = np.concatenate([o["loss"] for o in outputs])
        finite = losses[np.isfinite(losses)]
        current = float(finite[-1]) if finite.size else float("nan")
        first = self.config.first_step
        if bar is not None:
            bar.update(done - bar.n)
            bar.set_postfix(loss=f"{current:.4g}")
        if self.callback is not None:
            since = losses[reported:done]
            step = stop.step if stop is not None else first + done
            steps = first + np.arange(reported, reported + len(since))
            epoch = int(step) // self.config.plan.steps_per_epoch
            self.callback(Progress(int(step), current, since, steps, state, epoch))

    def _blank(self, state) -> dict:
        """All-zero metrics of the whole run: the layout of a checkpoint's history."""
        steps = self.config.plan.steps
        dtype = np.result_type(*[np.asarray(x).dtype for x in jax.tree.leaves(state.params)])
        out = {"loss": np.zeros(steps, dtype)}
        if self.config.grad_norm:
            out["grad_norm"] = np.zeros(steps, dtype)
        if self.config.record_params:
            out["params"] = jax.tree.map(
                lambda p: np.zeros((steps, *np.shape(p)), np.asarray(p).dtype), state.params
            )
        return out

    def _result(self, state, stop, outputs, run_time) -> FitResult:
        config, steps = self.config, self.config.plan.steps
        out = _fill(jax.tree.map(lambda *xs: np.concatenate(xs), *outputs), steps, state)
        diverged, at, why = _result.verdict(
            out["loss"], stop, config.plan.steps_per_epoch, config.first_step
        )
        return FitResult(
            params=state.params,
            opt_state=state.opt_state,
            state=state,
            losses=out["loss"],
            grad_norms=out.get("grad_norm"),
            diverged=diverged,
            diverged_at=at,
            divergence=why,
            params_history=(
                _result.history(out["params"], state.params) if config.record_params else None
            ),
            steps=steps,
            first_step=config.first_step,
            compile_time=self.compile_time,
            run_time=run_time,
        )


def _fill(out: dict, steps: int, state: TrainState) -> dict:
    """Metrics of the steps never run (after a stop): NaN, and the params frozen at the stop."""
    missing = steps - len(out["loss"])
    if missing <= 0:
        return out
    filled = {
        k: np.concatenate([v, np.full((missing, *v.shape[1:]), np.nan, v.dtype)])
        for k, v in out.items()
        if k != "params"
    }
    if "params" in out:
        filled["params"] = jax.tree.map(
            lambda h, p: np.concatenate([h, np.repeat(np.asarray(p)[None], missing, 0)]),
            out["params"],
            state.params,
        )
    return filled


def _report_every(value: Any, steps_per_epoch: int) -> int | None:
    if value is None:
        return None
    if value == "epoch":
        return steps_per_epoch
    return _errors.positive_int("report_every", value)


def _chunk_length(steps: int, every: int | None, checkpoint_every: int | None, default: bool):
    """Steps per compiled call: the whole run, or what reports and checkpoints need (their
    greatest common divisor; a default report interval bends to ``checkpoint_every``'s divisors)."""
    if every is None and checkpoint_every is None:
        return steps
    if checkpoint_every is None:
        return min(every, steps)
    ckpt = min(checkpoint_every, steps)
    if every is None:
        return ckpt
    if default:
        return max(d for d in range(1, min(ckpt, every) + 1) if ckpt % d == 0)
    return math.gcd(min(every, steps), ckpt)


def _progress_bar(total: int, enabled: bool, initial: int):
    if not enabled:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, unit="step", desc="jgd.fit", leave=True)
