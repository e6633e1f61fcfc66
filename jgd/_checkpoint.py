"""Checkpoints of a run with orbax-checkpoint: save every N steps, resume from the newest good one.

A checkpoint holds the train state, the guard's stop, the per-step history so far and a JSON
description of the run. Resuming reads that description first and checks it against the new
call, so a checkpoint is never silently continued with other arguments (nor another run's folder
mistaken for a damaged one). orbax writes each step to a temporary folder and renames it when
complete; a newest checkpoint that still fails to restore (a corrupted file) is reported with a
warning, moved aside (renamed ``unreadable-<step>-<time>``) and the previous one is used.
"""

from __future__ import annotations

import fcntl
import json
import os
import pathlib
import shutil
import time
import warnings
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp

from jgd import _io, _parallel
from jgd._fingerprint import fingerprint
from jgd._guard import Stop

_FORMAT = 3  # the payload's layout and the description's; another format is another run
_MARKER = "jgd-run.json"  # marks a folder as one jgd run's, with its description
_LOCK = ".jgd.lock"
_FINGERPRINTED = {"optimizer", "start", "loss", "data", "order"}  # compared by fingerprint
_REASONS = ("", "non-finite", "max_loss")


class Checkpoints:
    """Saves and restores one run's checkpoints in ``directory``, which it owns while open.

    The folder is locked (a second process is refused at once; the lock goes with the process)
    and marked ``jgd-run.json`` with the run's description: a folder holding anything else, or
    another run, is refused before any step is read, and nothing in it is moved.
    """

    def __init__(self, directory: str | os.PathLike, description: dict[str, Any], keep: int = 2):
        directory = os.path.abspath(os.fspath(directory))
        try:
            os.makedirs(directory, exist_ok=True)
        except OSError as e:
            raise ValueError(
                f"checkpoint_dir={directory!r} cannot be created: {e.strerror}."
            ) from None
        if not os.access(directory, os.W_OK):
            raise ValueError(f"checkpoint_dir={directory!r} is not writable.")
        self.directory = directory
        self.description = json.loads(json.dumps(description, default=str))
        self._refuse_foreign()  # before the lock: nothing is added to a folder that is not ours
        self._lock = _lock(directory)
        try:
            self._refuse_foreign()  # again under the lock: another process may have claimed it
            self._claim()
            for partial in pathlib.Path(directory).glob("*.orbax-checkpoint-tmp"):
                shutil.rmtree(partial)  # a save cut short (a kill): ours, under our lock
            self._manager = _manager(directory, keep)
        except BaseException:
            self._lock.close()
            raise

    def _refuse_foreign(self) -> None:
        """Raises when the folder holds files but no jgd run (its marker)."""
        folder = pathlib.Path(self.directory)
        if (folder / _MARKER).exists():
            return
        foreign = sorted(p.name for p in folder.iterdir() if p.name != _LOCK)
        if foreign:
            shown = ", ".join(foreign[:5]) + (", ..." if len(foreign) > 5 else "")
            raise ValueError(
                f"checkpoint_dir={self.directory!r} is not empty and holds no jgd run "
                f"({shown}); jgd writes checkpoints only into an empty folder or one of its own "
                "runs. Use a new checkpoint_dir."
            )

    def _claim(self) -> None:
        """Checks the marker against this run, or marks the (empty) folder as this run's."""
        marker = pathlib.Path(self.directory) / _MARKER
        if not marker.exists():
            _io.write_text(marker, json.dumps(self.description, indent=1))
            return
        try:
            saved = json.loads(marker.read_text())
        except (OSError, ValueError) as e:
            raise ValueError(
                f"checkpoint_dir={self.directory!r}: its {_MARKER} cannot be read ({e}); "
                "use a new checkpoint_dir."
            ) from None
        self._check_same_run(saved)

    def save(self, step: int, payload: Any) -> None:
        """Writes ``payload`` (a pytree of arrays) as the checkpoint of ``step``; waits for it."""
        payload = jax.tree_util.tree_map(np.asarray, payload)
        self._manager.save(
            step,
            args=ocp.args.Composite(
                state=ocp.args.StandardSave(payload),
                run=ocp.args.JsonSave(self.description),
            ),
            force=True,
        )
        self._manager.wait_until_finished()

    def restore_latest(self, template: Any) -> tuple[int, Any] | None:
        """``(step, payload)`` of the newest checkpoint that restores, or None when there is none.

        Raises:
          ValueError: the checkpoint belongs to a run with other arguments.
        """
        steps = sorted(self._manager.all_steps(), reverse=True)
        for step in steps:
            try:
                saved = self._manager.restore(
                    step, args=ocp.args.Composite(run=ocp.args.JsonRestore())
                )
            except Exception:  # unreadable description: judged with the state below
                saved = None
            if saved is not None:
                self._check_same_run(saved["run"])
            try:
                restored = self._manager.restore(
                    step, args=ocp.args.Composite(state=ocp.args.StandardRestore(template))
                )
            except Exception as e:  # orbax raises many types for damaged files
                aside = self._move_aside(step)
                warnings.warn(
                    f"checkpoint step {step} in {self.directory} could not be read "
                    f"({type(e).__name__}: {str(e)[:120]}); moved to {aside.name} and trying "
                    "the previous one.",
                    RuntimeWarning,
                    stacklevel=3,
                )
                continue
            return step, restored["state"]
        return None

    def _move_aside(self, step: int) -> pathlib.Path:
        """Renames an unreadable step folder (kept for inspection) so it can be written again."""
        source = pathlib.Path(self.directory) / str(step)
        target = source.with_name(f"unreadable-{step}-{int(time.time())}")
        if source.exists():
            source.rename(target)
        self._manager.reload()
        return target

    def _check_same_run(self, saved: dict[str, Any]) -> None:
        differ = sorted(
            k for k in set(saved) | set(self.description) if saved.get(k) != self.description.get(k)
        )
        if differ:
            details = "; ".join(
                f"{k}: the values differ"
                if k in _FINGERPRINTED
                else f"{k}: saved {saved.get(k)!r}, now {self.description.get(k)!r}"
                for k in differ
            )
            raise ValueError(
                f"checkpoint_dir={self.directory!r} holds a run with other arguments ({details}). "
                "Use a new checkpoint_dir, or the same arguments to resume."
            )

    def close(self) -> None:
        self._manager.close()
        self._lock.close()


