"""Torch tensors given as data, read as NumPy arrays.

``fit``, ``sweep``, ``with_data`` and the analysis tools take a torch user's ``(X, y)`` tensors as
they are: each is read as the NumPy array it holds (detached, on the CPU) at the boundary, so the
checks, the placing and the program see arrays; streaming reads a tensor by rows instead
(``_stream.TorchRows``). Written by hand because no library converts a pytree of tensors to NumPy
with bfloat16 kept: ``Tensor.numpy()`` refuses bfloat16, which NumPy lacks and ``ml_dtypes``
supplies (as JAX's own bfloat16 is). torch is optional: a tensor is told by its type's module,
and torch is imported only when one was given.
"""

from __future__ import annotations

from typing import Any

import jax
import numpy as np


def is_torch(x: Any) -> bool:
    """Whether ``x`` is a torch tensor (without importing torch)."""
    return type(x).__module__.startswith("torch") and hasattr(x, "detach")


def to_numpy(tensor: Any) -> np.ndarray:
    """The values of a torch tensor as a NumPy array: detached, copied off a GPU, and for a CPU
    tensor without a copy (the array shares the tensor's memory, as ``Tensor.numpy()`` does)."""
    import torch  # only when a tensor was given: torch is optional

    t = tensor.detach().cpu()
    if t.dtype == torch.bfloat16:
        import ml_dtypes

        return t.view(torch.int16).numpy().view(ml_dtypes.bfloat16)
    return t.numpy()


def as_numpy(tree: Any) -> Any:
    """``tree`` with every torch tensor in it read as a NumPy array (``to_numpy``); any other
    leaf as it is."""
    return jax.tree_util.tree_map(lambda x: to_numpy(x) if is_torch(x) else x, tree)
