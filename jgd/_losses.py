"""Per-example losses and ``per_example``: write the loss of one example, get the batch mean.

The losses are the optax ones, reduced to a scalar per example so that ``jax.vmap`` turns them
into a batch loss; nothing is re-derived by hand.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import optax

ExampleLoss = Callable[[Any, Any], jax.Array]
Loss = Callable[[Any, Any], jax.Array]


def per_example(example_loss: ExampleLoss) -> Loss:
    """Turns the loss of one example into the mean loss over a batch.

    Args:
      example_loss: ``example_loss(params, example) -> scalar``, where ``example`` is one row of
        every array in the batch pytree (e.g. ``(x, y)`` for a batch ``(X, Y)``).

    Returns:
      ``loss(params, batch) -> scalar``: ``jax.vmap`` of ``example_loss`` over the leading axis of
      ``batch``, then the mean. This is the loss convention every jgd function takes.

    Examples:
      >>> import jax.numpy as jnp
      >>> import jgd
      >>> loss = jgd.per_example(lambda w, ex: jgd.losses.squared_error(ex[0] @ w, ex[1]))
      >>> X, y = jnp.array([[1.0, 0.0], [0.0, 1.0]]), jnp.array([1.0, 3.0])
      >>> float(loss(jnp.zeros(2), (X, y)))  # (1 + 9) / 2
      5.0
    """

    def loss(params: Any, batch: Any) -> jax.Array:
        values = jax.vmap(example_loss, in_axes=(None, 0))(params, batch)
        return jnp.mean(values)

    loss.__name__ = f"per_example({getattr(example_loss, '__name__', 'loss')})"
    loss.__wrapped__ = example_loss
    return loss


def squared_error(prediction: jax.Array, target: jax.Array) -> jax.Array:
    """Squared error of one example, summed over its output dimensions.

    Args:
      prediction: the model's output for one example (a scalar or a vector).
      target: the target, same shape.

    Returns:
      ``sum((prediction - target) ** 2)``, a scalar.

    Examples:
      >>> import jgd
      >>> float(jgd.losses.squared_error(3.0, 1.0))
      4.0
    """
    return jnp.sum(optax.losses.squared_error(jnp.asarray(prediction), jnp.asarray(target)))


def softmax_cross_entropy(logits: jax.Array, label: jax.Array) -> jax.Array:
    """Softmax cross-entropy of one example with an integer class label.

    The same quantity as PyTorch's ``nn.CrossEntropyLoss`` for one example.

    Args:
      logits: unnormalized scores, shape ``(num_classes,)``.
      label: the integer class, a scalar.

    Returns:
      ``logsumexp(logits) - logits[label]``, a scalar.

    Examples:
      >>> import jax.numpy as jnp
      >>> import jgd
      >>> round(float(jgd.losses.softmax_cross_entropy(jnp.zeros(10), 3)), 4)  # log(10)
      2.3026
    """
    return optax.losses.softmax_cross_entropy_with_integer_labels(
        jnp.asarray(logits), jnp.asarray(label)
    )


def sigmoid_cross_entropy(logit: jax.Array, label: jax.Array) -> jax.Array:
    """Binary (logistic) cross-entropy of one example, from a logit and a 0/1 label.

    Args:
      logit: the unnormalized score, a scalar (or a vector of independent scores).
      label: 0 or 1 (or a probability), same shape.

    Returns:
      ``-label * log(sigmoid(logit)) - (1 - label) * log(1 - sigmoid(logit))``, summed to a scalar.

    Examples:
      >>> import jgd
      >>> round(float(jgd.losses.sigmoid_cross_entropy(0.0, 1.0)), 4)  # log(2)
      0.6931
    """
    logit = jnp.asarray(logit)
    return jnp.sum(
        optax.losses.sigmoid_binary_cross_entropy(logit, jnp.asarray(label, logit.dtype))
    )


def _class_last(scores: jax.Array) -> jax.Array:
    """Torch puts the classes on axis 1 of (N, C, d1, ...); optax on the last axis."""
    return scores if scores.ndim <= 2 else jnp.moveaxis(scores, 1, -1)


def _mean_over_kept(values: jax.Array, labels: jax.Array, ignore_index: int) -> jax.Array:
    keep = labels != ignore_index
    return jnp.sum(jnp.where(keep, values, 0)) / jnp.sum(keep).astype(values.dtype)


def cross_entropy(
    logits: jax.Array,
    labels: jax.Array,
    *,
    label_smoothing: float = 0.0,
    ignore_index: int = -100,
) -> jax.Array:
    """PyTorch's ``F.cross_entropy`` / ``nn.CrossEntropyLoss()`` of a batch (the mean).

    Args:
      logits: scores, shape ``(N, C)`` or ``(N, C, d1, ...)`` (classes on axis 1, as torch).
      labels: integer classes, shape ``(N,)`` or ``(N, d1, ...)``.
      label_smoothing: torch's: the target is ``(1 - s) * one_hot + s / C``.
      ignore_index: labels equal to it count for nothing (the mean is over the others).

    Returns:
      The mean cross-entropy over the kept labels, a scalar.

    Examples:
      >>> import jax.numpy as jnp, jgd
      >>> round(float(jgd.losses.cross_entropy(jnp.zeros((2, 10)), jnp.array([3, 1]))), 4)
      2.3026
    """
    scores = _class_last(jnp.asarray(logits))
    labels = jnp.asarray(labels)
    classes = scores.shape[-1]
    safe = jnp.where(labels == ignore_index, 0, labels)
    target = optax.smooth_labels(jax.nn.one_hot(safe, classes, dtype=scores.dtype), label_smoothing)
    values = optax.losses.softmax_cross_entropy(scores, target)
    return _mean_over_kept(values, labels, ignore_index)


def nll_loss(log_probs: jax.Array, labels: jax.Array, *, ignore_index: int = -100) -> jax.Array:
    """PyTorch's ``F.nll_loss`` / ``nn.NLLLoss()`` of a batch: ``-mean(log_probs[i, labels[i]])``
    (after ``log_softmax``; classes on axis 1 as in torch).

    Examples:
      >>> import jax, jax.numpy as jnp, jgd
      >>> logp = jax.nn.log_softmax(jnp.zeros((2, 4)))
      >>> round(float(jgd.losses.nll_loss(logp, jnp.array([0, 2]))), 4)  # log(4)
      1.3863
    """
    scores = _class_last(jnp.asarray(log_probs))
    labels = jnp.asarray(labels)
    safe = jnp.where(labels == ignore_index, 0, labels)
    picked = jnp.take_along_axis(scores, safe[..., None], axis=-1)[..., 0]
    return _mean_over_kept(-picked, labels, ignore_index)


def mse_loss(prediction: jax.Array, target: jax.Array) -> jax.Array:
    """PyTorch's ``F.mse_loss`` / ``nn.MSELoss()``: the mean over every element.

    Examples:
      >>> import jax.numpy as jnp, jgd
      >>> float(jgd.losses.mse_loss(jnp.array([[1.0, 2.0]]), jnp.array([[0.0, 0.0]])))
      2.5
    """
    prediction, target = jnp.asarray(prediction), jnp.asarray(target)
    if prediction.shape != target.shape:
        raise ValueError(
            f"prediction has shape {prediction.shape} and target {target.shape}; mse_loss "
            "compares them element by element (torch would broadcast them, usually a bug)."
        )
    return jnp.mean(optax.losses.squared_error(prediction, target))


def bowl_loss(w: jax.Array, batch: Any) -> jax.Array:
    """The convex bowl L(w) = 0.5 (w - 3)², minimum at w = 3; ``batch`` is not used.

    Examples:
      >>> import jax.numpy as jnp, jgd
      >>> float(jgd.problems.bowl_loss(jnp.array(1.0), None))  # 0.5 (1 - 3)²
      2.0
    """
    return 0.5 * (w - 3.0) ** 2


def ravine_loss(w: jax.Array, batch: Any) -> jax.Array:
    """An ill-conditioned quadratic 0.5 (w0² + 50 w1²): curvature 1 along w0, 50 along w1
    (condition number 50), minimum at (0, 0); ``batch`` is not used.

    Examples:
      >>> import jax.numpy as jnp, jgd
      >>> float(jgd.problems.ravine_loss(jnp.array([1.0, 1.0]), None))  # 0.5 (1 + 50)
      25.5
    """
    return 0.5 * (w[0] ** 2 + 50.0 * w[1] ** 2)


def double_well_loss(w: jax.Array, batch: Any) -> jax.Array:
    """w⁴ - 3w² + w: two minima, near -1.30 (global) and 1.13; the start decides which GD finds.
    ``batch`` is not used.

    Examples:
      >>> import jax.numpy as jnp, jgd
      >>> float(jgd.problems.double_well_loss(jnp.array(1.0), None))  # 1 - 3 + 1
      -1.0
    """
    return w**4 - 3 * w**2 + w


def _line_example(theta: jax.Array, example: Any) -> jax.Array:
    return squared_error(example[0] @ theta, example[1])


def _logistic_example(w: jax.Array, example: Any) -> jax.Array:
    return sigmoid_cross_entropy(example[0] @ w, example[1])


def line_loss(theta: jax.Array, batch: Any) -> jax.Array:
    """Mean squared error of a line fit, mean((X θ - y)²), with θ = (slope, intercept).

    Args:
      theta: the params, shape (2,).
      batch: ``(X, y)``: X of shape (n, 2) with columns ``[x, 1]`` (as ``jgd.data.line``), y (n,).

    Examples:
      >>> import jax.numpy as jnp, jgd
      >>> X, y = jnp.array([[1.0, 1.0], [2.0, 1.0]]), jnp.array([3.0, 5.0])  # y = 2x + 1
      >>> float(jgd.problems.line_loss(jnp.array([2.0, 1.0]), (X, y)))
      0.0
      >>> float(jgd.problems.line_loss(jnp.zeros(2), (X, y)))  # (9 + 25) / 2
      17.0
    """
    return per_example(_line_example)(theta, batch)


def logistic_loss(w: jax.Array, batch: Any) -> jax.Array:
    """Mean logistic loss (binary cross-entropy) of σ(X w) against 0/1 labels.

    Args:
      w: the params, shape (d,).
      batch: ``(X, y)``: X of shape (n, d) (``[x, 1]`` rows for ``jgd.data.logistic``), y (n,) of
        0/1 labels.

    Examples:
      >>> import jax.numpy as jnp, jgd
      >>> X, y = jnp.array([[1.0, 1.0], [-1.0, 1.0]]), jnp.array([1.0, 0.0])
      >>> round(float(jgd.problems.logistic_loss(jnp.zeros(2), (X, y))), 4)  # log 2
      0.6931
    """
    return per_example(_logistic_example)(w, batch)