def _manager(directory: str, keep: int) -> Any:
    """orbax's manager; in a run of several processes, one that involves this process alone
    (process 0 writes the replicated state; orbax's handlers would wait for every process)."""
    if jax.process_count() == 1:
        return ocp.CheckpointManager(
            directory, options=ocp.CheckpointManagerOptions(max_to_keep=keep, create=True)
        )
    me = jax.process_index()
    alone = ocp.options.MultiprocessingOptions(primary_host=me, active_processes={me})
    options = ocp.CheckpointManagerOptions(
        max_to_keep=keep,
        create=False,
        multiprocessing_options=alone,  # the folder exists
    )
    handlers = {
        "state": ocp.StandardCheckpointHandler(multiprocessing_options=alone),
        "run": ocp.JsonCheckpointHandler(multiprocessing_options=alone),
    }
    return ocp.CheckpointManager(directory, options=options, item_handlers=handlers)


def _lock(directory: str) -> Any:
    """An exclusive lock on ``directory`` for this process (released when it closes or dies)."""
    handle = open(os.path.join(directory, _LOCK), "a+")  # noqa: SIM115 (held until close)
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        raise ValueError(
            f"checkpoint_dir={directory!r} is in use by another process (a jgd run writing its "
            "checkpoints there); wait for it to finish, or use another folder."
        ) from None
    return handle


