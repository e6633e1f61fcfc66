"""Checkpoints of a run with orbax-checkpoint: save every N steps, resume from the newest good one.

A checkpoint holds the train state, the guard's stop, the per-step history so far and a JSON
description of the run. Resuming reads that description first and checks it against the new
call, so a checkpoint is never silently continued with other arguments (nor another run's folder
mistaken for a damaged one). orbax writes each step to a temporary folder and renames it when
complete; a newest checkpoint that still fails to restore (a corrupted file) is reported with a
warning, moved aside (renamed ``unreadable-<step>-<time>``) and the previous one is used.
"""

from __future__ import annotations

import json
import os
import pathlib
import shutil
import time
import warnings
from collections.abc import Callable
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp

from jgd import _folder, io

_MARKER = "jgd-run.json"  # marks a folder as one jgd run's, with its description
_LOCK = _folder.LOCK
_FINGERPRINTED = {  # compared by digest: what a difference means
    "program": "what the run computes differs (the loss, the optimizer, a schedule or a "
    "recorder, or what one of them closes over)",
    "start": "the starting params or state differ",
    "data": "the data's values differ",
    "order": "the order's rows differ",
}


class Checkpoints:
    """Saves and restores one run's checkpoints in ``directory``, which it owns while open.

    The folder is locked (a second process is refused at once; the lock goes with the process)
    and marked ``jgd-run.json`` with the run's description: a folder holding anything else, or
    another run, is refused before any step is read, and nothing in it is moved.
    """

    def __init__(self, directory: str | os.PathLike, description: dict[str, Any], keep: int = 2):
        if isinstance(directory, bytes):
            directory = os.fsdecode(directory)
        if not isinstance(directory, str | os.PathLike):
            raise TypeError(
                f"checkpoint_dir={directory!r} is not valid; expected a folder path (str or "
                "pathlib.Path)."
            )
        directory = os.path.abspath(os.path.expanduser(os.fspath(directory)))
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
        self._lock = _folder.lock(directory)
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
        """Checks the marker against this run, or marks the (empty) folder as this run's. A run
        continued to more steps (``continues``) marks the folder with its longer plan."""
        marker = pathlib.Path(self.directory) / _MARKER
        if not marker.exists():
            io.write_text(marker, json.dumps(self.description, indent=1))
            return
        try:
            saved = json.loads(marker.read_text())
        except (OSError, ValueError) as e:
            raise ValueError(
                f"checkpoint_dir={self.directory!r}: its {_MARKER} cannot be read ({e}); "
                "use a new checkpoint_dir."
            ) from None
        if self._check_same_run(saved):
            io.write_text(marker, json.dumps(self.description, indent=1))

    def save(self, step: int, payload: Any) -> None:
        """Writes ``payload`` (a pytree of arrays) as the checkpoint of ``step``; waits for it.

        A Ctrl-C during the write interrupts once it is complete (a second one, at once).

        Raises:
          OSError: naming ``checkpoint_dir``, the step and the last complete checkpoint, when the
            write fails (a full disk, a folder made read-only); the partial write is removed.
        """
        payload = jax.tree_util.tree_map(np.asarray, payload)
        self._reclaim()
        with _folder.interrupts_after():  # a Ctrl-C meanwhile: once the write is whole
            try:
                self._manager.save(
                    step,
                    args=ocp.args.Composite(
                        state=ocp.args.StandardSave(payload),
                        run=ocp.args.JsonSave(self.description),
                    ),
                    force=True,
                )
                self._manager.wait_until_finished()
            except Exception as e:  # orbax and tensorstore raise ValueError, OSError, ... for these
                for partial in pathlib.Path(self.directory).glob(f"{step}.orbax-checkpoint-tmp*"):
                    shutil.rmtree(partial, ignore_errors=True)  # ours, and it may hold the space
                raise _folder.write_error(self.directory, step, self.last_step(), e) from None

    def last_step(self) -> int | None:
        """The newest complete checkpoint's step in the folder, or None."""
        try:
            self._manager.reload()
            steps = self._manager.all_steps()
        except Exception:
            return None
        return max(steps) if steps else None

    def _reclaim(self) -> None:
        """Writes the marker (and takes the lock) again when the folder was emptied, or removed,
        while this run had it: its later checkpoints stay this run's, never a foreign folder."""
        marker = pathlib.Path(self.directory) / _MARKER
        if marker.exists():
            return
        warnings.warn(
            f"checkpoint_dir={self.directory!r} was emptied while this run was writing to it; "
            "its earlier checkpoints are gone, and it is marked as this run's again.",
            RuntimeWarning,
            stacklevel=4,
        )
        os.makedirs(self.directory, exist_ok=True)
        if not os.path.exists(os.path.join(self.directory, _LOCK)):
            self._lock.close()
            self._lock = _folder.lock(self.directory)
        io.write_text(marker, json.dumps(self.description, indent=1))
        self._manager.reload()

    def restore_latest(self, template: Callable[[int], Any]) -> tuple[int, Any] | None:
        """``(step, payload)`` of the newest checkpoint that restores, or None when there is none.

        ``template(steps)`` is the payload's layout for a run of ``steps`` steps: a checkpoint
        of the shorter run this one continues holds that run's layout.

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
            length = _steps(self.description)
            if saved is not None:
                self._check_same_run(saved["run"])
                length = _steps(saved["run"]) or length
            try:
                layout = ocp.args.StandardRestore(template(length))
                restored = self._manager.restore(step, args=ocp.args.Composite(state=layout))
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

    def _check_same_run(self, saved: dict[str, Any]) -> bool:
        """Raises unless ``saved`` describes this run, or a shorter run this one continues
        (returns True then)."""
        if saved.get("format") != self.description.get("format"):
            raise ValueError(
                f"checkpoint_dir={self.directory!r} holds checkpoints of format "
                f"{saved.get('format')!r}, written by another version of jgd; this one reads "
                f"format {self.description.get('format')!r}. Use a new checkpoint_dir (or the "
                "jgd version that wrote it to finish that run)."
            )
        differ = sorted(
            k for k in set(saved) | set(self.description) if saved.get(k) != self.description.get(k)
        )
        longer = _continues(saved.get("plan"), self.description.get("plan"))
        if "plan" in differ and longer is not None:
            if differ == ["plan"] and longer:
                return True
            if differ == ["plan"]:
                raise ValueError(
                    f"checkpoint_dir={self.directory!r} holds a run of {_steps(saved):,} steps; "
                    f"this call asks for {_steps(self.description):,}: a run can be continued to "
                    "more steps, never cut to fewer. Use a new checkpoint_dir."
                )
            if "program" in differ and longer:
                raise ValueError(
                    f"checkpoint_dir={self.directory!r} holds a run of {_steps(saved):,} steps "
                    f"that this call cannot continue to {_steps(self.description):,}: what the "
                    "run computes differs (the loss, the optimizer, or a schedule that depends on "
                    "the run's length, such as a decay over all its steps: continued, it would not "
                    "equal one longer run). Use a new checkpoint_dir."
                )
        if differ:
            details = "; ".join(
                f"{k}: {_FINGERPRINTED[k]}"
                if k in _FINGERPRINTED
                else f"{k}: saved {saved.get(k)!r}, now {self.description.get(k)!r}"
                for k in differ
            )
            raise ValueError(
                f"checkpoint_dir={self.directory!r} holds a run with other arguments ({details}). "
                "Use a new checkpoint_dir, or the same arguments to resume."
            )
        return False

    def close(self) -> None:
        self._manager.close()
        self._lock.close()


def _steps(description: dict[str, Any]) -> int | None:
    plan = description.get("plan")
    return plan[3] if isinstance(plan, list) and len(plan) == 5 else None


def _continues(saved: Any, now: Any) -> bool | None:
    """Whether the plan ``now`` continues ``saved`` (the same kind of plan, examples, batch
    and epoch, more steps: its first steps are the saved run's); None when it is another plan."""
    if not (isinstance(saved, list) and isinstance(now, list) and len(saved) == len(now) == 5):
        return None
    if saved[0] not in ("full", "shuffle") or saved[:3] + saved[4:] != now[:3] + now[4:]:
        return None
    return now[3] > saved[3]


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
