"""A run's options, grouped and checked once at the boundary: ``RunOptions`` (what the compiled
run depends on; ``fit`` and ``sweep`` share it) and ``DriverOptions`` (how ``fit``'s host driver
runs it: reports, checkpoints, streaming).

Each value is checked here, alone, when the object is made; what needs the data (a plan's steps,
the number of examples) is checked in ``_config``, when the run is configured.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Any

import numpy as np

from jgd import _errors, _recorders, _tangents
from jgd._guard import GUARDS
from jgd._instruments import NoiseScale, Sharpness

DIVERGENCE = ("stop", "raise")


@dataclasses.dataclass(frozen=True)
class RunOptions:
    """What a run computes besides its loss, params, data and optimizer (see ``jgd.fit``).

    Attributes:
      batch_size, epochs, order: the batch plan (``_plans.make``).
      mode, has_aux, chunk_size, step_size, num_tangents, tangent: the gradient
        (``jgd.value_and_grad``).
      record_params, grad_norm, update_norm: built-in per-step recorders.
      sharpness_every, noise_scale_every: the instruments' periods, or None.
      recorders: the user's own ``jgd.Recorder``s.
      guard, max_loss: the divergence guard.
    """

    batch_size: int | None = None
    epochs: int = 1
    order: Any = dataclasses.field(default=None, compare=False)
    mode: str = "reverse"
    has_aux: bool = False
    chunk_size: int | None = None
    step_size: float | None = None
    num_tangents: int = 1
    tangent: str = _tangents.DEFAULT
    record_params: bool = False
    grad_norm: bool = False
    update_norm: bool = False
    sharpness_every: int | None = None
    noise_scale_every: int | None = None
    recorders: Any = ()
    guard: str = "full"
    max_loss: float | None = None

    def __post_init__(self) -> None:
        _errors.one_of("guard", self.guard, GUARDS)
        for name in ("has_aux", "record_params", "grad_norm", "update_norm"):
            _bool(name, getattr(self, name))
        for name in ("sharpness_every", "noise_scale_every"):
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, _errors.positive_int(name, value))
        if self.max_loss is not None:
            object.__setattr__(self, "max_loss", _errors.positive_float("max_loss", self.max_loss))
        object.__setattr__(self, "recorders", _recorders.check(self.recorders))

    @classmethod
    def from_keywords(cls, options: dict[str, Any]) -> RunOptions:
        """``RunOptions(**options)``, refusing a driver's option or an unknown name by name."""
        names = [f.name for f in dataclasses.fields(cls)]
        driver = sorted(set(options) & {*DRIVER_NAMES, "on_divergence"})
        if driver:
            raise ValueError(
                f"sweep does not take {driver}; it runs as one call on device-resident data. Use "
                "fit for progress bars, reports, checkpoints, streaming and on_divergence='raise'."
            )
        unknown = sorted(set(options) - set(names))
        if unknown:
            raise TypeError(
                f"sweep got unexpected arguments {unknown}; besides loss, params, data, optimizer, "
                f"learning_rate, seeds, key and mesh it takes {sorted(names)}."
            )
        return cls(**options)

    def gradient(self) -> dict[str, Any]:
        """The options ``jgd.make_step`` passes to ``jgd.value_and_grad``."""
        return {
            "chunk_size": self.chunk_size,
            "step_size": self.step_size,
            "num_tangents": self.num_tangents,
            "tangent": self.tangent,
        }

    def run_recorders(self) -> tuple:
        """Every recorder of the run, the loss first, then the built-ins asked for, then the
        user's own (the order of ``Carry.records``)."""
        flags = (
            (self.has_aux, _recorders.AUX),
            (self.grad_norm, _recorders.GRAD_NORM),
            (self.update_norm, _recorders.UPDATE_NORM),
            (self.record_params, _recorders.PARAMS),
        )
        built_in = [r for on, r in flags if on]
        if self.sharpness_every is not None:
            built_in.append(Sharpness(self.sharpness_every))
        if self.noise_scale_every is not None:
            built_in.append(NoiseScale(self.noise_scale_every))
        return (_recorders.LOSS, *built_in, *self.recorders)

    def check_run(self, steps: int, num_examples: int) -> None:
        """Checks the periods against the run's steps and examples."""
        periods = {"sharpness_every": self.sharpness_every}
        periods["noise_scale_every"] = self.noise_scale_every
        periods.update(
            {f"recorders[{i}].every": _recorders.every_of(r) for i, r in enumerate(self.recorders)}
        )
        for name, every in periods.items():
            if every is not None and every > steps:
                raise ValueError(
                    f"{name}={every} is longer than the run ({steps} steps), so it would record "
                    f"nothing; give an integer from 1 to {steps}."
                )
        if self.noise_scale_every is not None and num_examples < 2:
            raise ValueError(
                f"noise_scale_every={self.noise_scale_every} needs at least 2 examples (the "
                f"noise scale is a variance across examples); data has {num_examples}."
            )


