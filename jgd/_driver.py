"""The host driver of a run: chunk after chunk of the compiled run function, guarded.

Each chunk is one call of ``_engine.run_chunk``, guarded by ``_guard.run`` (an exact replay when a
chunk blew up). Between chunks the host updates the progress bar, saves checkpoints and calls the
callback; the metrics come back once per chunk.
"""

from __future__ import annotations

import time
from typing import Any, NamedTuple

import jax
import numpy as np

from jgd import _compile, _engine, _errors, _guard, _instruments, _parallel, _result, _stream
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

    def __init__(self, config, chunk, every, progress, callback, checkpoints):
        self.config, self.chunk, self.every = config, chunk, every
        self.progress, self.callback, self.checkpoints = progress, callback, checkpoints
        self.program = config.program(chunk)
        self.compile_time = 0.0
        self.prefetch = None  # streaming: each chunk's block of examples, read ahead

    def run(self) -> FitResult:
        started = time.perf_counter()
        rows = self._rows()
        if self.config.stream is not None:
            self.prefetch = _stream.Prefetch(
                self.config.stream,
                np.asarray(rows)[: self.config.plan.steps],
                self.chunk,
                self._put,
            )
        state, stop, outputs, done = self.config.state, None, [], 0
        probe = None
        if self.config.instruments.active:
            probe = _instruments.fresh_probe(state.params, self.config.instruments)
        if self.checkpoints is not None:
            state, probe, stop, outputs, done = self.checkpoints.resume(
                state, probe, self._blank(state)
            )
        bar = _progress_bar(self.config.plan.steps, self.progress, done)
        reported = done - done % self.every if self.every else done  # resumed: the whole report
        try:
            while done < self.config.plan.steps and stop is None:
                count = min(self.chunk, self.config.plan.steps - done)
                state, probe, metrics, stop = self._chunk(state, probe, rows, done, count)
                outputs.append(metrics)
                done += count
                if self.checkpoints is not None:  # before the callback, which may raise
                    self.checkpoints.after_chunk(done, state, probe, stop, outputs)
                if self._due(done, stop):
                    self._report(done, reported, state, stop, outputs, bar)
                    reported = done
        except jax.errors.JaxRuntimeError as e:
            if jax.process_count() == 1:
                raise
            raise _errors.ProcessLostError(_lost(e, done, self.checkpoints)) from e
        finally:
            if self.prefetch is not None:
                self.prefetch.close()
            if bar is not None:
                bar.close()
            if self.checkpoints is not None:
                self.checkpoints.close()
        run_time = time.perf_counter() - started - self.compile_time
        return self._result(state, stop, outputs, run_time)

    def _chunk(self, start, probe, rows, done, count):
        config = self.config
        data, offset = config.data, done
        if self.prefetch is not None:  # this chunk's examples, and rows into them
            data, rows = self.prefetch.block(done)
            offset = 0
        carry, watch = start, None
        if probe is not None:  # the instruments' carry, examples and this chunk's first step
            carry, watch = (start, probe), (config.probe_batch, np.int32(config.first_step + done))

        def fast(n):
            return self._call((self.program, False), carry, rows, offset, n, data, watch)

        def check(n):
            return self._call((self.program, True), carry, rows, offset, n, data, watch)

        state, metrics, stop = _guard.run(
            fast, check, count, guard=config.guard, max_loss=config.max_loss
        )
        if probe is not None:
            state, probe = state
        if stop is not None:
            stop = _guard.Stop(config.first_step + done + stop[0], stop[1])
        return state, probe, metrics, stop

    def _put(self, tree):
        if self.config.mesh is not None:
            return _parallel.put_replicated(tree, self.config.mesh)
        return jax.device_put(tree)

    def _call(self, static, state, rows, offset, count, data, watch):
        out, seconds = _compile.call(
            _engine.run_chunk, static, data, state, rows, np.int32(offset), np.int32(count), watch
        )
        self.compile_time += seconds
        return out

    def _evaluate(self, params) -> float:
        config = self.config
        out, seconds = _compile.call(
            _engine.evaluate, config.step.loss, config.data, config.eval_rows, params
        )
        self.compile_time += seconds
        return float(out)

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
            return np.asarray(rows) if self.config.stream is not None else rows
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
        for name in _result.instrument_columns(self.config.instruments):
            out[name] = np.zeros(steps, np.int32 if name.endswith("iterations") else dtype)
        if self.config.record_params:
            out["params"] = jax.tree.map(
                lambda p: np.zeros((steps, *np.shape(p)), np.asarray(p).dtype), state.params
            )
        return out

    def _result(self, state, stop, outputs, run_time) -> FitResult:
        config, steps = self.config, self.config.plan.steps
        out = _fill(jax.tree.map(lambda *xs: np.concatenate(xs), *outputs), steps, state)
        initial, final = (self._evaluate(p) for p in (config.state.params, state.params))
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
                _result.history(out["params"], state.params) if config.record_params else None
            ),
            steps=steps,
            first_step=config.first_step,
            sharpness=_result.sharpness(out, config.instruments, config.first_step),
            noise_scale=_result.noise_scale(out, config.instruments, config.first_step),
            initial_loss=initial,
            final_loss=final,
            compile_time=self.compile_time,
            run_time=run_time,
        )


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
