"""What a copied torch graph may call: torch functions and tensor methods in JAX.

``functions(torch)`` maps each torch callable a ``forward`` may use (``F.relu``, ``torch.cat``,
``operator.add``, ...) to a JAX function taking the same arguments; ``METHODS`` does the same for
tensor methods by name (``x.view``, ``x.mean``). ``_torch_read`` refuses any other, by node.
"""

from __future__ import annotations

import builtins
import functools
import operator
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jgd.models import _torch_layers as tl


def _dim_kw(fn):
    def wrapped(x, dim=None, _stacklevel=3, dtype=None):
        if dim is None:
            raise ValueError(f"{fn.__name__} needs dim= (torch's implicit dim is deprecated).")
        x = x if dtype is None else x.astype(dtype)
        return fn(x, axis=dim)

    return wrapped


def gelu(x, approximate="none"):
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


def pool_arg(value, dims):
    return (value,) * dims if isinstance(value, int) else tuple(value)


def _max_pool(dims):
    def pool(x, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,
             return_indices=False):  # fmt: skip
        if ceil_mode or return_indices:
            raise ValueError("max_pool with ceil_mode=True or return_indices=True is not copied.")
        kernel = pool_arg(kernel_size, dims)
        stride = kernel if stride in (None, [], ()) else pool_arg(stride, dims)
        return tl.max_pool(x, kernel, stride, pool_arg(padding, dims), pool_arg(dilation, dims))

    return pool


def _avg_pool(dims):
    def pool(x, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True,
             divisor_override=None):  # fmt: skip
        if ceil_mode:
            raise ValueError("avg_pool with ceil_mode=True is not copied.")
        kernel = pool_arg(kernel_size, dims)
        stride = kernel if stride in (None, [], ()) else pool_arg(stride, dims)
        return tl.avg_pool(
            x, kernel, stride, pool_arg(padding, dims), count_include_pad, divisor_override
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
def functions(torch: Any) -> dict:
    """torch callables a graph may call, with their JAX counterparts (same arguments)."""
    F = torch.nn.functional
    table = {
        F.relu: _act(jax.nn.relu),
        torch.relu: jax.nn.relu,
        F.tanh: jnp.tanh,
        torch.tanh: jnp.tanh,
        F.sigmoid: jax.nn.sigmoid,
        torch.sigmoid: jax.nn.sigmoid,
        F.gelu: gelu,
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

IN_PLACE = {"relu_", "add_", "mul_"}
