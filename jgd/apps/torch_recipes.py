"""The torch side of a comparison by name: ``jgd compare-torch --optimizer/--scheduler``."""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

OPTIMIZERS = ("sgd", "adam", "adamw", "rmsprop", "adagrad", "nadam", "radam", "adamax", "adadelta")
SCHEDULERS = ("none", "step", "cosine", "exponential", "inverse-time")


class Side(NamedTuple):
    """One side's run: per-step losses, seconds of the loop (compile excluded), final params."""

    losses: np.ndarray
    seconds: float
    params: Any
    compile_seconds: float = 0.0  # what this call spent compiling (0 once warm)


def torch_optimizer(name: str, params: Any, *, lr: float, momentum: float, nesterov: bool) -> Any:
    """The torch optimizer ``name`` over ``params`` (momentum: SGD and RMSprop; nesterov: SGD)."""
    import torch

    optim = torch.optim
    if name == "sgd":
        return optim.SGD(params, lr=lr, momentum=momentum, nesterov=nesterov)
    if name == "rmsprop":
        return optim.RMSprop(params, lr=lr, momentum=momentum)
    kinds = {
        "adam": optim.Adam,
        "adamw": optim.AdamW,
        "adagrad": optim.Adagrad,
        "nadam": optim.NAdam,
        "radam": optim.RAdam,
        "adamax": optim.Adamax,
        "adadelta": optim.Adadelta,
    }
    return kinds[name](params, lr=lr)


def torch_scheduler(name: str, optimizer: Any, steps: int) -> Any:
    """The torch scheduler ``name`` over a run of ``steps``: StepLR (halving three times),
    CosineAnnealingLR, ExponentialLR (to 1% at the end), LambdaLR η₀/(1 + γt) with γ = 0.01."""
    import torch

    sched = torch.optim.lr_scheduler
    if name == "none":
        return None
    if name == "step":
        return sched.StepLR(optimizer, step_size=max(1, steps // 4), gamma=0.5)
    if name == "cosine":
        return sched.CosineAnnealingLR(optimizer, T_max=steps)
    if name == "exponential":
        return sched.ExponentialLR(optimizer, gamma=0.01 ** (1 / steps))
    return sched.LambdaLR(optimizer, _inverse_time)


def _inverse_time(t: int) -> float:  # the seeds' η₀/(1 + γt), γ = 0.01 (module-level: picklable)
    return 1 / (1 + 0.01 * t)


def check_names(optimizer: str, scheduler: str) -> None:
    """Raises ValueError unless ``optimizer`` and ``scheduler`` are names this module knows."""
    for name, value, allowed in (
        ("optimizer", optimizer, OPTIMIZERS),
        ("scheduler", scheduler, SCHEDULERS),
    ):
        if value not in allowed:
            choices = ", ".join(map(repr, allowed))
            raise ValueError(f"{name}={value!r} is not valid; expected one of {choices}.")


__all__ = [
    "OPTIMIZERS",
    "SCHEDULERS",
    "Side",
    "check_names",
    "torch_optimizer",
    "torch_scheduler",
]
