"""A torch module copied into NNX: ``TorchModule``, which replays its traced graph in JAX.

``_torch_read`` turns the module's ``torch.fx`` graphs (train and eval mode) into ``Op``s, static
data of the ``TorchModule``, whose layers have torch's semantics (``_torch_layers``; the
variable-free ones are ``Apply``). Calling the copy runs the ops of its mode in order.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from jgd import _tensors
from jgd.models import _torch_layers as tl
from jgd.models._torch_ops import METHODS, gelu, pool_arg


class Ref(NamedTuple):
    """An argument that is the value of an earlier node."""

    name: str


class Slice(NamedTuple):
    """A ``slice`` in an index (slices are unhashable before Python 3.12)."""

    start: Any
    stop: Any
    step: Any


class DType(NamedTuple):
    """A torch dtype in an argument, as its NumPy name."""

    name: str


class Op(NamedTuple):
    """One node: ``kind`` in input/layer/function/method/attr/output."""

    name: str
    kind: str
    target: Any
    args: tuple
    kwargs: tuple


class TorchModule(nnx.Module):
    """A torch module copied into NNX: its layers, and its graph replayed in JAX.

    Made by ``jgd.models.from_torch``. Call it with the torch module's own inputs (NCHW images
    for convolutions); ``model.train()`` / ``model.eval()`` switch between the two traced graphs
    (dropout, batch statistics) as ``module.train()`` / ``module.eval()`` do in torch. Its
    ``nnx.Param``s are the torch module's trainable parameters; frozen ones
    (``requires_grad=False``) and running statistics are carried, never trained.
    ``jgd.models.state_dict`` reads its weights back under the torch module's keys.

    Examples:
      >>> import numpy as np, torch, jgd
      >>> net = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Dropout(0.5)).eval()
      >>> model = jgd.models.from_torch(net)  # not an MLP, so a TorchModule
      >>> type(model).__name__
      'TorchModule'
      >>> model.eval()  # as net.eval(): no dropout
      >>> x = torch.ones(2, 3)
      >>> bool(np.allclose(model(x.numpy()), net(x).detach().numpy(), atol=1e-6))
      True
      >>> sorted(jgd.models.state_dict(model))  # the torch module's keys
      ['0.bias', '0.weight']
    """

    def __init__(self, layers: dict, train_ops: tuple, eval_ops: tuple, names: tuple, training):
        for name, layer in layers.items():
            setattr(self, name, layer)
        self.train_ops, self.eval_ops, self.names = train_ops, eval_ops, names
        self.deterministic = not training

    def __call__(self, *inputs: Any) -> Any:
        ops = self.eval_ops if self.deterministic else self.train_ops
        env: dict[str, Any] = {}
        given = list(inputs)
        for op in ops:
            if op.kind == "input":
                if not given:
                    if op.args:  # a default of forward's
                        env[op.name] = op.args[0]
                        continue
                    raise TypeError(f"the torch module's forward takes input {op.name!r}.")
                env[op.name] = jnp.asarray(given.pop(0))
                continue
            args = _resolve(op.args, env)
            kwargs = dict(_resolve(op.kwargs, env))
            if op.kind == "output":
                return args[0]
            if op.kind == "layer":
                env[op.name] = getattr(self, op.target)(*args, **kwargs)
            elif op.kind == "function":
                env[op.name] = op.target(*args, **kwargs)
            elif op.kind == "method":
                env[op.name] = METHODS[op.target](*args, **kwargs)
            else:  # attr: a parameter or buffer read in forward
                env[op.name] = getattr(self, op.target)[...]
        raise ValueError("the torch module's graph has no output.")


def _resolve(value: Any, env: dict) -> Any:
    if isinstance(value, Ref):
        return env[value.name]
    if isinstance(value, Slice):
        return slice(*(_resolve(v, env) for v in value))
    if isinstance(value, DType):
        return jnp.dtype(value.name)
    if isinstance(value, tuple):
        return tuple(_resolve(v, env) for v in value)
    return value


class Apply(nnx.Module):
    """A layer without variables: a function of its input, with fixed arguments."""

    def __init__(self, fn: Any, **kwargs: Any):
        self.fn, self.kwargs = fn, tuple(sorted(kwargs.items()))

    def __call__(self, x: jax.Array) -> jax.Array:
        return self.fn(x, **dict(self.kwargs))


def simple_layer(m: Any, nn: Any) -> Any:
    """The variable-free torch layers, as ``Apply``; None for another kind."""
    if isinstance(m, nn.ReLU):
        return Apply(jax.nn.relu)
    if isinstance(m, nn.Tanh):
        return Apply(jnp.tanh)
    if isinstance(m, nn.Sigmoid):
        return Apply(jax.nn.sigmoid)
    if isinstance(m, nn.GELU):
        return Apply(gelu, approximate=m.approximate)
    if isinstance(m, nn.SiLU):
        return Apply(jax.nn.silu)
    if isinstance(m, nn.LeakyReLU):
        return Apply(jax.nn.leaky_relu, negative_slope=m.negative_slope)
    if isinstance(m, nn.ELU):
        return Apply(jax.nn.elu, alpha=m.alpha)
    if isinstance(m, nn.Softmax | nn.LogSoftmax):
        if m.dim is None:
            raise ValueError(f"{type(m).__name__}(dim=None) is not copied; give dim=.")
        fn = jax.nn.softmax if isinstance(m, nn.Softmax) else jax.nn.log_softmax
        return Apply(fn, axis=m.dim)
    if isinstance(m, nn.Identity):
        return Apply(lambda x: x)
    if isinstance(m, nn.Flatten):
        return Apply(tl.flatten, start_dim=m.start_dim, end_dim=m.end_dim)
    pools = [(nn.MaxPool1d, 1), (nn.MaxPool2d, 2), (nn.AvgPool1d, 1), (nn.AvgPool2d, 2)]
    for kind, dims in pools:
        if isinstance(m, kind):
            if m.ceil_mode:
                raise ValueError(f"{type(m).__name__}(ceil_mode=True) is not copied.")
            kernel = pool_arg(m.kernel_size, dims)
            stride = kernel if m.stride in (None, [], ()) else pool_arg(m.stride, dims)
            padding = pool_arg(m.padding, dims)
            if "Max" in kind.__name__:
                if m.return_indices:
                    raise ValueError(f"{type(m).__name__}(return_indices=True) is not copied.")
                return Apply(tl.max_pool, kernel=kernel, stride=stride, padding=padding,
                             dilation=pool_arg(m.dilation, dims))  # fmt: skip
            return Apply(tl.avg_pool, kernel=kernel, stride=stride, padding=padding,
                         count_include_pad=m.count_include_pad,
                         divisor_override=getattr(m, "divisor_override", None))  # fmt: skip
    for kind, dims in ((nn.AdaptiveAvgPool1d, 1), (nn.AdaptiveAvgPool2d, 2)):
        if isinstance(m, kind):
            size = m.output_size
            size = (size,) * dims if isinstance(size, int) or size is None else tuple(size)
            return Apply(tl.adaptive_avg_pool, output_size=size)
    return None


def is_param(module: Any, target: str) -> bool:
    return target in dict(module.named_parameters())


def to_array(tensor: Any) -> jax.Array:
    return jnp.asarray(_tensors.to_numpy(tensor))


def state_dict(model: TorchModule) -> dict[str, np.ndarray]:
    """The copy's weights and running statistics under the torch module's state-dict keys."""
    out = {}
    for key, attr, field in model.names:
        holder = getattr(model, attr)
        value = holder if not field else getattr(holder, field)
        out[key] = np.asarray(value[...]).copy()
    return out


__all__ = ["Apply", "TorchModule", "state_dict"]
