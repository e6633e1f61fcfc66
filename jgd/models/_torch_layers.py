"""NNX layers with PyTorch's semantics, in PyTorch's layouts: what ``from_torch`` copies into.

Each takes the torch layer's own input layout (NCHW for convolutions and pools) and stores its
weights as torch does (``weight`` of a Linear is (out, in)), so a state dict maps one to one.
flax's layers are not used where their semantics differ: ``nnx.BatchNorm`` updates the running
variance with the biased estimate, weighs the old statistics by ``momentum`` (torch: the new
ones), and keeps its statistics in float32; torch's pools and convolutions take NCHW. Written
by hand for that reason; each is checked against torch in ``tests/test_from_torch.py``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import jax
import jax.numpy as jnp
from flax import nnx


class Frozen(nnx.Variable):
    """A torch parameter with ``requires_grad=False``: carried, never trained."""


class Linear(nnx.Module):
    """``torch.nn.Linear``: ``x @ weight.T + bias``."""

    def __init__(self, weight: nnx.Variable, bias: nnx.Variable | None):
        self.weight, self.bias = weight, bias

    def __call__(self, x: jax.Array) -> jax.Array:
        y = x @ self.weight[...].T
        return y if self.bias is None else y + self.bias[...]


_CONV_SPECS = {1: ("NCH", "OIH", "NCH"), 2: ("NCHW", "OIHW", "NCHW")}


class Conv(nnx.Module):
    """``torch.nn.Conv1d`` / ``Conv2d`` with zero padding (ints, or ``"same"`` / ``"valid"``)."""

    def __init__(
        self,
        weight: nnx.Variable,
        bias: nnx.Variable | None,
        stride: Sequence[int],
        padding: Sequence[int] | str,
        dilation: Sequence[int],
        groups: int,
    ):
        self.weight, self.bias = weight, bias
        self.stride, self.dilation, self.groups = tuple(stride), tuple(dilation), groups
        self.padding = padding if isinstance(padding, str) else tuple(padding)

    def __call__(self, x: jax.Array) -> jax.Array:
        w = self.weight[...]
        dims = w.ndim - 2
        if isinstance(self.padding, str):
            padding = self.padding.upper()  # torch's "same" pads as XLA's SAME at stride 1
        else:
            padding = [(p, p) for p in self.padding]
        y = jax.lax.conv_general_dilated(
            x,
            w,
            window_strides=self.stride,
            padding=padding,
            rhs_dilation=self.dilation,
            feature_group_count=self.groups,
            dimension_numbers=_CONV_SPECS[dims],
        )
        if self.bias is None:
            return y
        return y + self.bias[...].reshape((1, -1) + (1,) * dims)


class BatchNorm(nnx.Module):
    """``torch.nn.BatchNorm1d`` / ``BatchNorm2d``, with torch's running statistics.

    In train mode (``use_running_average=False``) the batch's mean and biased variance
    normalise, and the running ones move by ``momentum`` toward the batch's mean and
    *unbiased* variance (``momentum=None``: the cumulative average, 1 / batches seen), counted
    in ``num_batches_tracked``; in eval mode the running ones normalise. The statistics keep the
    module's dtype. ``track_running_stats=False`` uses the batch's statistics in both modes.
    """

    def __init__(
        self,
        weight: nnx.Variable | None,
        bias: nnx.Variable | None,
        running_mean: jax.Array | None,
        running_var: jax.Array | None,
        num_batches_tracked: jax.Array | None,
        eps: float,
        momentum: float | None,
        training: bool,
    ):
        self.weight, self.bias, self.eps, self.momentum = weight, bias, eps, momentum
        self.track = running_mean is not None
        if self.track:
            self.running_mean = nnx.BatchStat(running_mean)
            self.running_var = nnx.BatchStat(running_var)
            self.num_batches_tracked = nnx.BatchStat(num_batches_tracked)
        self.use_running_average = not training

    def __call__(self, x: jax.Array) -> jax.Array:
        axes = (0, *range(2, x.ndim))
        shape = (1, x.shape[1]) + (1,) * (x.ndim - 2)
        if self.use_running_average and self.track:
            mean, var = self.running_mean[...], self.running_var[...]
        else:
            mean, var = jnp.mean(x, axes), jnp.var(x, axes)
            if self.track and not self.use_running_average:
                self._update(mean, var, x.size // x.shape[1])
        y = (x - mean.reshape(shape).astype(x.dtype)) / jnp.sqrt(
            var.reshape(shape).astype(x.dtype) + self.eps
        )
        if self.weight is not None:
            y = y * self.weight[...].reshape(shape) + self.bias[...].reshape(shape)
        return y

    def _update(self, mean: jax.Array, var: jax.Array, n: int) -> None:
        count = self.num_batches_tracked[...] + 1
        self.num_batches_tracked.set_value(count)
        old_mean, old_var = self.running_mean[...], self.running_var[...]
        if self.momentum is None:
            m = (1.0 / count).astype(old_mean.dtype)
        else:
            m = jnp.asarray(self.momentum, old_mean.dtype)
        unbiased = var * (n / max(n - 1, 1))
        self.running_mean.set_value((1 - m) * old_mean + m * mean.astype(old_mean.dtype))
        self.running_var.set_value((1 - m) * old_var + m * unbiased.astype(old_var.dtype))


class LayerNorm(nnx.Module):
    """``torch.nn.LayerNorm`` over the last ``len(normalized_shape)`` axes (biased variance)."""

    def __init__(
        self, weight: nnx.Variable | None, bias: nnx.Variable | None, axes: int, eps: float
    ):
        self.weight, self.bias, self.axes, self.eps = weight, bias, axes, eps

    def __call__(self, x: jax.Array) -> jax.Array:
        axes = tuple(range(x.ndim - self.axes, x.ndim))
        mean = jnp.mean(x, axes, keepdims=True)
        var = jnp.var(x, axes, keepdims=True)
        y = (x - mean) / jnp.sqrt(var + self.eps)
        if self.weight is not None:
            y = y * self.weight[...]
        if self.bias is not None:
            y = y + self.bias[...]
        return y


class Embedding(nnx.Module):
    """``torch.nn.Embedding``: rows of ``weight``; the ``padding_idx`` row gets no gradient."""

    def __init__(self, weight: nnx.Variable, padding_idx: int | None):
        self.weight, self.padding_idx = weight, padding_idx

    def __call__(self, idx: jax.Array) -> jax.Array:
        out = jnp.take(self.weight[...], idx, axis=0)
        if self.padding_idx is None:
            return out
        pad = (idx == self.padding_idx)[..., None]
        return jnp.where(pad, jax.lax.stop_gradient(out), out)


def max_pool(
    x: jax.Array,
    kernel: Sequence[int],
    stride: Sequence[int],
    padding: Sequence[int],
    dilation: Sequence[int],
) -> jax.Array:
    """``F.max_pool1d/2d`` (no ``ceil_mode``): padding counts as -inf."""
    lead = (1, 1)
    return jax.lax.reduce_window(
        x,
        -jnp.inf if jnp.issubdtype(x.dtype, jnp.floating) else jnp.iinfo(x.dtype).min,
        jax.lax.max,
        lead + tuple(kernel),
        lead + tuple(stride),
        [(0, 0), (0, 0)] + [(p, p) for p in padding],
        window_dilation=lead + tuple(dilation),
    )


def avg_pool(
    x: jax.Array,
    kernel: Sequence[int],
    stride: Sequence[int],
    padding: Sequence[int],
    count_include_pad: bool,
    divisor_override: int | None,
) -> jax.Array:
    """``F.avg_pool1d/2d`` (no ``ceil_mode``), torch's divisors."""
    lead, pads = (1, 1), [(0, 0), (0, 0)] + [(p, p) for p in padding]
    window = lead + tuple(kernel)
    strides = lead + tuple(stride)
    total = jax.lax.reduce_window(x, jnp.zeros((), x.dtype), jax.lax.add, window, strides, pads)
    if divisor_override:
        return total / divisor_override
    if count_include_pad:
        return total / math.prod(kernel)
    ones = jnp.ones(x.shape[2:], x.dtype)
    counts = jax.lax.reduce_window(
        ones, jnp.zeros((), x.dtype), jax.lax.add, tuple(kernel), tuple(stride), pads[2:]
    )
    return total / counts


