"""Any torch module built from the common layers, read from its traced graph into NNX.

``torch.fx.symbolic_trace`` records what ``forward`` computes, in the order it runs: the calls
of layers (``call_module``), of functions (``F.relu``, ``torch.cat``, ``+``), of tensor methods
(``x.view``) and the parameters it reads (``get_attr``). Each becomes one step of a
``TorchModule``, an ``nnx.Module`` holding the layers with torch's semantics
(``_torch_layers``) and the steps as static data; calling it replays the graph in JAX. What
cannot be copied exactly is refused naming the node. ``self.training`` is read when tracing, so
the module is traced twice, in train and in eval mode, and the copy follows ``model.train()`` /
``model.eval()`` as the torch module does.
"""

from __future__ import annotations

import builtins
import functools
import math
import operator
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from jgd.models import _torch_layers as tl


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


# --- what a graph may call -----------------------------------------------------------------------


def _dim_kw(fn):
    def wrapped(x, dim=None, _stacklevel=3, dtype=None):
        if dim is None:
            raise ValueError(f"{fn.__name__} needs dim= (torch's implicit dim is deprecated).")
        x = x if dtype is None else x.astype(dtype)
        return fn(x, axis=dim)

    return wrapped


def _gelu(x, approximate="none"):
    return jax.nn.gelu(x, approximate=approximate == "tanh")


def _act(fn):
    def wrapped(x, inplace=False):
        return fn(x)

    return wrapped


def _leaky_relu(x, negative_slope=0.01, inplace=False):
    return jax.nn.leaky_relu(x, negative_slope)


def _elu(x, alpha=1.0, inplace=False):
    return jax.nn.elu(x, alpha)


def _cat(tensors, dim=0):
    return jnp.concatenate(tensors, axis=dim)


def _stack(tensors, dim=0):
    return jnp.stack(tensors, axis=dim)


def _add(x, other, alpha=1):
    return x + alpha * other


def _reduce(fn):
    def wrapped(x, dim=None, keepdim=False, dtype=None):
        x = x if dtype is None else x.astype(dtype)
        axis = tuple(dim) if isinstance(dim, list | tuple) else dim
        return fn(x, axis=axis, keepdims=keepdim)

    return wrapped


def _shape_args(shape):
    if len(shape) == 1 and isinstance(shape[0], tuple | list):
        return tuple(shape[0])
    return tuple(shape)


def _reshape(x, *shape):
    return jnp.reshape(x, _shape_args(shape))


def _size(x, dim=None):
    return tuple(x.shape) if dim is None else x.shape[dim]


def _squeeze(x, dim=None):
    if dim is None:
        return jnp.squeeze(x)
    return jnp.squeeze(x, dim) if x.shape[dim] == 1 else x


def _to(x, *args, **kwargs):
    dtypes = [a for a in (*args, *kwargs.values()) if isinstance(a, np.dtype)]
    return x.astype(dtypes[0]) if dtypes else x


def _pool_arg(value, dims):
    return (value,) * dims if isinstance(value, int) else tuple(value)


def _max_pool(dims):
    def pool(x, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,
             return_indices=False):  # fmt: skip
        if ceil_mode or return_indices:
            raise ValueError("max_pool with ceil_mode=True or return_indices=True is not copied.")
        kernel = _pool_arg(kernel_size, dims)
        stride = kernel if stride in (None, [], ()) else _pool_arg(stride, dims)
        return tl.max_pool(x, kernel, stride, _pool_arg(padding, dims), _pool_arg(dilation, dims))

    return pool


def _avg_pool(dims):
    def pool(x, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True,
             divisor_override=None):  # fmt: skip
        if ceil_mode:
            raise ValueError("avg_pool with ceil_mode=True is not copied.")
        kernel = _pool_arg(kernel_size, dims)
        stride = kernel if stride in (None, [], ()) else _pool_arg(stride, dims)
        return tl.avg_pool(
            x, kernel, stride, _pool_arg(padding, dims), count_include_pad, divisor_override
        )

    return pool