DRIVER_NAMES = (
    "progress",
    "report_every",
    "callback",
    "checkpoint_dir",
    "checkpoint_every",
    "stream",
)


@dataclasses.dataclass(frozen=True)
class DriverOptions:
    """How ``fit``'s host driver runs a run (see ``jgd.fit``)."""

    progress: bool = False
    report_every: int | str | None = None
    callback: Callable | None = None
    checkpoint_dir: Any = None
    checkpoint_every: int | None = None
    stream: bool = False
    on_divergence: str = "stop"

    def __post_init__(self) -> None:
        _errors.one_of("on_divergence", self.on_divergence, DIVERGENCE)
        _bool("progress", self.progress)
        _bool("stream", self.stream)
        if self.checkpoint_dir is not None and not str(self.checkpoint_dir).strip():
            raise ValueError(
                f"checkpoint_dir={self.checkpoint_dir!r} is empty; give a folder, e.g. "
                "checkpoint_dir='ckpt'."
            )
        if self.callback is not None and not callable(self.callback):
            raise TypeError(f"callback={_errors.describe(self.callback)} is not callable.")
        if isinstance(self.report_every, str) and self.report_every != "epoch":
            raise ValueError(
                f"report_every={self.report_every!r} is not valid; expected an integer >= 1 "
                "(steps between reports) or 'epoch'."
            )
        if self.report_every not in (None, "epoch"):
            _errors.positive_int("report_every", self.report_every)
        if self.checkpoint_every is not None:
            _errors.positive_int("checkpoint_every", self.checkpoint_every)
        if self.checkpoint_dir is not None and self.checkpoint_every is None:
            raise ValueError(
                "checkpoint_dir is set but checkpoint_every=None; give the number of "
                "steps between checkpoints, e.g. checkpoint_every=100."
            )
        if self.checkpoint_dir is None and self.checkpoint_every is not None:
            raise ValueError(
                f"checkpoint_every={self.checkpoint_every} was given without checkpoint_dir, so "
                "nothing would be saved; give checkpoint_dir='a folder', or leave "
                "checkpoint_every=None."
            )

    @property
    def reporting(self) -> bool:
        """Whether the run reports (a progress bar or a callback)."""
        return bool(self.progress) or self.callback is not None

    def schedule(self, steps: int, steps_per_epoch: int) -> tuple[int, int | None]:
        """``(chunk, every)``: the steps of one compiled call, and between reports (or None).

        The chunk is the whole run, or what reports and checkpoints need (their greatest common
        divisor; a default report interval, about 1% of the run, bends to ``checkpoint_every``'s
        divisors, and is then the chunk itself).
        """
        every = None
        if self.report_every == "epoch":
            every = steps_per_epoch
        elif self.report_every is not None:
            every = int(self.report_every)
        if every is None and self.reporting:
            every = max(1, math.ceil(steps / 100))
        chunk = _chunk_length(steps, every, self.checkpoint_every, self.report_every is None)
        return chunk, every


def _chunk_length(steps: int, every: int | None, checkpoint_every: int | None, default: bool):
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


def _bool(name: str, value: Any) -> None:
    if not isinstance(value, bool | np.bool_):
        raise TypeError(f"{name}={_errors.describe(value)} is not valid; expected True or False.")
