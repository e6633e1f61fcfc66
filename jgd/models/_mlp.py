"""The lesson's MLP (784 -> 128 -> ReLU -> 10, PyTorch's ``Net``) in flax NNX, initialized as
PyTorch does.

PyTorch's ``nn.Linear`` draws weights from ``kaiming_uniform_(a=sqrt(5))``, which works out to
U(-1/sqrt(fan_in), 1/sqrt(fan_in)), and biases from the same interval. flax's and jax's stock
initializers have no such bias init (and ``kaiming_uniform`` uses another bound), hence the two
small initializers here.
"""

from __future__ import annotations

import functools
import itertools
import math
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from jgd import _errors, _modules


def torch_uniform(fan_in: int) -> Callable:
    """An initializer drawing U(-1/sqrt(fan_in), 1/sqrt(fan_in)), as PyTorch's ``nn.Linear`` does.

    It draws both weights and biases (PyTorch's ``kaiming_uniform_(a=sqrt(5))`` works out to this
    bound), and has the signature of a ``jax.nn.initializers`` initializer, so it can be passed
    as ``kernel_init`` or ``bias_init`` of an ``nnx.Linear``.

    Args:
      fan_in: the layer's number of inputs.

    Returns:
      ``init(key, shape, dtype=jnp.float32) -> array`` of values in ``[-bound, bound]``,
      ``bound = 1 / sqrt(fan_in)``.

    Examples:
      >>> import jax, jgd
      >>> w = jgd.models.torch_uniform(16)(jax.random.key(0), (16, 4))
      >>> w.shape, bool(abs(w).max() <= 0.25)  # 1 / sqrt(16)
      ((16, 4), True)
    """
    bound = 1.0 / fan_in**0.5

    def init(key: jax.Array, shape: Sequence[int], dtype: Any = jnp.float32) -> jax.Array:
        return _uniform(key, tuple(shape), dtype, -bound, bound)

    return init


_SMALLEST = 1 << 17  # the smallest flat draw: every layer of the seeds' MLP shares its program


def _uniform(key: jax.Array, shape: tuple[int, ...], dtype: Any, low: float, high: float):
    """``jax.random.uniform(key, shape, dtype, low, high)``, bit for bit, drawn as the first
    values of a flat draw of a power-of-two size (at least ``_SMALLEST``, about a millisecond to
    draw). With jax's partitionable threefry (its default) each value depends only on its flat
    index, so the prefix is the same draw; and an eager draw compiles one program per shape
    (0.2-0.45 s each on a CPU), while a few flat sizes serve every layer shape. The legacy
    threefry draws directly."""
    size = math.prod(shape)
    if not jax.config.jax_threefry_partitionable or size == 0:
        return jax.random.uniform(key, shape, dtype, low, high)
    drawn = max(_SMALLEST, 1 << (size - 1).bit_length())
    flat = jax.random.uniform(key, (drawn,), dtype, low, high)
    if isinstance(flat, jax.core.Tracer):  # inside a trace (nnx.jit, eval_shape): one program
        return flat[:size].reshape(shape)
    return jnp.asarray(np.asarray(flat)[:size].reshape(shape))  # eager: cut on the host, no
    # program per shape (a jitted cut compiles in 50-90 ms)


ACTIVATIONS: dict[str, Callable[[jax.Array], jax.Array]] = {
    "relu": jax.nn.relu,
    "tanh": jnp.tanh,
    "sigmoid": jax.nn.sigmoid,
    "gelu": functools.partial(jax.nn.gelu, approximate=False),  # torch.nn.GELU()
    "gelu_tanh": functools.partial(jax.nn.gelu, approximate=True),  # GELU(approximate="tanh")
}