def _adaptive_avg_pool(dims):
    def pool(x, output_size):
        size = (output_size,) * dims if isinstance(output_size, int) else tuple(output_size)
        return tl.adaptive_avg_pool(x, size)

    return pool


def _linear(x, weight, bias=None):
    y = x @ weight.T
    return y if bias is None else y + bias


@functools.lru_cache(maxsize=2)
def _functions(torch: Any) -> dict:
    """torch callables a graph may call, with their JAX counterparts (same arguments)."""
    F = torch.nn.functional
    table = {
        F.relu: _act(jax.nn.relu),
        torch.relu: jax.nn.relu,
        F.tanh: jnp.tanh,
        torch.tanh: jnp.tanh,
        F.sigmoid: jax.nn.sigmoid,
        torch.sigmoid: jax.nn.sigmoid,
        F.gelu: _gelu,
        F.silu: _act(jax.nn.silu),
        F.leaky_relu: _leaky_relu,
        F.elu: _elu,
        F.softmax: _dim_kw(jax.nn.softmax),
        F.log_softmax: _dim_kw(jax.nn.log_softmax),
        torch.softmax: _dim_kw(jax.nn.softmax),
        torch.log_softmax: _dim_kw(jax.nn.log_softmax),
        F.max_pool1d: _max_pool(1),
        F.max_pool2d: _max_pool(2),
        F.avg_pool1d: _avg_pool(1),
        F.avg_pool2d: _avg_pool(2),
        F.adaptive_avg_pool1d: _adaptive_avg_pool(1),
        F.adaptive_avg_pool2d: _adaptive_avg_pool(2),
        F.linear: _linear,
        torch.flatten: tl.flatten,
        torch.cat: _cat,
        torch.concat: _cat,
        torch.stack: _stack,
        torch.add: _add,
        torch.mul: operator.mul,
        torch.sub: operator.sub,
        torch.matmul: operator.matmul,
        torch.mean: _reduce(jnp.mean),
        torch.sum: _reduce(jnp.sum),
        torch.reshape: lambda x, shape: jnp.reshape(x, tuple(shape)),
        torch.transpose: lambda x, dim0, dim1: jnp.swapaxes(x, dim0, dim1),
        torch.permute: lambda x, dims: jnp.transpose(x, tuple(dims)),
        torch.squeeze: _squeeze,
        torch.unsqueeze: lambda x, dim: jnp.expand_dims(x, dim),
        torch.exp: jnp.exp,
        torch.log: jnp.log,
        torch.sqrt: jnp.sqrt,
        torch.abs: jnp.abs,
        operator.add: operator.add,
        operator.sub: operator.sub,
        operator.mul: operator.mul,
        operator.truediv: operator.truediv,
        operator.matmul: operator.matmul,
        operator.neg: operator.neg,
        operator.pow: operator.pow,
        operator.getitem: operator.getitem,
        operator.iadd: operator.add,
        operator.isub: operator.sub,
        operator.imul: operator.mul,
        operator.itruediv: operator.truediv,
        builtins.getattr: _getattr,
    }
    # F.max_pool2d is a dispatcher fx may record as its inner function
    for name in ("_max_pool1d", "_max_pool2d"):
        inner = getattr(F, name, None)
        if inner is not None:
            table[inner] = _max_pool(int(name[-2]))
    return table


def _getattr(x, name):
    if name == "shape":
        return tuple(x.shape)
    if name == "ndim":
        return x.ndim
    if name == "T":
        return x.T
    raise ValueError(f"the attribute {name!r} of a tensor is not copied.")


