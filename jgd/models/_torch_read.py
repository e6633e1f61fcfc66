"""Any torch module built from the common layers, read from its traced graph into NNX.

``torch.fx.symbolic_trace`` records what ``forward`` computes, in the order it runs: the calls
of layers (``call_module``), of functions (``F.relu``, ``torch.cat``, ``+``), of tensor methods
(``x.view``) and the parameters it reads (``get_attr``). Each becomes one ``Op`` of a
``TorchModule`` (``_torch_graph``). What cannot be copied exactly is refused naming the node.
``self.training`` is read when tracing, so the module is traced twice, in train and in eval
mode, and the copy follows ``model.train()`` / ``model.eval()`` as the torch module does.
"""

from __future__ import annotations

import operator
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from jgd.models import _torch_layers as tl
from jgd.models._torch_graph import (
    DType,
    Op,
    Ref,
    Slice,
    TorchModule,
    is_param,
    simple_layer,
    to_array,
)
from jgd.models._torch_ops import IN_PLACE, METHODS, functions


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
        self.functions = functions(torch)
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
            if node.target in IN_PLACE:
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
        made = kind(to_array(tensor))
        self.variables[id(tensor)] = made
        return made

    def attr(self, target: str) -> str:
        attr = "attr_" + target.replace(".", "_")
        if attr not in self.layers:
            tensor = (
                self.module.get_parameter(target)
                if is_param(self.module, target)
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
                    stats.append(to_array(t).astype(jnp.int32) if name[0] == "n"
                                 else to_array(t))  # fmt: skip
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
        simple = simple_layer(m, nn)
        if simple is not None:
            return simple
        raise ValueError(
            f"layer {path!r} is a {type(m).__name__} (node {node.name!r}), which from_torch does "
            "not copy; it copies Linear, Conv1d/2d, BatchNorm1d/2d, LayerNorm, Dropout, "
            "Embedding, Max/AvgPool1d/2d, AdaptiveAvgPool1d/2d, Flatten, Identity and the "
            "common activations."
        )


__all__ = ["convert"]