def adaptive_avg_pool(x: jax.Array, output_size: Sequence[int | None]) -> jax.Array:
    """``F.adaptive_avg_pool1d/2d``: output cell i averages input rows floor(i*n/out) to
    ceil((i+1)*n/out), torch's windows (equal ones, a reshape, when out divides n)."""
    for axis, out in zip(range(2, x.ndim), output_size, strict=True):
        n = x.shape[axis]
        out = n if out is None else out
        if n % out == 0:
            shape = (*x.shape[:axis], out, n // out, *x.shape[axis + 1 :])
            x = jnp.mean(x.reshape(shape), axis=axis + 1)
            continue
        cells = [
            jnp.mean(
                jax.lax.slice_in_dim(x, (i * n) // out, -(-((i + 1) * n) // out), axis=axis),
                axis=axis,
                keepdims=True,
            )
            for i in range(out)
        ]
        x = jnp.concatenate(cells, axis=axis)
    return x


def flatten(x: jax.Array, start_dim: int = 0, end_dim: int = -1) -> jax.Array:
    """``torch.flatten``: axes ``start_dim`` to ``end_dim`` into one."""
    if x.ndim == 0:
        return x.reshape(1)
    start, end = start_dim % x.ndim, end_dim % x.ndim
    return x.reshape((*x.shape[:start], -1, *x.shape[end + 1 :]))


def dropout(x: jax.Array, layer: nnx.Dropout | None) -> jax.Array:
    return x if layer is None else layer(x)


__all__ = [
    "BatchNorm",
    "Conv",
    "Embedding",
    "Frozen",
    "LayerNorm",
    "Linear",
    "adaptive_avg_pool",
    "avg_pool",
    "flatten",
    "max_pool",
]
