"""PyTorch's ``torch.func`` beside jgd's modes in ``jgd bench ad``: the same functions, the same
numbers in, timed the same way (warm, median, each call finished before the clock stops: PyTorch on
the CPU is synchronous).

- the gradient of the seeds' MLP loss: ``torch.func.grad`` (reverse mode) and a forward gradient
  from ``torch.func.jvp`` along a Rademacher tangent (Baydin et al. 2022's recipe);
- the Jacobian of f(x) = tanh(W₂ tanh(W₁ x)): ``torch.func.jacfwd`` and ``torch.func.jacrev``.

PyTorch runs eager (``torch.func`` transforms are not compiled here: ``torch.compile`` of them is
still experimental and takes minutes per shape on this CPU).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from jgd import timing
from jgd.torch_baseline import require_torch

PEERS = ("torch.func.grad", "torch.func.jvp forward gradient")  # mlp_gradients' rows, in order


def _tensors(tree: dict[str, Any]) -> dict[str, Any]:
    torch = require_torch()
    return {k: torch.from_numpy(np.array(v)) for k, v in tree.items()}


def mlp_gradients(params: Any, batch: Any, *, repeats: int) -> dict[str, timing.Timing]:
    """``torch.func.grad`` and a jvp forward gradient of the MLP loss at jgd's params and batch."""
    torch = require_torch()
    from torch import func

    p = _tensors(
        {
            "k1": params["fc1"]["kernel"][...],
            "b1": params["fc1"]["bias"][...],
            "k2": params["fc2"]["kernel"][...],
            "b2": params["fc2"]["bias"][...],
        }
    )
    X, y = (torch.from_numpy(np.array(a)) for a in batch)
    y = y.long()

    def loss(p):
        h = torch.relu(X @ p["k1"] + p["b1"])
        return torch.nn.functional.cross_entropy(h @ p["k2"] + p["b2"], y)

    grad = func.grad(loss)

    def forward_gradient():
        v = {k: torch.randint(0, 2, t.shape, dtype=t.dtype) * 2 - 1 for k, t in p.items()}
        _, slope = func.jvp(loss, (p,), (v,))
        return {k: slope * t for k, t in v.items()}

    with torch.no_grad():
        return {
            PEERS[0]: timing.timeit(lambda: grad(p), repeats=repeats),
            PEERS[1]: timing.timeit(forward_gradient, repeats=repeats),
        }


def jacobians(W1: Any, W2: Any, x: Any, *, repeats: int) -> dict[str, float]:
    """Median seconds of ``torch.func.jacfwd`` and ``jacrev`` of tanh(W₂ tanh(W₁ x))."""
    torch = require_torch()
    from torch import func

    W1, W2, x = (torch.from_numpy(np.array(a)) for a in (W1, W2, x))

    def f(x):
        return torch.tanh(W2 @ torch.tanh(W1 @ x))

    fwd, rev = func.jacfwd(f), func.jacrev(f)
    with torch.no_grad():
        return {
            "torch jacfwd": timing.timeit(lambda: fwd(x), repeats=repeats).median,
            "torch jacrev": timing.timeit(lambda: rev(x), repeats=repeats).median,
        }
