"""Weights across the border: a torch module's ``nn.Linear`` layers into an MLP, and back."""

from __future__ import annotations

from typing import Any

import jax.numpy as jnp
import numpy as np
from flax import nnx

from jgd.models._mlp import MLP


def _activation_of(layer: Any, nn: Any) -> str | None:
    """The MLP activation name of a torch activation module, or None for another module."""
    if isinstance(layer, nn.GELU):
        return "gelu_tanh" if layer.approximate == "tanh" else "gelu"
    for kind, name in ((nn.ReLU, "relu"), (nn.Tanh, "tanh"), (nn.Sigmoid, "sigmoid")):
        if isinstance(layer, kind):
            return name
    return None


def _read(module: Any, activation: str | None) -> tuple[list[Any], str]:
    """The module's Linear layers in order, and the activation between them.

    An ``nn.Sequential`` is read as it runs: Linear, then (activation, Linear) repeated. Another
    module's ``forward`` cannot be read: its activation modules (e.g. the seeds' ``self.relu``)
    say which one, or ``activation=`` does. Any other layer is refused by name: copied into an
    MLP it would silently compute something else.
    """
    from jgd.torch_baseline import require_torch

    torch = require_torch()
    nn = torch.nn
    if not isinstance(module, nn.Module):
        raise TypeError(f"module={type(module).__name__} is not a torch.nn.Module.")
    leaves = [
        (name, m)
        for name, m in module.named_modules()
        if not list(m.children()) and not isinstance(m, nn.Identity)
    ]
    for name, layer in leaves:
        if not isinstance(layer, nn.Linear) and _activation_of(layer, nn) is None:
            raise ValueError(
                f"layer {name!r} is a {type(layer).__name__}, which an MLP does not have; "
                "from_torch copies nn.Linear layers with one activation among ReLU, Tanh, "
                "Sigmoid and GELU between them."
            )
    linears = [m for _, m in leaves if isinstance(m, nn.Linear)]
    if not linears:
        raise ValueError(f"{type(module).__name__} has no nn.Linear layers to copy.")
    for i in range(1, len(linears)):
        if linears[i].in_features != linears[i - 1].out_features:
            raise ValueError(
                f"torch layer {i + 1} takes {linears[i].in_features} inputs but layer {i} gives "
                f"{linears[i - 1].out_features}; the layers do not chain into an MLP."
            )
    found = {_activation_of(m, nn) for _, m in leaves} - {None}
    if len(found) > 1:
        raise ValueError(
            f"{type(module).__name__} mixes activations {sorted(found)}; an MLP has one."
        )
    if isinstance(module, nn.Sequential):
        _check_alternates(leaves, nn)
    if activation is not None:
        if found and found != {activation}:
            raise ValueError(
                f"activation={activation!r} was given, but the module's layers are {found.pop()}."
            )
        return linears, activation
    if found:
        return linears, found.pop()
    if len(linears) > 1:
        raise ValueError(
            f"{type(module).__name__} has {len(linears)} Linear layers and no activation module "
            "to say what runs between them (a function in forward cannot be read); pass "
            "activation='relu' (or 'tanh', 'sigmoid', 'gelu'), or an nn.Sequential."
        )
    return linears, "relu"  # one layer: a linear model, no activation runs


def _check_alternates(leaves: list, nn: Any) -> None:
    kinds = ["linear" if isinstance(m, nn.Linear) else "act" for _, m in leaves]
    want = ["linear"] + ["act", "linear"] * ((len(kinds) - 1) // 2)
    if kinds != want:
        names = ", ".join(f"{n} ({type(m).__name__})" for n, m in leaves)
        raise ValueError(
            f"the nn.Sequential runs {names}; an MLP is Linear, then activation and Linear "
            "repeated (no activation after the last layer, none missing between two)."
        )


def from_torch(module: Any, into: MLP | None = None, *, activation: str | None = None) -> MLP:
    """A new MLP holding a copy of a torch module's ``nn.Linear`` weights, in order.

    The module is read as an MLP: Linear layers in the order they run, with one activation
    (ReLU, Tanh, Sigmoid or GELU) between consecutive ones; an ``nn.Sequential`` is checked
    layer by layer, another module (the seeds' ``Net``) by its activation modules, or by
    ``activation=``. ``weight`` (out, in) becomes ``kernel`` (in, out).

    Args:
      module: a ``torch.nn.Module``: the seeds' ``Net``, or an ``nn.Sequential`` of Linear and
        activation layers.
      into: an MLP whose architecture the weights must fit; a new one is built when None.
      activation: the activation between the layers, when the module's ``forward`` applies a
        function rather than a module.

    Returns:
      A new ``jgd.models.MLP`` (``into`` is not modified) with the module's dtype (float64 for
      a ``module.double()`` under ``jax.enable_x64``) and activation.

    Raises:
      ValueError: a layer an MLP does not have (named), mixed or unknown activations, layers
        that do not chain, or a shape or activation that does not fit ``into``.
    """
    linears, activation = _read(module, activation)
    sizes = [linears[0].in_features] + [layer.out_features for layer in linears]
    if into is not None:
        _check_fits(into, linears, sizes, activation)
    model = MLP(sizes[0], sizes[1:-1], sizes[-1], activation=activation, rngs=nnx.Rngs(0))
    for layer, target in zip(linears, model.layers, strict=True):
        # set_value replaces the array whole, so the MLP takes the torch module's dtype
        weight = jnp.asarray(layer.weight.detach().cpu().numpy().T)
        target.kernel.set_value(weight)
        if layer.bias is None:
            target.bias.set_value(jnp.zeros(weight.shape[1], weight.dtype))
        else:
            target.bias.set_value(jnp.asarray(layer.bias.detach().cpu().numpy()))
    return model


def _check_fits(into: MLP, linears: list, sizes: list[int], activation: str) -> None:
    if len(into.sizes) != len(sizes):
        raise ValueError(
            f"the torch module has {len(linears)} Linear layers, the MLP "
            f"{len(into.sizes) - 1}: MLP sizes {list(into.sizes)}, torch sizes {sizes}."
        )
    if len(linears) > 1 and into.activation != activation:
        raise ValueError(
            f"the torch module's activation is {activation!r}, the MLP's {into.activation!r}."
        )
    for i, (layer, target) in enumerate(zip(linears, into.layers, strict=True)):
        want = tuple(target.kernel[...].shape[::-1])
        got = tuple(layer.weight.shape)
        if want != got:
            raise ValueError(
                f"layer fc{i + 1}: torch weight has shape {got}, the MLP expects {want} (out, in)."
            )


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
    net = Net(model.sizes[0], model.sizes[1:-1], model.sizes[-1], model.activation)
    net.load_state_dict({k: torch.from_numpy(v) for k, v in state_dict(model).items()})
    return net