METHODS = {
    "view": _reshape,
    "reshape": _reshape,
    "flatten": tl.flatten,
    "size": _size,
    "dim": lambda x: x.ndim,
    "mean": _reduce(jnp.mean),
    "sum": _reduce(jnp.sum),
    "permute": lambda x, *dims: jnp.transpose(x, _shape_args(dims)),
    "transpose": lambda x, dim0, dim1: jnp.swapaxes(x, dim0, dim1),
    "t": lambda x: x.T,
    "squeeze": _squeeze,
    "unsqueeze": lambda x, dim: jnp.expand_dims(x, dim),
    "contiguous": lambda x: x,
    "clone": lambda x: x,
    "detach": jax.lax.stop_gradient,
    "relu": jax.nn.relu,
    "relu_": jax.nn.relu,
    "sigmoid": jax.nn.sigmoid,
    "tanh": jnp.tanh,
    "exp": jnp.exp,
    "log": jnp.log,
    "sqrt": jnp.sqrt,
    "abs": jnp.abs,
    "pow": operator.pow,
    "softmax": _dim_kw(jax.nn.softmax),
    "log_softmax": _dim_kw(jax.nn.log_softmax),
    "add": _add,
    "add_": _add,
    "mul": operator.mul,
    "mul_": operator.mul,
    "sub": operator.sub,
    "div": operator.truediv,
    "matmul": operator.matmul,
    "float": lambda x: x.astype(jnp.float32),
    "double": lambda x: x.astype(jnp.float64),
    "to": _to,
    "clamp": lambda x, min=None, max=None: jnp.clip(x, min, max),
}

_IN_PLACE = {"relu_", "add_", "mul_"}


# --- reading a module --------------------------------------------------------------------------


def convert(module: Any, torch: Any, rngs: nnx.Rngs) -> tuple[TorchModule, Any, Any]:
    """``(TorchModule, graph, root)``: the copy, the train-mode graph (to spot an MLP) and the
    module it was traced from (a bare layer wrapped in a Sequential)."""
    _check_module(module, torch)
    wrapped = torch.fx.Tracer().is_leaf_module(module, "")
    if wrapped:  # fx traces through its root: a bare layer is read inside a Sequential
        module = torch.nn.Sequential(module)
    was = module.training
    try:
        module.train()
        train_graph = _trace(module, torch)
        module.eval()
        eval_graph = _trace(module, torch)
    finally:
        module.train(was)
    reader = _Reader(module, torch, rngs, was)
    train_ops = reader.ops(train_graph, training=True)
    eval_ops = reader.ops(eval_graph, training=False)
    names = [(k.removeprefix("0.") if wrapped else k, a, f) for k, a, f in reader.names]
    model = TorchModule(reader.layers, train_ops, eval_ops, tuple(names), was)
    return model, train_graph, module


def _check_module(module: Any, torch: Any) -> None:
    for name, sub in module.named_modules():
        where = f"module {name!r}" if name else "the module"
        hooks = [
            h
            for h in ("_forward_hooks", "_forward_pre_hooks", "_backward_hooks")
            if getattr(sub, h, None)
        ]
        if hooks:
            raise ValueError(
                f"{where} ({type(sub).__name__}) has {hooks[0].strip('_').replace('_', ' ')}; "
                "a hook runs Python that the copy would not, so from_torch refuses it. Remove "
                "the hooks first."
            )
    for name, tensor in [*module.named_parameters(), *module.named_buffers()]:
        if tensor.is_meta:
            raise ValueError(
                f"{name} is on the meta device (no values); materialise the module first "
                "(module.to_empty(device='cpu') and load its weights)."
            )
        if (
            tensor.dtype == torch.float64
            and jax.dtypes.canonicalize_dtype(np.float64) != np.float64
        ):
            raise ValueError(
                f"{name} is float64 but JAX runs float32 here; enable float64 first "
                "(jax.config.update('jax_enable_x64', True)) or convert with module.float()."
            )


