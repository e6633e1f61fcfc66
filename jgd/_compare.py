"""``compare_torch``: one run in jgd and in PyTorch, from the same weights on the same batches."""

from __future__ import annotations

import copy
import functools
import os
from typing import NamedTuple

import numpy as np
import optax

from jgd import _fit, data, models


class Comparison(NamedTuple):
    """What ``compare_torch`` measured, in one run."""

    data_name: str
    steps: int
    jgd_losses: np.ndarray
    torch_losses: np.ndarray
    max_abs_diff: float
    max_rel_diff: float
    jgd_accuracy: float
    torch_accuracy: float
    jgd_steps_per_second: float
    torch_steps_per_second: float
    jgd_compile_seconds: float


def compare_torch(
    data_dir: str | os.PathLike | None = None,
    *,
    steps: int = 500,
    batch_size: int = 64,
    lr: float = 0.01,
    momentum: float = 0.0,
    nesterov: bool = False,
    hidden: int = 128,
    seed: int = 0,
) -> Comparison:
    """Trains the seeds' Net in PyTorch and its flax port in jgd, step for step, and compares.

    Both start from the same weights (PyTorch's init, copied with ``from_torch``) and see the same
    batches (one explicit order, shuffled per epoch with NumPy ``default_rng(seed)``). Speed is
    measured warm on both sides: jgd's compile excluded, PyTorch warmed up on a copy of the model.
    ``torch.optim.SGD(momentum=μ, dampening=0)`` and ``optax.sgd(momentum=μ)`` are the same rule:
    optax's trace starts at zero, so its first step is ``g``, which is where PyTorch's buffer
    starts; the tests check this step for step.

    Args:
      data_dir: MNIST IDX files; None uses scikit-learn's 8x8 digits (input width 64).
      steps, batch_size, lr, momentum, nesterov, hidden, seed: the run.
    """
    from jgd import torch_baseline

    torch = torch_baseline.require_torch()
    splits = (
        data.real_digits(data_dir)
        if data_dir is not None
        else data.DigitSplits(data.digits("train"), data.digits("test"), "scikit-learn 8x8 digits")
    )
    train, test = splits.train, splits.test
    if batch_size > len(train.y):
        raise ValueError(
            f"batch_size={batch_size} is larger than the {len(train.y)} training examples."
        )
    order = epoch_order(len(train.y), batch_size, steps, seed)
    torch.manual_seed(seed)
    net = torch_baseline.Net(train.X.shape[1], hidden, 10)
    apply, params = models.functional(models.from_torch(net))
    opt = functools.partial(optax.sgd, momentum=momentum or None, nesterov=nesterov)
    ours = _fit.fit(
        models.classification_loss(apply),
        params,
        tuple(train),
        optimizer=opt,
        learning_rate=lr,
        order=order,
    )
    # warm PyTorch up on a copy (allocator, thread pool), as jgd's compile is excluded too
    torch_baseline.train(copy.deepcopy(net), train.X, train.y, order[:20], lr=lr)
    theirs = torch_baseline.train(
        net, train.X, train.y, order, lr=lr, momentum=momentum, nesterov=nesterov
    )
    torch_params = models.functional(models.from_torch(net))[1]
    diff = np.abs(ours.losses - theirs["losses"])
    return Comparison(
        data_name=splits.name,
        steps=steps,
        jgd_losses=ours.losses,
        torch_losses=theirs["losses"],
        max_abs_diff=float(diff.max()),
        max_rel_diff=float((diff / np.abs(theirs["losses"])).max()),
        jgd_accuracy=models.accuracy(apply, ours.params, test.X, test.y),
        torch_accuracy=models.accuracy(apply, torch_params, test.X, test.y),
        jgd_steps_per_second=steps / ours.run_time,
        torch_steps_per_second=steps / theirs["seconds"],
        jgd_compile_seconds=ours.compile_time,
    )


def epoch_order(n: int, batch_size: int, steps: int, seed: int) -> np.ndarray:
    """``steps`` rows of a ``default_rng(seed)`` permutation per epoch, short batch dropped."""
    rng = np.random.default_rng(seed)
    per_epoch = n // batch_size
    epochs = -(-steps // per_epoch)
    rows = [
        rng.permutation(n)[: per_epoch * batch_size].reshape(per_epoch, batch_size)
        for _ in range(epochs)
    ]
    return np.concatenate(rows)[:steps]


def format_comparison(c: Comparison, sample: int = 10) -> str:
    """The comparison as text: sampled steps side by side, differences, accuracy and speed."""
    picks = np.unique(np.linspace(0, c.steps - 1, min(sample, c.steps)).astype(int))
    lines = [
        f"data: {c.data_name}; {c.steps} steps",
        f"{'step':>6} {'jgd loss':>12} {'torch loss':>12} {'|diff|':>10}",
    ]
    for t in picks:
        lines.append(
            f"{t:>6} {c.jgd_losses[t]:>12.6f} {c.torch_losses[t]:>12.6f} "
            f"{abs(c.jgd_losses[t] - c.torch_losses[t]):>10.2e}"
        )
    lines += [
        f"max |diff| {c.max_abs_diff:.2e}, max relative diff {c.max_rel_diff:.2e} over all steps",
        f"test accuracy: jgd {c.jgd_accuracy:.4f}, PyTorch {c.torch_accuracy:.4f}",
        f"steps/s: jgd {c.jgd_steps_per_second:,.0f} (compile {c.jgd_compile_seconds:.2f}s, "
        f"not included), PyTorch {c.torch_steps_per_second:,.0f}: "
        f"{c.jgd_steps_per_second / c.torch_steps_per_second:.1f}x",
    ]
    return "\n".join(lines)


__all__ = ["Comparison", "compare_torch", "format_comparison"]