class MLP(nnx.Module):
    """A multilayer perceptron (ReLU by default) with PyTorch's default initialization.

    The default is the lesson's MNIST classifier, 784 -> 128 -> ReLU -> 10 (PyTorch's ``Net``,
    ``jgd.torch_baseline.Net``). Layers are named ``fc1``, ``fc2``, ... like that PyTorch
    module's, and hold ``kernel`` of shape (in, out), the transpose of PyTorch's ``weight``.

    Args:
      in_features: input width (784 for MNIST, 64 for scikit-learn's 8x8 digits).
      hidden: the hidden width, or a sequence of widths for several hidden layers (``()`` gives
        a linear model).
      out_features: the number of outputs (classes).
      activation: between the layers: ``"relu"`` (the default), ``"tanh"``, ``"sigmoid"``,
        ``"gelu"`` (exact, PyTorch's default) or ``"gelu_tanh"``.
      rngs: ``flax.nnx.Rngs`` for the initialization.

    Examples:
      >>> from flax import nnx
      >>> import jax.numpy as jnp
      >>> import jgd
      >>> model = jgd.models.MLP(rngs=nnx.Rngs(0))
      >>> model(jnp.zeros((2, 784))).shape
      (2, 10)
      >>> jgd.models.num_params(model)
      101770
    """

    def __init__(
        self,
        in_features: int = 784,
        hidden: int | Sequence[int] = 128,
        out_features: int = 10,
        *,
        activation: str = "relu",
        rngs: nnx.Rngs,
    ):
        _errors.one_of("activation", activation, ACTIVATIONS)
        self.activation = activation
        widths = [hidden] if isinstance(hidden, int) else list(hidden)
        sizes = [in_features, *widths, out_features]
        for name, size in zip(
            ["in_features", "out_features"], [in_features, out_features], strict=True
        ):
            _errors.positive_int(name, size)
        for w in widths:
            _errors.positive_int("hidden", w)
        self.sizes = tuple(int(s) for s in sizes)
        for i, (fan_in, fan_out) in enumerate(itertools.pairwise(sizes)):
            layer = nnx.Linear(
                fan_in,
                fan_out,
                kernel_init=torch_uniform(fan_in),
                bias_init=torch_uniform(fan_in),
                rngs=rngs,
            )
            setattr(self, f"fc{i + 1}", layer)

    @property
    def layers(self) -> list[nnx.Linear]:
        """The ``nnx.Linear`` layers ``fc1``, ``fc2``, ... in order."""
        return [getattr(self, f"fc{i + 1}") for i in range(len(self.sizes) - 1)]

    def __call__(self, x: jax.Array) -> jax.Array:
        act = ACTIVATIONS[self.activation]
        *hidden, last = self.layers
        for layer in hidden:
            x = act(layer(x))
        return last(x)


def num_params(model: nnx.Module) -> int:
    """The number of parameters of an NNX model: the total size of its ``nnx.Param`` arrays.

    Args:
      model: any ``flax.nnx.Module``.

    Returns:
      The count of scalars in its trainable parameters (other variables, such as BatchNorm's
      running statistics, are not counted).

    Examples:
      >>> from flax import nnx
      >>> import jgd
      >>> jgd.models.num_params(jgd.models.MLP(4, 3, 2, rngs=nnx.Rngs(0)))  # (4*3 + 3) + (3*2 + 2)
      23
    """
    return sum(x.size for x in jax.tree_util.tree_leaves(nnx.state(model, nnx.Param)))


def functional(model: nnx.Module) -> tuple[Callable[[Any, jax.Array], jax.Array], Any]:
    """The model's pure form: ``(apply, params)`` with ``apply(params, x) -> outputs``.

    ``params`` are the module's ``nnx.Param``s; its other variables are constants of ``apply``
    (merged in, never written). A module whose forward pass writes a variable (BatchNorm in
    train mode updating its running statistics, Dropout drawing from its RNG stream) has no
    such pure form: ``apply`` refuses it when traced, rather than drop what the pass wrote.
    Train such a module itself (``jgd.fit(loss, model, ...)`` with ``loss(model, batch)``
    carries its state), or take the pure form of an evaluation copy (``model.eval()``).
    Merging costs only at trace time, so a compiled ``jgd.fit`` loop pays nothing for it.

    Examples:
      >>> from flax import nnx
      >>> import jax.numpy as jnp
      >>> import jgd
      >>> apply, params = jgd.models.functional(jgd.models.MLP(4, 3, 2, rngs=nnx.Rngs(0)))
      >>> apply(params, jnp.ones((5, 4))).shape
      (5, 2)
    """
    if not isinstance(model, nnx.Module):
        raise TypeError(f"model={_errors.describe(model)} is not an nnx.Module.")
    graphdef, params, rest = nnx.split(model, nnx.Param, ...)

    def apply(params: Any, x: jax.Array) -> jax.Array:
        module = nnx.merge(graphdef, params, rest, copy=True)
        out = module(x)
        written = nnx.split(module, nnx.Param, ...)[2]
        for path, (now, was) in _pairs(written, rest):
            if now is not was:
                raise ValueError(
                    f"the model's forward pass wrote model.{path}, a variable that is not an "
                    "nnx.Param (BatchNorm's running statistics in train mode, Dropout's RNG "
                    "count): jgd.models.functional would drop what it wrote. Train "
                    "the module itself, jgd.fit(loss, model, ...) with loss(model, batch), or "
                    "take the pure form of an evaluation copy (model.eval())."
                )
        return out

    return apply, params


