"""The seeds' PyTorch model (``Net``) and the lazy import of torch, below everything that uses them
(``jgd.models`` copies a ``Net``; ``jgd.torch_baseline`` trains one)."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any


def require_torch() -> Any:
    """The ``torch`` module, or an ImportError saying how to install it."""
    try:
        import torch
    except ImportError:
        raise ImportError(
            "this needs PyTorch, which is not installed; add it with "
            "`pip install 'jgd[torch]'` (or `pip install torch`)."
        ) from None
    return torch


ACTIVATIONS = ("relu", "tanh", "sigmoid", "gelu", "gelu_tanh")


@functools.cache
def _net_class() -> type:
    torch = require_torch()
    nn = torch.nn

    class Net(nn.Module):
        """The seeds' model: Linear layers ``fc1``, ``fc2``, ... with an activation between."""

        def __init__(self, sizes: Sequence[int], activation: str):
            super().__init__()
            self.depth = len(sizes) - 1
            for i in range(self.depth):
                setattr(self, f"fc{i + 1}", nn.Linear(sizes[i], sizes[i + 1]))
            self.relu = {  # the seeds' name for it
                "relu": nn.ReLU,
                "tanh": nn.Tanh,
                "sigmoid": nn.Sigmoid,
                "gelu": nn.GELU,
                "gelu_tanh": functools.partial(nn.GELU, approximate="tanh"),
            }[activation]()

        def forward(self, x):
            for i in range(1, self.depth):
                x = self.relu(getattr(self, f"fc{i}")(x))
            return getattr(self, f"fc{self.depth}")(x)

    return Net


def Net(  # noqa: N802
    in_features: int = 784,
    hidden: int | Sequence[int] = 128,
    out_features: int = 10,
    activation: str = "relu",
) -> Any:
    """The seeds' ``Net`` (784 -> 128 -> ReLU -> 10 by default) as a ``torch.nn.Module``."""
    if activation not in ACTIVATIONS:
        raise ValueError(f"activation={activation!r} is not valid; expected one of {ACTIVATIONS}.")
    widths = [hidden] if isinstance(hidden, int) else list(hidden)
    return _net_class()([in_features, *widths, out_features], activation)


__all__ = ["ACTIVATIONS", "Net", "require_torch"]