class RunCheckpoints:
    """``fit``'s checkpoints: what a run saves after a chunk, and how it resumes."""

    def __init__(self, directory: Any, config: Any, every: int):
        self.every, self.steps, self.mesh = every, config.plan.steps, config.mesh
        # several processes: process 0 writes and reads them; the state is replicated, and the
        # others receive what it restores
        self.store = Checkpoints(directory, describe(config)) if jax.process_index() == 0 else None

    def after_chunk(self, done: int, state: Any, stop: Stop | None, outputs: list) -> None:
        """Saves when ``done`` is a multiple of ``every``, at the end, or at a stop."""
        due = done % self.every == 0 or done == self.steps or stop is not None
        if due and self.store is not None:
            self.store.save(done, _payload(state, stop, outputs, self.steps))

    def resume(self, state: Any, blank: dict) -> tuple[Any, Stop | None, list, int]:
        """``(state, stop, outputs, done)`` from the newest checkpoint, or the fresh ones."""
        template = _payload(state, None, [blank], self.steps)
        found = self.store.restore_latest(template) if self.store is not None else None
        if jax.process_count() > 1:  # every process resumes where process 0 does
            from jax.experimental import multihost_utils

            step = int(multihost_utils.broadcast_one_to_all(np.int64(found[0] if found else -1)))
            payload = multihost_utils.broadcast_one_to_all(found[1] if found else template)
            found = (step, jax.tree_util.tree_map(np.asarray, payload)) if step >= 0 else None
        if found is None:
            return state, None, [], 0
        step, payload = found
        leaves = [jnp.asarray(x) for x in payload["state"]]
        state = jax.tree_util.tree_unflatten(jax.tree_util.tree_structure(state), leaves)
        if self.mesh is not None:  # every process holds the whole (replicated) state
            state = _parallel.put_replicated(state, self.mesh)
        stopped, at, reason = (int(x) for x in payload["guard"])
        stop = Stop(at, _REASONS[reason]) if stopped else None
        history = jax.tree_util.tree_unflatten(
            jax.tree_util.tree_structure(blank), [np.asarray(h)[:step] for h in payload["history"]]
        )
        return state, stop, [history], int(step)

    def close(self) -> None:
        if self.store is not None:
            self.store.close()


def _local(tree: Any) -> Any:
    """The values this process holds: the whole array, or (an array spread over several
    processes) its own shards, which its own checkpoints belong to."""

    def local(a: Any) -> Any:
        if not isinstance(a, jax.Array) or a.is_fully_addressable or a.is_fully_replicated:
            return jax.device_get(a)
        shards = sorted(a.addressable_shards, key=lambda s: str(s.index))
        return [np.asarray(s.data) for s in shards]

    return jax.tree_util.tree_map(local, tree)


def describe(config: Any) -> dict[str, Any]:
    """What must match for a checkpoint to be resumed by this call: everything that changes the
    result, the data and the loss by fingerprint (``_fingerprint``)."""
    hyperparams = jax.tree_util.tree_map(float, config.optimizer.hyperparams)
    leaves = jax.tree_util.tree_leaves(config.state.params)
    step = config.step
    return {
        "format": _FORMAT,
        "plan": list(config.plan),
        "optimizer": fingerprint(config.optimizer.static),
        "hparams": repr(hyperparams),
        "key": np.asarray(config.key).tolist(),
        "first_step": config.first_step,
        "start": fingerprint(jax.device_get(config.state)),
        "loss": fingerprint(step.loss),
        "data": fingerprint(_local(config.data)),
        "mode": step.mode,
        "gradient options": dict(step.grad_options),
        "max_loss": config.max_loss,
        "guard": config.guard,
        "record_params": config.record_params,
        "grad_norm": config.grad_norm,
        "params": [[*np.shape(p), str(jnp.result_type(p))] for p in leaves],
        "order": None if config.order is None else fingerprint(config.order),
    }


def _payload(state: Any, stop: Stop | None, outputs: list, steps: int) -> dict:
    """A checkpoint: flat leaves (orbax restores lists as lists), history padded to ``steps``."""
    history = jax.tree_util.tree_map(lambda *xs: _pad_to(np.concatenate(xs), steps), *outputs)
    guard = [stop is not None, -1 if stop is None else stop.step, _reason_code(stop)]
    return {
        "state": jax.tree_util.tree_leaves(state),
        "guard": [np.asarray(g, np.int32) for g in guard],
        "history": jax.tree_util.tree_leaves(history),
    }


def _reason_code(stop: Stop | None) -> int:
    return 0 if stop is None else _REASONS.index(stop.reason)


def _pad_to(array: np.ndarray, steps: int) -> np.ndarray:
    missing = steps - array.shape[0]
    if missing <= 0:
        return array[:steps]
    return np.concatenate([array, np.zeros((missing, *array.shape[1:]), array.dtype)])