def _pairs(written: Any, before: Any):
    flat = jax.tree_util.tree_flatten_with_path(written)[0]
    old = jax.tree_util.tree_leaves(before)
    for (path, now), was in zip(flat, old, strict=True):
        yield _modules.path_name(path), (now, was)


def classification_loss(apply: Callable[[Any, jax.Array], jax.Array]) -> Callable:
    """``loss(params, (X, y))``: mean softmax cross-entropy, PyTorch's ``nn.CrossEntropyLoss``.

    The whole batch goes through ``apply`` at once (as in PyTorch), then the per-example losses
    are averaged.

    Args:
      apply: the model's pure form, ``apply(params, X) -> logits`` (``jgd.models.functional``).

    Returns:
      ``loss(params, batch) -> scalar`` for a batch ``(X, y)`` of inputs and integer labels,
      ready for ``jgd.fit``.

    Examples:
      >>> from flax import nnx
      >>> import jax.numpy as jnp, jgd
      >>> apply, params = jgd.models.functional(jgd.models.MLP(4, 3, 10, rngs=nnx.Rngs(0)))
      >>> loss = jgd.models.classification_loss(apply)
      >>> X, y = jnp.ones((2, 4)), jnp.array([3, 1])
      >>> bool(jnp.isclose(loss(params, (X, y)), jgd.losses.cross_entropy(apply(params, X), y)))
      True
    """

    def loss(params: Any, batch: tuple[jax.Array, jax.Array]) -> jax.Array:
        X, y = batch
        from jgd._losses import softmax_cross_entropy

        return jnp.mean(jax.vmap(softmax_cross_entropy)(apply(params, X), y))

    return loss


def accuracy(model: Any, *args: Any, batch_size: int = 10_000) -> float:
    """The fraction of examples whose arg-max output is the label, in eval mode.

    ``accuracy(model, X, y)`` for an ``nnx.Module``: a copy of it in eval mode (BatchNorm on
    its running statistics, no dropout; the module given is not changed).
    ``accuracy(apply, params, X, y)`` for a pure form (``jgd.models.functional``).

    Examples:
      >>> import jax.numpy as jnp
      >>> from flax import nnx
      >>> import jgd
      >>> model = jgd.models.MLP(4, 3, 2, rngs=nnx.Rngs(0))
      >>> X, y = jnp.ones((6, 4)), jnp.zeros(6, int)
      >>> apply, params = jgd.models.functional(model)
      >>> jgd.models.accuracy(model, X, y) == jgd.models.accuracy(apply, params, X, y)
      True
    """
    if isinstance(model, nnx.Module):
        if len(args) != 2:
            raise TypeError("accuracy(model, X, y) takes the examples and the labels.")
        copy = nnx.clone(model)
        copy.eval()
        apply, params = functional(copy)
        X, y = args
    else:
        if not callable(model) or len(args) != 3:
            raise TypeError(
                "accuracy takes (model, X, y) for an nnx.Module or (apply, params, X, y) for "
                f"a pure form; got {_errors.describe(model)} and {len(args)} more arguments."
            )
        apply, (params, X, y) = model, args
    batch_size = _errors.positive_int("batch_size", batch_size)
    correct = 0
    for start in range(0, len(y), batch_size):
        x, labels = (
            jnp.asarray(X[start : start + batch_size]),
            jnp.asarray(y[start : start + batch_size]),
        )
        correct += int(jnp.sum(_predict(apply, params, x) == labels))
    return correct / len(y)


@functools.partial(jax.jit, static_argnums=0)
def _predict(apply: Callable, params: Any, x: jax.Array) -> jax.Array:
    return jnp.argmax(apply(params, x), axis=-1)
