"""The lesson's PyTorch model (``Net``) and the lazy import of torch, below everything that uses
them (``jgd.models`` copies a ``Net``; ``jgd.torch_baseline`` trains one)."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any


def require_torch() -> Any:
    """The ``torch`` module, imported on first use, or an ImportError saying how to install it.

    jgd needs PyTorch only for its PyTorch side (``jgd.torch_baseline``, ``jgd.models.from_torch``
    and ``to_torch``), so torch is an optional dependency (the ``torch`` extra).

    Returns:
      The ``torch`` module.

    Raises:
      ImportError: torch is not installed (the message gives the ``pip install`` line).

    Examples:
      >>> from jgd import torch_baseline
      >>> torch = torch_baseline.require_torch()
      >>> torch.__name__
      'torch'
    """
    try:
        import torch
    except ImportError:
        raise ImportError(
            "this needs PyTorch, which is not installed; add it with "
            "`pip install 'jgd[torch]'` (or `pip install torch`)."
        ) from None
    return torch


ACTIVATIONS = ("relu", "tanh", "sigmoid", "gelu", "gelu_tanh")
"""The activations ``Net`` takes, the same names as ``jgd.models.MLP``'s.

``"gelu"`` is ``nn.GELU()`` (exact), ``"gelu_tanh"`` ``nn.GELU(approximate="tanh")``.

Examples:
  >>> from jgd import torch_baseline
  >>> torch_baseline.ACTIVATIONS
  ('relu', 'tanh', 'sigmoid', 'gelu', 'gelu_tanh')
"""


@functools.cache
def _net_class() -> type:
    torch = require_torch()
    nn = torch.nn

    class Net(nn.Module):
        """An MLP: Linear layers ``fc1``, ``fc2``, ... with an activation between."""

        def __init__(self, sizes: Sequence[int], activation: str):
            super().__init__()
            self.depth = len(sizes) - 1
            for i in range(self.depth):
                setattr(self, f"fc{i + 1}", nn.Linear(sizes[i], sizes[i + 1]))
            self.relu = {  # the attribute's name in the lesson's Net, whatever the activation
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
    """The lesson's MNIST classifier in PyTorch: 784 -> 128 -> ReLU -> 10 by default.

    A ``torch.nn.Module`` of Linear layers ``fc1``, ``fc2``, ... (PyTorch's default init) with
    the activation between them, the PyTorch twin of ``jgd.models.MLP``: its state dict is what
    ``jgd.models.state_dict`` writes, and ``jgd.models.from_torch`` copies it into an MLP.

    Args:
      in_features: the input width.
      hidden: the hidden width, or a sequence of widths (``()`` gives one Linear layer).
      out_features: the number of outputs (classes).
      activation: one of ``ACTIVATIONS``.

    Returns:
      A new ``torch.nn.Module``, float32, in train mode.

    Raises:
      ValueError: ``activation`` is not one of ``ACTIVATIONS``.
      ImportError: torch is not installed.

    Examples:
      >>> import torch
      >>> from jgd import torch_baseline
      >>> net = torch_baseline.Net(64, 32, 10)
      >>> net(torch.zeros(5, 64)).shape
      torch.Size([5, 10])
      >>> [name for name, _ in net.named_parameters()]
      ['fc1.weight', 'fc1.bias', 'fc2.weight', 'fc2.bias']
    """
    if activation not in ACTIVATIONS:
        raise ValueError(f"activation={activation!r} is not valid; expected one of {ACTIVATIONS}.")
    widths = [hidden] if isinstance(hidden, int) else list(hidden)
    return _net_class()([in_features, *widths, out_features], activation)


__all__ = ["ACTIVATIONS", "Net", "require_torch"]