def _trace(module: Any, torch: Any) -> Any:
    try:
        return torch.fx.symbolic_trace(module).graph
    except Exception as e:  # fx raises TraceError, TypeError, ... for what it cannot trace
        first = str(e).strip().splitlines()[0][:300] if str(e).strip() else type(e).__name__
        raise ValueError(
            f"{type(module).__name__}.forward cannot be traced by torch.fx ({type(e).__name__}: "
            f"{first}); from_torch reads the computation from the traced graph, so forward "
            "may not branch on tensor values (data-dependent control flow)."
        ) from None


class _Reader:
    """Turns fx graphs into ops, building each layer once (shared by both graphs)."""

    def __init__(self, module: Any, torch: Any, rngs: nnx.Rngs, training: bool):
        self.module, self.torch, self.rngs, self.training = module, torch, rngs, training
        self.nn = torch.nn
        self.functions = _functions(torch)
        self.layers: dict[str, Any] = {}
        self.kinds: dict[str, str] = {}  # layer attr -> torch class name
        self.variables: dict[int, nnx.Variable] = {}  # id(tensor) -> its one variable
        self.names: list[tuple[str, str, str]] = []  # (state-dict key, attr, field)

    def ops(self, graph: Any, training: bool) -> tuple:
        nodes = list(graph.nodes)
        out = []
        for i, node in enumerate(nodes):
            out.append(self.op(node, training, nodes[i + 1 :]))
        return tuple(op for op in out if op is not None)

    def op(self, node: Any, training: bool, later: list) -> Op | None:
        args, kwargs = self.arg(node.args), tuple((k, self.arg(v)) for k, v in node.kwargs.items())
        if node.op == "placeholder":
            default = () if not node.args else (self.arg(node.args[0]),)
            return Op(node.name, "input", None, default, ())
        if node.op == "output":
            return Op(node.name, "output", None, args, ())
        if node.op == "call_module":
            return Op(node.name, "layer", self.layer(node.target, node), args, kwargs)
        if node.op == "get_attr":
            return Op(node.name, "attr", self.attr(node.target), (), ())
        if node.op == "call_method":
            if node.target not in METHODS:
                raise ValueError(
                    f"node {node.name!r} calls the tensor method .{node.target}(), which "
                    f"from_torch does not copy; it copies {sorted(METHODS)}."
                )
            if node.target in _IN_PLACE:
                self.check_in_place(node, later)
            return Op(node.name, "method", node.target, args, kwargs)
        return self.function(node, args, kwargs, training, later)

    def function(self, node, args, kwargs, training, later) -> Op:
        F = self.torch.nn.functional
        if node.target is F.dropout:
            p = dict(zip(("input", "p", "training"), node.args, strict=False)) | dict(node.kwargs)
            rate, on = float(p.get("p", 0.5)), bool(p.get("training", True))
            if not on or rate == 0.0:
                return Op(node.name, "function", tl.dropout, (args[0], None), ())
            name = f"dropout_{node.name}"
            if name not in self.layers:
                self.layers[name] = nnx.Dropout(rate, rngs=self.rngs)
            return Op(node.name, "layer", name, (args[0],), ())
        fn = self.functions.get(node.target)
        if fn is None:
            label = getattr(node.target, "__name__", repr(node.target))
            raise ValueError(
                f"node {node.name!r} calls {label}, which from_torch does not copy; it copies "
                "the common layers, activations, pools, flatten/view/reshape, cat, + - * / @."
            )
        if node.target in (operator.iadd, operator.isub, operator.imul, operator.itruediv):
            self.check_in_place(node, later)
        if node.target in (F.relu, F.silu, F.leaky_relu, F.elu) and node.kwargs.get("inplace"):
            self.check_in_place(node, later)
        return Op(node.name, "function", fn, args, kwargs)

    def check_in_place(self, node: Any, later: list) -> None:
        """An in-place op is copied as its pure form unless a later node reads the tensor it
        changed (in torch that node sees the change; in the copy it would not)."""
        changed = node.args[0]
        readers = [n.name for n in later if changed in n.all_input_nodes]
        if readers:
            raise ValueError(
                f"node {node.name!r} changes {changed.name!r} in place, and {readers[0]!r} reads "
                f"{changed.name!r} afterwards; write it out of place (x = x + y) to be copied."
            )

    def arg(self, value: Any) -> Any:
        torch = self.torch
        if isinstance(value, torch.fx.Node):
            return Ref(value.name)
        if isinstance(value, list | tuple):
            return tuple(self.arg(v) for v in value)
        if isinstance(value, slice):
            return Slice(self.arg(value.start), self.arg(value.stop), self.arg(value.step))
        if isinstance(value, torch.dtype):
            return DType(str(value).removeprefix("torch."))
        if isinstance(value, dict):
            raise ValueError(f"a dict argument ({value}) is not copied.")
        if value is None or value is Ellipsis or isinstance(value, bool | int | float | str):
            return value
        if isinstance(value, torch.Size):
            return tuple(value)
        raise ValueError(f"the argument {value!r} ({type(value).__name__}) is not copied.")

    # layers and variables

    def variable(self, tensor: Any, key: str, attr: str, field: str, kind: Any = None) -> Any:
        """The one variable of ``tensor`` (a parameter used by two layers stays one)."""
        self.names.append((key, attr, field))
        found = self.variables.get(id(tensor))
        if found is not None:
            return found
        if kind is None:
            kind = nnx.Param if getattr(tensor, "requires_grad", False) else tl.Frozen
        made = kind(_array(tensor, self.torch))
        self.variables[id(tensor)] = made
        return made

    def attr(self, target: str) -> str:
        attr = "attr_" + target.replace(".", "_")
        if attr not in self.layers:
            tensor = (
                self.module.get_parameter(target)
                if _is_param(self.module, target)
                else (self.module.get_buffer(target))
            )
            self.layers[attr] = self.variable(tensor, target, attr, "")
        return attr

    def layer(self, path: str, node: Any) -> str:
        attr = path.replace(".", "_") or "root"
        if attr in self.layers:
            return attr
        sub = self.module.get_submodule(path)
        self.layers[attr] = self.build(sub, path, attr, node)
        self.kinds[attr] = type(sub).__name__
        return attr

    def build(self, m: Any, path: str, attr: str, node: Any) -> Any:
        nn = self.nn

        def var(name: str) -> Any:
            t = getattr(m, name, None)
            return None if t is None else self.variable(t, f"{path}.{name}", attr, name)

        if isinstance(m, nn.Linear):
            return tl.Linear(var("weight"), var("bias"))
        if isinstance(m, nn.Conv1d | nn.Conv2d):
            if m.padding_mode != "zeros":
                raise ValueError(
                    f"layer {path!r} ({type(m).__name__}) pads with {m.padding_mode!r}; "
                    "from_torch copies padding_mode='zeros'."
                )
            return tl.Conv(var("weight"), var("bias"), m.stride, m.padding, m.dilation, m.groups)
        if isinstance(m, nn.BatchNorm1d | nn.BatchNorm2d):
            stats = []
            if m.track_running_stats:
                for name in ("running_mean", "running_var", "num_batches_tracked"):
                    self.names.append((f"{path}.{name}", attr, name))
                    t = getattr(m, name)
                    stats.append(_array(t, self.torch).astype(jnp.int32) if name[0] == "n"
                                 else _array(t, self.torch))  # fmt: skip
            else:
                stats = [None, None, None]
            weight, bias = (var("weight"), var("bias")) if m.affine else (None, None)
            return tl.BatchNorm(weight, bias, *stats, m.eps, m.momentum, self.training)
        if isinstance(m, nn.LayerNorm):
            return tl.LayerNorm(var("weight"), var("bias"), len(m.normalized_shape), m.eps)
        if isinstance(m, nn.Embedding):
            if m.max_norm is not None or m.scale_grad_by_freq:
                raise ValueError(
                    f"layer {path!r} (Embedding) uses max_norm or scale_grad_by_freq, which "
                    "from_torch does not copy."
                )
            return tl.Embedding(var("weight"), m.padding_idx)
        if isinstance(m, nn.Dropout):
            return nnx.Dropout(m.p, deterministic=not self.training, rngs=self.rngs)
        simple = _simple_layer(m, nn)
        if simple is not None:
            return simple
        raise ValueError(
            f"layer {path!r} is a {type(m).__name__} (node {node.name!r}), which from_torch does "
            "not copy; it copies Linear, Conv1d/2d, BatchNorm1d/2d, LayerNorm, Dropout, "
            "Embedding, Max/AvgPool1d/2d, AdaptiveAvgPool1d/2d, Flatten, Identity and the "
            "common activations."
        )


