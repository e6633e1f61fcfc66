"""Across the border: a torch module into flax NNX (read from its traced graph), and back."""

from __future__ import annotations

from typing import Any

import jax.numpy as jnp
import numpy as np
from flax import nnx

from jgd.models._mlp import MLP


def _activation_of(node: Any, module: Any, torch: Any) -> str | None:
    """The MLP activation a graph node applies, or None for another node."""
    nn, F = torch.nn, torch.nn.functional
    if node.op == "call_module":
        layer = module.get_submodule(node.target)
        if isinstance(layer, nn.GELU):
            return "gelu_tanh" if layer.approximate == "tanh" else "gelu"
        for kind, name in ((nn.ReLU, "relu"), (nn.Tanh, "tanh"), (nn.Sigmoid, "sigmoid")):
            if isinstance(layer, kind):
                return name
        return None
    if node.op == "call_function":
        if node.target is F.gelu:
            tanh = node.kwargs.get("approximate", "none") == "tanh"
            return "gelu_tanh" if tanh else "gelu"
        names = {F.relu: "relu", torch.relu: "relu", torch.tanh: "tanh", F.tanh: "tanh",
                 torch.sigmoid: "sigmoid", F.sigmoid: "sigmoid"}  # fmt: skip
        return names.get(node.target)
    if node.op == "call_method" and node.target in ("relu", "tanh", "sigmoid"):
        return node.target
    return None


def _mlp_chain(graph: Any, module: Any, torch: Any) -> tuple[list, list[str]] | None:
    """``(linears, activations)`` when the traced graph is an MLP, in the order it runs: one
    input, then Linear, (activation, Linear) repeated, each node reading the one before; else
    None. Read from the graph, so a head declared before its body is read as it runs."""
    nodes = list(graph.nodes)
    if len(nodes) < 3 or nodes[0].op != "placeholder" or nodes[-1].op != "output":
        return None
    body, previous = nodes[1:-1], nodes[0]
    if nodes[-1].args != (body[-1],):
        return None
    linears, activations = [], []
    for i, node in enumerate(body):
        if tuple(node.args) != (previous,) or (node.kwargs and node.op != "call_function"):
            return None
        if i % 2 == 0:
            layer = module.get_submodule(node.target) if node.op == "call_module" else None
            if not isinstance(layer, torch.nn.Linear):
                return None
            linears.append(layer)
        else:
            name = _activation_of(node, module, torch)
            if name is None:
                return None
            activations.append(name)
        previous = node
    return (linears, activations) if len(body) % 2 == 1 else None


