"""Models: the lesson's PyTorch ``Net`` in flax NNX, and weights to and from PyTorch."""

from jgd.models._mlp import (
    MLP,
    accuracy,
    classification_loss,
    functional,
    num_params,
    torch_uniform,
)
from jgd.models._torch import from_torch, state_dict, to_torch
from jgd.models._torch_graph import TorchModule

__all__ = [
    "MLP",
    "TorchModule",
    "accuracy",
    "classification_loss",
    "from_torch",
    "functional",
    "num_params",
    "state_dict",
    "to_torch",
    "torch_uniform",
]