class Apply(nnx.Module):
    """A layer without variables: a function of its input, with fixed arguments."""

    def __init__(self, fn: Any, **kwargs: Any):
        self.fn, self.kwargs = fn, tuple(sorted(kwargs.items()))

    def __call__(self, x: jax.Array) -> jax.Array:
        return self.fn(x, **dict(self.kwargs))


def _simple_layer(m: Any, nn: Any) -> Any:
    """The variable-free torch layers, as ``Apply``; None for another kind."""
    if isinstance(m, nn.ReLU):
        return Apply(jax.nn.relu)
    if isinstance(m, nn.Tanh):
        return Apply(jnp.tanh)
    if isinstance(m, nn.Sigmoid):
        return Apply(jax.nn.sigmoid)
    if isinstance(m, nn.GELU):
        return Apply(_gelu, approximate=m.approximate)
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
            kernel = _pool_arg(m.kernel_size, dims)
            stride = kernel if m.stride in (None, [], ()) else _pool_arg(m.stride, dims)
            padding = _pool_arg(m.padding, dims)
            if "Max" in kind.__name__:
                if m.return_indices:
                    raise ValueError(f"{type(m).__name__}(return_indices=True) is not copied.")
                return Apply(tl.max_pool, kernel=kernel, stride=stride, padding=padding,
                             dilation=_pool_arg(m.dilation, dims))  # fmt: skip
            return Apply(tl.avg_pool, kernel=kernel, stride=stride, padding=padding,
                         count_include_pad=m.count_include_pad,
                         divisor_override=getattr(m, "divisor_override", None))  # fmt: skip
    for kind, dims in ((nn.AdaptiveAvgPool1d, 1), (nn.AdaptiveAvgPool2d, 2)):
        if isinstance(m, kind):
            size = m.output_size
            size = (size,) * dims if isinstance(size, int) or size is None else tuple(size)
            return Apply(tl.adaptive_avg_pool, output_size=size)
    return None


def _is_param(module: Any, target: str) -> bool:
    return target in dict(module.named_parameters())


def _array(tensor: Any, torch: Any) -> jax.Array:
    t = tensor.detach().cpu()
    if t.dtype == torch.bfloat16:
        import ml_dtypes

        return jnp.asarray(t.view(torch.int16).numpy().view(ml_dtypes.bfloat16))
    return jnp.asarray(t.numpy())


def state_dict(model: TorchModule) -> dict[str, np.ndarray]:
    """The copy's weights and running statistics under the torch module's state-dict keys."""
    out = {}
    for key, attr, field in model.names:
        holder = getattr(model, attr)
        value = holder if not field else getattr(holder, field)
        out[key] = np.asarray(value[...]).copy()
    return out


def count_params(model: TorchModule) -> int:
    return sum(math.prod(x.shape) for x in jax.tree.leaves(nnx.state(model, nnx.Param)))


__all__ = ["TorchModule", "convert", "state_dict"]
