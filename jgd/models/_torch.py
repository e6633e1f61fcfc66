"""Weights across the border: a torch module's ``nn.Linear`` layers into an MLP, and back."""

from __future__ import annotations

from typing import Any

import jax.numpy as jnp
import numpy as np
from flax import nnx

from jgd.models._mlp import MLP


def _linears(module: Any) -> list[Any]:
    from jgd.torch_baseline import require_torch

    torch = require_torch()
    if not isinstance(module, torch.nn.Module):
        raise TypeError(f"module={type(module).__name__} is not a torch.nn.Module.")
    linears = [m for m in module.modules() if isinstance(m, torch.nn.Linear)]
    if not linears:
        raise ValueError(f"{type(module).__name__} has no nn.Linear layers to copy.")
    return linears


def from_torch(module: Any, into: MLP | None = None) -> MLP:
    """A new MLP holding a copy of a torch module's ``nn.Linear`` weights, in order.

    The module is read as the seeds' ``Net``: Linear layers in the order ``module.modules()``
    yields them, with a ReLU between consecutive ones. ``weight`` (out, in) becomes ``kernel``
    (in, out).

    Args:
      module: a ``torch.nn.Module`` (the seeds' ``Net``, an ``nn.Sequential`` of Linear/ReLU).
      into: an MLP whose architecture the weights must fit; a new one is built when None.

    Returns:
      A new ``jgd.models.MLP`` (``into`` is not modified) with the module's dtype (float64 for
      a ``module.double()`` under ``jax.enable_x64``).

    Raises:
      ValueError: consecutive layers do not chain, or a layer's shape does not fit ``into``;
        the message names the layer and both shapes.
    """
    linears = _linears(module)
    for i in range(1, len(linears)):
        if linears[i].in_features != linears[i - 1].out_features:
            raise ValueError(
                f"torch layer {i + 1} takes {linears[i].in_features} inputs but layer {i} gives "
                f"{linears[i - 1].out_features}; the layers do not chain into an MLP."
            )
    sizes = [linears[0].in_features] + [layer.out_features for layer in linears]
    if into is not None:
        if len(into.sizes) != len(sizes):
            raise ValueError(
                f"the torch module has {len(linears)} Linear layers, the MLP "
                f"{len(into.sizes) - 1}: MLP sizes {list(into.sizes)}, torch sizes {sizes}."
            )
        for i, (layer, target) in enumerate(zip(linears, into.layers, strict=True)):
            want = tuple(target.kernel[...].shape[::-1])
            got = tuple(layer.weight.shape)
            if want != got:
                raise ValueError(
                    f"layer fc{i + 1}: torch weight has shape {got}, the MLP expects {want} "
                    f"(out, in)."
                )
    model = MLP(sizes[0], sizes[1:-1], sizes[-1], rngs=nnx.Rngs(0))
    for layer, target in zip(linears, model.layers, strict=True):
        # set_value replaces the array whole, so the MLP takes the torch module's dtype
        weight = jnp.asarray(layer.weight.detach().cpu().numpy().T)
        target.kernel.set_value(weight)
        if layer.bias is None:
            target.bias.set_value(jnp.zeros(weight.shape[1], weight.dtype))
        else:
            target.bias.set_value(jnp.asarray(layer.bias.detach().cpu().numpy()))
    return model


def state_dict(model: MLP) -> dict[str, np.ndarray]:
    """The MLP's weights as a PyTorch state dict of the seeds' ``Net`` (``fc1.weight``, ...)."""
    out = {}
    for i, layer in enumerate(model.layers):
        out[f"fc{i + 1}.weight"] = np.asarray(layer.kernel[...]).T.copy()
        out[f"fc{i + 1}.bias"] = np.asarray(layer.bias[...]).copy()
    return out


def to_torch(model: MLP) -> Any:
    """A ``jgd.torch_baseline.Net`` of the same architecture holding a copy of the MLP's weights."""
    from jgd.torch_baseline import Net, require_torch

    torch = require_torch()
    net = Net(model.sizes[0], model.sizes[1:-1], model.sizes[-1])
    net.load_state_dict({k: torch.from_numpy(v) for k, v in state_dict(model).items()})
    return net
