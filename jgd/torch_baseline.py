"""The seeds' PyTorch loop, for comparisons: the same model, batches and updates as jgd.

``train`` is the loop of the seeds verbatim (zero_grad, forward, CrossEntropyLoss, backward,
step), driven by an explicit index order so that ``jgd.fit(order=...)`` sees the same batches.
torch is imported lazily; without it, a clear message says how to add it.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Sequence
from typing import Any

import numpy as np


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


def train(
    model: Any,
    X: np.ndarray,
    y: np.ndarray,
    order: np.ndarray,
    *,
    lr: float = 0.01,
    momentum: float = 0.0,
    nesterov: bool = False,
    compile: bool = False,
    dtype: Any = np.float32,
) -> dict[str, Any]:
    """The seeds' training loop over the batches ``order`` names; the model is trained in place.

    Args:
      model: a ``torch.nn.Module`` producing logits.
      X, y: float32 inputs and int labels (host arrays; converted to tensors once).
      order: int array (steps, batch_size) of example indices, one row per step.
      lr, momentum, nesterov: ``torch.optim.SGD``'s arguments.
      compile: wrap the model in ``torch.compile`` (compiled before timing starts).
      dtype: the inputs' dtype (``np.float64`` with a ``model.double()``).

    Returns:
      ``{"losses": per-step losses (np.float32), "seconds": wall time of the loop,
      "compile_seconds": time of the warm-up compile when ``compile``}``.
    """
    torch = require_torch()
    Xt, yt = torch.as_tensor(np.asarray(X, dtype)), torch.as_tensor(np.asarray(y, np.int64))
    rows = torch.as_tensor(np.asarray(order, np.int64))
    criterion = torch.nn.CrossEntropyLoss()
    optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum, nesterov=nesterov)
    forward = model
    compile_seconds = 0.0
    if compile:
        forward = torch.compile(model)
        start = time.perf_counter()
        criterion(forward(Xt[rows[0]]), yt[rows[0]]).backward()  # compiles forward and backward
        optimizer.zero_grad()
        compile_seconds = time.perf_counter() - start
    losses = torch.empty(len(rows), dtype=torch.float64 if dtype == np.float64 else torch.float32)
    start = time.perf_counter()
    for t, idx in enumerate(rows):
        optimizer.zero_grad()
        outputs = forward(Xt[idx])
        loss = criterion(outputs, yt[idx])
        loss.backward()  # <-- backprop (AD)
        optimizer.step()  # <-- gradient descent update
        losses[t] = loss.detach()
    seconds = time.perf_counter() - start
    return {"losses": losses.numpy(), "seconds": seconds, "compile_seconds": compile_seconds}