def from_torch(
    module: Any,
    into: MLP | None = None,
    *,
    activation: str | None = None,
    rngs: nnx.Rngs | None = None,
) -> Any:
    """A copy of a torch module in flax NNX, computing what it computes, read from its graph.

    The module is traced with ``torch.fx`` (in train and in eval mode) and copied node by node:
    ``nn.Linear``, ``Conv1d/2d``, ``BatchNorm1d/2d`` (torch's running statistics: unbiased
    variance, torch's ``momentum``), ``LayerNorm``, ``Dropout``, ``Embedding``,
    ``Max/AvgPool1d/2d``, ``AdaptiveAvgPool1d/2d``, ``Flatten``, the common activations, nested
    ``nn.Sequential`` and custom modules, and in ``forward`` their functional forms
    (``F.relu``, ``F.max_pool2d``, ``F.dropout(training=self.training)``, ``F.log_softmax``,
    ``torch.flatten``, ``x.view``, ``+``, ``torch.cat``, ...). The copy takes the module's own
    inputs (NCHW for convolutions) in its dtype, and follows ``model.train()`` /
    ``model.eval()``. A graph that is an MLP (Linear, then an activation and Linear repeated,
    in the order ``forward`` runs them) becomes a ``jgd.models.MLP``; any other a
    ``TorchModule``. What cannot be copied exactly is refused, naming the node or layer.

    Args:
      module: a ``torch.nn.Module``.
      into: an MLP whose architecture the weights must fit (MLP-shaped modules only).
      activation: for an MLP of one Linear layer, the activation recorded on the copy; when
        given for a deeper one, it must match the module's.
      rngs: the copy's random streams (``dropout``); default ``nnx.Rngs(0)``.

    Returns:
      A ``jgd.models.MLP`` or a ``jgd.models.TorchModule`` (``into`` is not modified). Its
      ``nnx.Param``s are the module's parameters with ``requires_grad=True``; frozen ones are
      carried untrained; a parameter used by two layers stays one.

    Raises:
      ValueError: a layer, function or method it does not copy (named with the graph node),
        ``forward`` that fx cannot trace (data-dependent control flow), hooks, a module on the
        meta device, float64 weights without ``jax_enable_x64``, an in-place op whose input is
        read afterwards, or a shape or activation that does not fit ``into``.
      TypeError: ``module`` is not a ``torch.nn.Module``.

    Examples:
      >>> import torch, jgd
      >>> net = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3), torch.nn.ReLU(),
      ...                           torch.nn.Flatten(), torch.nn.Linear(4 * 26 * 26, 10))
      >>> model = jgd.models.from_torch(net)
      >>> x = torch.randn(2, 1, 28, 28)
      >>> import numpy as np
      >>> bool(np.allclose(model(x.numpy()), net(x).detach().numpy(), atol=1e-5))
      True
    """
    from jgd._torch_net import require_torch
    from jgd.models import _torch_read

    torch = require_torch()
    if not isinstance(module, torch.nn.Module):
        raise TypeError(f"module={type(module).__name__} is not a torch.nn.Module.")
    copied, graph, root = _torch_read.convert(module, torch, rngs or nnx.Rngs(0))
    chain = _mlp_chain(graph, root, torch)
    if chain is None:
        if into is not None:
            raise ValueError(
                f"into= takes an MLP, but {type(module).__name__} is not MLP-shaped (Linear, "
                "then an activation and Linear repeated); leave into=None for its copy."
            )
        if activation is not None:
            raise ValueError(
                "activation= is for an MLP; this module's activations are read from its graph."
            )
        return copied
    linears, activations = chain
    found = set(activations)
    if len(found) > 1 and into is None and activation is None:
        return copied  # mixed activations: an MLP has one, the graph's copy has them all
    if len(found) > 1:
        raise ValueError(
            f"{type(module).__name__} mixes activations {sorted(found)}; jgd.models.MLP has "
            "one. Leave into= and activation= unset for a copy of the graph."
        )
    if activation is not None and found and found != {activation}:
        raise ValueError(
            f"activation={activation!r} was given, but the module's layers are {found.pop()}."
        )
    activation = found.pop() if found else (activation or "relu")
    return _copy_mlp(linears, activation, into)


def param_paths(module: Any) -> dict[int, list[tuple[str, str]]]:
    """``id(torch parameter) -> [(layer, field), ...]``: where each parameter of ``module`` sits
    in the params of its copy ``from_torch(module)`` (an MLP's ``fc1/kernel``, a
    ``TorchModule``'s ``conv1/weight``); ``to_optax(module=...)`` labels param groups by it."""
    from jgd._torch_net import require_torch
    from jgd.models import _torch_graph

    torch = require_torch()
    copy = from_torch(module)
    root = torch.nn.Sequential(module) if torch.fx.Tracer().is_leaf_module(module, "") else module
    out: dict[int, list[tuple[str, str]]] = {}
    if isinstance(copy, MLP):
        linears, _ = _mlp_chain(torch.fx.symbolic_trace(root).graph, root, torch)
        for i, layer in enumerate(linears):
            out.setdefault(id(layer.weight), []).append((f"fc{i + 1}", "kernel"))
            if layer.bias is not None:
                out.setdefault(id(layer.bias), []).append((f"fc{i + 1}", "bias"))
        return out
    assert isinstance(copy, _torch_graph.TorchModule)
    named = dict(module.named_parameters(remove_duplicate=False))
    for key, attr, field in copy.names:
        if key in named:
            out.setdefault(id(named[key]), []).append((attr, field) if field else (attr,))
    return out


