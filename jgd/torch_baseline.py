"""The PyTorch side of a comparison: the same model, batches and updates as jgd.

``train`` is the textbook PyTorch loop (zero_grad, forward, CrossEntropyLoss, backward, step),
driven by an explicit index order so that ``jgd.fit(order=...)`` sees the same batches.
torch is imported lazily; without it, a clear message says how to add it.
"""

from __future__ import annotations

import os
import time
from typing import Any

import numpy as np

from jgd import _timing
from jgd._torch_net import ACTIVATIONS, Net, require_torch
from jgd._torch_optax import to_optax


def set_threads() -> int:
    """Gives PyTorch as many intra-op threads as XLA's CPU client has cores, and returns that count.

    The count is this process's CPU affinity, the cores XLA uses, so the two sides of a timed
    comparison use the same cores (left to its default, PyTorch's count varies with the
    machine's load and other processes). It calls ``torch.set_num_threads``, for the whole process.

    Returns:
      The number of threads set.

    Raises:
      ImportError: torch is not installed.

    Examples:
      >>> import torch
      >>> from jgd import torch_baseline
      >>> before = torch.get_num_threads()
      >>> torch_baseline.set_threads() == torch.get_num_threads()
      True
      >>> torch.set_num_threads(before)  # as it was
    """
    torch = require_torch()
    getter = getattr(os, "sched_getaffinity", None)
    cores = len(getter(0)) if getter else (os.cpu_count() or 1)
    torch.set_num_threads(cores)
    return cores


def train(
    model: Any,
    X: np.ndarray,
    y: np.ndarray,
    order: np.ndarray,
    *,
    lr: float = 0.01,
    momentum: float = 0.0,
    nesterov: bool = False,
    optimizer: Any = None,
    scheduler: Any = None,
    compile: bool = False,
    dtype: Any = np.float32,
    loss: str = "cross_entropy",
) -> dict[str, Any]:
    """The plain PyTorch training loop over the batches ``order`` names; trains ``model`` in place.

    Each step: ``zero_grad``, forward, the loss, ``backward``, ``optimizer.step()`` (then
    ``scheduler.step()``). With the same ``order``, ``jgd.fit(order=order)`` takes the same
    batches, so the two runs can be compared step by step.

    Args:
      model: a ``torch.nn.Module`` producing logits.
      X: float32 inputs (a host array; converted to a tensor once).
      y: int labels (a host array; converted to a tensor once).
      order: int array (steps, batch_size) of example indices, one row per step.
      lr: ``torch.optim.SGD``'s learning rate, when ``optimizer`` is None.
      momentum: ``torch.optim.SGD``'s momentum, when ``optimizer`` is None.
      nesterov: ``torch.optim.SGD``'s Nesterov flag, when ``optimizer`` is None.
      optimizer: any ``torch.optim`` optimizer over ``model``'s parameters (then ``lr``,
        ``momentum`` and ``nesterov`` are not used).
      scheduler: a ``torch.optim.lr_scheduler`` of ``optimizer``, stepped once after every step.
      compile: wrap the model in ``torch.compile`` (compiled before timing starts).
      dtype: the inputs' dtype (``np.float64`` with a ``model.double()``).
      loss: ``"cross_entropy"`` (``nn.CrossEntropyLoss``), ``"nll"`` (``nn.NLLLoss`` on
        log-probabilities) or ``"mse"`` (``nn.MSELoss``, float targets).

    Returns:
      ``{"losses": per-step losses (np.float32), "seconds": wall time of the loop,
      "compile_seconds": time of the warm-up compile when ``compile``}``.

    Raises:
      ImportError: torch is not installed.

    Examples:
      >>> import numpy as np
      >>> import jgd
      >>> from jgd import torch_baseline
      >>> net = torch_baseline.Net(4, 8, 3)
      >>> X, y = np.random.default_rng(0).normal(size=(12, 4)).astype(np.float32), np.arange(12) % 3
      >>> order = jgd.data.epoch_order(12, 4, epochs=5)  # 15 steps of 4 examples
      >>> run = torch_baseline.train(net, X, y, order, lr=0.1)
      >>> run["losses"].shape, run["seconds"] > 0
      ((15,), True)
    """
    torch = require_torch()
    target = dtype if loss == "mse" else np.int64
    Xt, yt = torch.as_tensor(np.asarray(X, dtype)), torch.as_tensor(np.asarray(y, target))
    rows = torch.as_tensor(np.asarray(order, np.int64))
    criterion = {
        "cross_entropy": torch.nn.CrossEntropyLoss,
        "nll": torch.nn.NLLLoss,
        "mse": torch.nn.MSELoss,
    }[loss]()
    if optimizer is None:
        optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum, nesterov=nesterov)
    with _timing.alone():  # measured: alone on the cores while `jgd tour` computes beside
        forward = model
        compile_seconds = 0.0
        if compile:
            forward = torch.compile(model)
            start = time.perf_counter()
            criterion(forward(Xt[rows[0]]), yt[rows[0]]).backward()  # compiles forward and backward
            optimizer.zero_grad()
            compile_seconds = time.perf_counter() - start
        kind = torch.float64 if dtype == np.float64 else torch.float32
        losses = torch.empty(len(rows), dtype=kind)
        start = time.perf_counter()
        for t, idx in enumerate(rows):
            optimizer.zero_grad()
            outputs = forward(Xt[idx])
            loss = criterion(outputs, yt[idx])
            loss.backward()  # <-- backprop (AD)
            optimizer.step()  # <-- gradient descent update
            if scheduler is not None:
                scheduler.step()
            losses[t] = loss.detach()
        seconds = time.perf_counter() - start
    return {"losses": losses.numpy(), "seconds": seconds, "compile_seconds": compile_seconds}


__all__ = ["ACTIVATIONS", "Net", "require_torch", "set_threads", "to_optax", "train"]
