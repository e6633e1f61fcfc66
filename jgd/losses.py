"""Losses: per-example ones (thin over ``optax.losses``, combine with ``jgd.per_example``), and
PyTorch's batch losses by their torch names (``cross_entropy``, ``nll_loss``, ``mse_loss``), equal
to torch's, so a replayed torch run needs no hand-written loss."""

from jgd._losses import (
    cross_entropy,
    mse_loss,
    nll_loss,
    sigmoid_cross_entropy,
    softmax_cross_entropy,
    squared_error,
)

__all__ = [
    "cross_entropy",
    "mse_loss",
    "nll_loss",
    "sigmoid_cross_entropy",
    "softmax_cross_entropy",
    "squared_error",
]