def _copy_mlp(linears: list, activation: str, into: MLP | None) -> MLP:
    for i in range(1, len(linears)):
        if linears[i].in_features != linears[i - 1].out_features:
            raise ValueError(
                f"torch layer {i + 1} takes {linears[i].in_features} inputs but layer {i} gives "
                f"{linears[i - 1].out_features}; the layers do not chain into an MLP."
            )
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


def state_dict(model: Any) -> dict[str, np.ndarray]:
    """The copy's weights (and running statistics) as a PyTorch state dict of NumPy arrays.

    Args:
      model: a ``jgd.models.TorchModule`` (its torch module's keys) or a ``jgd.models.MLP``
        (the keys of ``jgd.torch_baseline.Net``: ``fc1.weight`` of shape (out, in), ``fc1.bias``,
        ...).

    Returns:
      ``{key: np.ndarray}``, copies, in torch's layout (ready for ``torch.from_numpy``).

    Examples:
      >>> from flax import nnx
      >>> import jgd
      >>> weights = jgd.models.state_dict(jgd.models.MLP(4, 3, 2, rngs=nnx.Rngs(0)))
      >>> {key: value.shape for key, value in weights.items()}
      {'fc1.weight': (3, 4), 'fc1.bias': (3,), 'fc2.weight': (2, 3), 'fc2.bias': (2,)}
    """
    from jgd.models import _torch_graph

    if isinstance(model, _torch_graph.TorchModule):
        return _torch_graph.state_dict(model)
    out = {}
    for i, layer in enumerate(model.layers):
        out[f"fc{i + 1}.weight"] = np.asarray(layer.kernel[...]).T.copy()
        out[f"fc{i + 1}.bias"] = np.asarray(layer.bias[...]).copy()
    return out


def to_torch(model: Any, into: Any = None) -> Any:
    """The copy's weights written back into a torch module, returned.

    Args:
      model: a ``jgd.models.MLP`` or ``TorchModule``.
      into: the torch module to load them into (its ``load_state_dict``, strict); required for
        a ``TorchModule``. For an MLP, default a new ``jgd.torch_baseline.Net``.

    Returns:
      ``into`` (or the new ``Net``), its weights now the copy's, in its own dtype.

    Raises:
      ValueError: a ``TorchModule`` without ``into``.
      RuntimeError: torch's ``load_state_dict``, when ``into``'s keys or shapes do not match.

    Examples:
      >>> import numpy as np, torch
      >>> from flax import nnx
      >>> import jgd
      >>> model = jgd.models.MLP(4, 3, 2, rngs=nnx.Rngs(0))
      >>> net = jgd.models.to_torch(model)  # a new jgd.torch_baseline.Net
      >>> x = np.ones((5, 4), np.float32)
      >>> bool(np.allclose(net(torch.from_numpy(x)).detach().numpy(), model(x), atol=1e-6))
      True
    """
    from jgd._torch_net import Net, require_torch
    from jgd.models import _torch_graph

    torch = require_torch()
    if into is None:
        if isinstance(model, _torch_graph.TorchModule):
            raise ValueError(
                "to_torch of a TorchModule needs into=, the torch module to write into (e.g. "
                "the one it was copied from, or a fresh instance of its class)."
            )
        into = Net(model.sizes[0], model.sizes[1:-1], model.sizes[-1], model.activation)
    target = into.state_dict()
    weights = {
        k: torch.from_numpy(np.ascontiguousarray(v)).to(target[k].dtype) if k in target else v
        for k, v in state_dict(model).items()
    }
    into.load_state_dict(weights)
    return into
