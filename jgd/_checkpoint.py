"""Checkpoints of a run with orbax-checkpoint: save every N steps, resume from the newest good one.

A checkpoint holds the train state, the divergence guard, the per-step history so far and a JSON
description of the run. Resuming checks that description against the new call, so a checkpoint
is never silently continued with other arguments. orbax writes each step to a temporary folder and
renames it when complete; a newest checkpoint that still fails to restore (a corrupted file) is
reported with a warning, moved aside (renamed ``unreadable-<step>-<time>``) and the previous one
is used.
"""

from __future__ import annotations

import json
import os
import pathlib
import time
import warnings
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp


class Checkpoints:
    """Saves and restores one run's checkpoints in ``directory``."""

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
        self._manager = ocp.CheckpointManager(
            directory, options=ocp.CheckpointManagerOptions(max_to_keep=keep, create=True)
        )

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
        for step in sorted(self._manager.all_steps(), reverse=True):
            try:
                restored = self._manager.restore(
                    step,
                    args=ocp.args.Composite(
                        state=ocp.args.StandardRestore(template), run=ocp.args.JsonRestore()
                    ),
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
            self._check_same_run(restored["run"])
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
                f"{k}: saved {saved.get(k)!r}, now {self.description.get(k)!r}" for k in differ
            )
            raise ValueError(
                f"checkpoint_dir={self.directory!r} holds a run with other arguments ({details}). "
                "Use a new checkpoint_dir, or the same arguments to resume."
            )

    def close(self) -> None:
        self._manager.close()
