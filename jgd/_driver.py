"""The host driver of a run: chunk after chunk of the compiled run function, guarded.

Each chunk is an ``_engine.Chunk`` (one call of ``run_chunk`` from the chunk's start carry), run by
``_guard.run`` (which replays it exactly when it blew up). Between chunks the host updates the
progress bar, saves checkpoints and calls the callback; the columns come back once per chunk.
The next chunk is dispatched from a chunk's end before its losses are read back, so the device
never waits for the host between chunks; the guard keeping another state (a stop) drops it.
"""

from __future__ import annotations

import dataclasses
import functools
import time
from typing import Any, NamedTuple

import jax
import numpy as np

from jgd import (
    _compile,
    _engine,
    _errors,
    _guard,
    _instruments,
    _modules,
    _parallel,
    _result,
    _stream,
    _timing,
)
from jgd._engine import Chunk, run_chunk
from jgd._instruments import NoiseScale, Sharpness
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

    Examples:
      >>> import jax.numpy as jnp, optax, jgd
      >>> bowl, seen = lambda w, batch: 0.5 * (w - 3.0) ** 2, []
      >>> _ = jgd.fit(bowl, jnp.array(0.0), jnp.zeros(1), optimizer=optax.sgd, learning_rate=0.5,
      ...             epochs=4, report_every=2, callback=seen.append)
      >>> [(p.step, p.steps.tolist(), p.losses.tolist()) for p in seen]
      [(2, [0, 1], [4.5, 1.125]), (4, [2, 3], [0.28125, 0.0703125])]
    """

    step: int
    loss: float
    losses: np.ndarray
    steps: np.ndarray
    state: TrainState
    epoch: int


def _lost(error: Exception, done: int, checkpoints: Any) -> str:
    first = str(error).strip().splitlines()[0][:300]
    kept = (
        "the checkpoints written so far are kept: start every process again to resume"
        if checkpoints is not None
        else "no checkpoint_dir was given"
    )
    return (
        f"process {jax.process_index()} of {jax.process_count()}: a collective operation failed "
        f"after step {done} ({first}). Another process of this run most likely died or cannot be "
        f"reached; {kept}."
    )


class Driver:
    """Runs one configured run chunk by chunk (see the module docstring)."""

    def __init__(self, config, options, chunk: int, every: int | None, checkpoints):
        self.config, self.options, self.chunk, self.every = config, options, chunk, every
        self.checkpoints = checkpoints
        self.program = config.program(chunk)
        self.prefetch = None  # streaming: each chunk's block of examples, read ahead

    def run(self) -> FitResult:
        started = time.perf_counter()
        with _timing.alone(), _compile.clock() as compiling:
            try:
                carry, stop, outputs, done = self._start()
                carry, stop, outputs = self._chunks(carry, stop, outputs, done)
            finally:
                if self.prefetch is not None:
                    self.prefetch.close()
                if self.checkpoints is not None:
                    self.checkpoints.close()
            run_time = time.perf_counter() - started - compiling.seconds  # the steps' time
            result = self._result(carry, stop, outputs)  # the verdict's losses: compile counted
        return dataclasses.replace(result, compile_time=compiling.seconds, run_time=run_time)

    def _start(self):
        """The rows (and the prefetch), and the carry, stop, outputs and steps done so far: fresh,
        or from the newest checkpoint."""
        config = self.config
        self.rows = config.plan.rows(config.key, config.first_step, self.chunk, config.mesh)
        if config.stream is not None:
            rows = np.asarray(self.rows)[: config.plan.steps]
            self.prefetch = _stream.Prefetch(config.stream, rows, self.chunk, self._put)
        carry = config.carry()
        if self.checkpoints is None:
            return carry, None, [], 0
        return self.checkpoints.resume(carry, self._blank(carry))

    def _chunks(self, carry, stop, outputs, done):
        steps = self.config.plan.steps
        bar = _progress_bar(steps, self.options.progress, done)
        reported = done - done % self.every if self.every else done  # resumed: the whole report
        ahead = None  # the next chunk, dispatched before this one's losses are read back
        try:
            while done < steps and stop is None:
                count = min(self.chunk, steps - done)
                chunk, look = ahead or self._dispatch(carry, done, count)
                following = done + count
                ahead = None
                if following < steps:  # from this chunk's end, unchecked: kept if it is finite
                    step_count = min(self.chunk, steps - following)
                    ahead = self._dispatch(look[0], following, step_count)
                carry, metrics, stop = self._guarded(chunk, count, look)
                if stop is not None or carry is not look[0]:
                    ahead = None  # started from a state the guard did not keep
                outputs.append(metrics)
                done += count
                if self.checkpoints is not None:  # before the callback, which may raise
                    self.checkpoints.after_chunk(done, carry, stop, outputs)
                if self._due(done, stop):
                    self._report(done, reported, carry.train, stop, outputs, bar)
                    reported = done
        except jax.errors.JaxRuntimeError as e:
            if jax.process_count() == 1:
                raise
            raise _errors.ProcessLostError(_lost(e, done, self.checkpoints)) from e
        finally:
            if bar is not None:
                bar.close()
        return carry, stop, outputs

    def _dispatch(self, start, done, count):
        """The chunk from step ``done`` and its unchecked run, dispatched (not waited for)."""
        config = self.config
        data, rows, offset = config.data, self.rows, done
        if self.prefetch is not None:  # this chunk's examples, and rows into them
            data, rows = self.prefetch.block(done)
            offset = 0
        first = config.first_step + done
        chunk = Chunk(self.program, data, start, rows, offset, first, config.context)
        return chunk, chunk.run(count)

    def _guarded(self, chunk, count, look):
        """The guard's verdict on a dispatched chunk (``_guard.run``): it waits for its losses
        and replays it when it blew up."""
        options = self.config.options
        carry, metrics, stop = _guard.run(
            chunk, count, guard=options.guard, max_loss=options.max_loss, first_look=look
        )
        if stop is not None:
            stop = _guard.Stop(chunk.first + stop[0], stop[1])
        return carry, metrics, stop

    def _put(self, tree):
        if self.config.mesh is not None:
            return _parallel.put_replicated(tree, self.config.mesh)
        return jax.device_put(tree)

    def _evaluate(self, start, end) -> tuple[float, float]:
        """The losses at the run's start and end on its verdict's examples."""
        config = self.config
        both = _compile.run(
            _engine.evaluate_both,
            config.step,
            config.data,
            config.eval_rows,
            (start.params, start.model_state),
            (end.params, end.model_state),
        )
        initial, final = np.asarray(both).tolist()
        return initial, final

    def _due(self, done: int, stop) -> bool:
        if not self.options.reporting:
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
        if self.options.callback is not None:
            since = losses[reported:done]
            step = stop.step if stop is not None else first + done
            steps = first + np.arange(reported, reported + len(since))
            epoch = self.config.plan.epoch_of(step)
            self.options.callback(Progress(int(step), current, since, steps, state, epoch))

    def _blank(self, carry) -> dict:
        """All-zero columns of the whole run: the layout of a checkpoint's history."""
        config = self.config
        shapes = jax.eval_shape(
            functools.partial(run_chunk, self.program),
            config.data,
            carry,
            self.rows,
            np.int32(0),
            np.int32(1),
            np.int32(0),
            config.context,
        )[1]
        steps = config.plan.steps
        return jax.tree.map(lambda s: np.zeros((steps, *s.shape[1:]), s.dtype), shapes)

    def _result(self, carry, stop, outputs) -> FitResult:
        config, steps = self.config, self.config.plan.steps
        state = carry.train
        out = _fill(jax.tree.map(lambda *xs: np.concatenate(xs), *outputs), steps, state)
        initial, final = self._evaluate(config.state, state)
        diverged, at, why = _result.verdict(
            out["loss"], stop, config.plan.steps_per_epoch, initial, final, config.first_step
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
                _result.history(out["params"], state.params) if "params" in out else None
            ),
            steps=steps,
            first_step=config.first_step,
            sharpness=_instruments.series(out, config.recorders, Sharpness, config.first_step),
            noise_scale=_instruments.series(out, config.recorders, NoiseScale, config.first_step),
            initial_loss=initial,
            final_loss=final,
            compile_time=0.0,
            run_time=0.0,
            columns=out,
            model=_model(state),
        )


def _model(state: TrainState) -> Any:
    """The trained module (a new one), for a run of an ``nnx.Module``; else None."""
    if isinstance(state.model_state, _modules.CARRIED):
        return _modules.merge(state.params, state.model_state)
    return None


def _fill(out: dict, steps: int, state: TrainState) -> dict:
    """Metrics of the steps never run (after a stop): NaN, and the params frozen at the stop."""
    missing = steps - len(out["loss"])
    if missing <= 0:
        return out
    filled = {
        k: np.concatenate([v, np.full((missing, *v.shape[1:]), _blank(v.dtype), v.dtype)])
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


def _blank(dtype) -> Any:
    return np.nan if np.issubdtype(dtype, np.inexact) else 0


def _progress_bar(total: int, enabled: bool, initial: int):
    if not enabled:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, unit="step", desc="jgd.fit", leave=True)
