"""The problems of the lesson, in one registry: the tour, the benchmarks, the CLI, the examples and
the tests all train on these, so a number printed in one place is the number tested in another.

A ``Problem`` is a loss, its starting params and its data, with the seeds' way of running it
(``recipe``: ``fit``'s keyword arguments) and, where one is known, its optimum::

    >>> import jgd
    >>> bowl = jgd.problems.get("bowl")
    >>> round(float(bowl.fit().params), 4)  # seed 003's 15 steps of η = 0.3 from w = -2
    2.9763
    >>> sorted(jgd.problems.PROBLEMS)  # doctest: +NORMALIZE_WHITESPACE
    ['bowl', 'double_well', 'edge_of_stability', 'line', 'logistic', 'mlp', 'noise_ball',
     'ravine']

``mlp`` is the seeds' ``Net`` on scikit-learn's 8x8 digits (the default: no download), MNIST, or
synthetic MNIST-shaped rows (uniform pixels, random labels: for timing, not for learning).
"""

from __future__ import annotations

import os
import types
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from jgd import _errors, data, losses, models
from jgd._fit import fit
from jgd._losses import per_example
from jgd._sweep import sweep
from jgd.data import epoch_order

_PLAN = ("batch_size", "epochs", "order")


class Problem(NamedTuple):
    """A loss, its params and data, the seeds' recipe for ``fit``, and what is known of it."""

    name: str
    loss: Callable[[Any, Any], jax.Array]
    params: Any
    data: Any
    recipe: Mapping[str, Any]
    optimum: Any = None
    apply: Callable | None = None  # the model, for classifiers: apply(params, X) -> logits
    test: Any = None  # held-out (X, y), for classifiers
    note: str = ""

    def _kwargs(self, overrides: dict[str, Any]) -> dict[str, Any]:
        recipe = dict(self.recipe)
        if any(k in overrides for k in _PLAN):  # a new batch plan replaces the recipe's whole
            recipe = {k: v for k, v in recipe.items() if k not in _PLAN}
        if "optimizer" in overrides:  # a new optimizer comes with its own learning rate
            recipe.pop("learning_rate", None)
        return {**recipe, **overrides}

    def fit(self, **overrides: Any):
        """``jgd.fit`` of this problem with its recipe; ``overrides`` replace recipe entries.

        A batch plan given (``batch_size``, ``epochs`` or ``order``) replaces the recipe's whole
        plan; an ``optimizer`` given replaces the recipe's optimizer and learning rate.
        """
        return fit(self.loss, self.params, self.data, **self._kwargs(overrides))

    def sweep(self, **overrides: Any):
        """``jgd.sweep`` of this problem with its recipe (e.g. ``learning_rate=[...]``)."""
        return sweep(self.loss, self.params, self.data, **self._kwargs(overrides))

    def accuracy(self, params: Any) -> float:
        """Test accuracy of a classifier's ``params``."""
        if self.apply is None or self.test is None:
            raise ValueError(f"problem {self.name!r} is not a classifier with test data.")
        return models.accuracy(self.apply, params, *self.test)


def _recipe(**kwargs: Any) -> Mapping[str, Any]:
    return types.MappingProxyType(kwargs)


def bowl_loss(w: jax.Array, batch: Any) -> jax.Array:
    """Seed 003's convex bowl L(w) = 0.5 (w - 3)², minimum at w = 3."""
    return 0.5 * (w - 3.0) ** 2


def ravine_loss(w: jax.Array, batch: Any) -> jax.Array:
    """An ill-conditioned quadratic: curvature 1 along w0, 50 along w1 (condition number 50)."""
    return 0.5 * (w[0] ** 2 + 50.0 * w[1] ** 2)


def double_well_loss(w: jax.Array, batch: Any) -> jax.Array:
    """w⁴ - 3w² + w: two minima, near -1.30 (global) and 1.13; the start decides."""
    return w**4 - 3 * w**2 + w


line_loss = per_example(lambda theta, ex: losses.squared_error(ex[0] @ theta, ex[1]))
line_loss.__doc__ = "Mean squared error of the line fit: mean((X θ - y)²), θ = (slope, intercept)."
logistic_loss = per_example(lambda w, ex: losses.sigmoid_cross_entropy(ex[0] @ w, ex[1]))
logistic_loss.__doc__ = "Mean logistic loss of σ(X w) against 0/1 labels."

_NO_DATA = np.zeros(1, np.float32)  # a loss of the params alone still takes a batch


def bowl() -> Problem:
    """Seed 003's bowl: 15 steps of GD with η = 0.3 from w = -2 (the seed prints 2.9763)."""
    recipe = _recipe(optimizer=optax.sgd, learning_rate=0.3, epochs=15)
    return Problem("bowl", bowl_loss, jnp.array(-2.0), _NO_DATA, recipe, optimum=3.0)


def line(m: int = 100, seed: int = 0) -> Problem:
    """Seed 003's line fit, full-batch GD (η = 0.4, 60 epochs) from θ = (-1, -1)."""
    d = data.line(m, seed)
    recipe = _recipe(optimizer=optax.sgd, learning_rate=0.4, epochs=60)
    return Problem("line", line_loss, jnp.array([-1.0, -1.0]), d, recipe, d.least_squares)


def noise_ball(epochs: int = 40) -> Problem:
    """The line fit by SGD with a constant η = 0.1 over the seed's batches (``seed=1``)."""
    p = line()
    order = epoch_order(len(p.data.y), 1, epochs=epochs, seed=1)
    return p._replace(
        name="noise_ball", recipe=_recipe(optimizer=optax.sgd, learning_rate=0.1, order=order)
    )


def ravine() -> Problem:
    """The condition-number-50 quadratic from (-10, 1), GD with η = 0.035 (the bound is 0.04)."""
    recipe = _recipe(optimizer=optax.sgd, learning_rate=0.035, epochs=600)
    return Problem("ravine", ravine_loss, jnp.array([-10.0, 1.0]), _NO_DATA, recipe, np.zeros(2))


def logistic() -> Problem:
    """Seed 002's logistic regression, GD with η = 1 for 500 steps; the optimum by Newton."""
    d = data.logistic()
    recipe = _recipe(optimizer=optax.sgd, learning_rate=1.0, epochs=500)
    return Problem("logistic", logistic_loss, jnp.zeros(2), d, recipe, _newton_logistic(*d))


def double_well(start: float = -2.0) -> Problem:
    """w⁴ - 3w² + w from ``start``, GD with η = 0.01 for 500 steps."""
    recipe = _recipe(optimizer=optax.sgd, learning_rate=0.01, epochs=500)
    w0 = jnp.asarray(start, jnp.float32)
    return Problem("double_well", double_well_loss, w0, _NO_DATA, recipe, optimum=-1.3008)


def mlp(
    source: str = "digits",
    *,
    hidden: int = 128,
    seed: int = 0,
    activation: str = "relu",
    dtype: Any = np.float32,
    mnist_dir: str | os.PathLike | None = None,
    examples: int = 8192,
    width: int = 784,
) -> Problem:
    """The seeds' ``Net`` (width-hidden-10, PyTorch's init) under softmax cross-entropy.

    Args:
      source: ``"digits"`` (scikit-learn's 8x8, width 64), ``"mnist"`` (the IDX files in
        ``mnist_dir``, else the download cache), ``"real"`` (MNIST when found, else digits) or
        ``"synthetic"`` (``examples`` uniform rows of ``width`` pixels, random labels).
      hidden, seed, activation: the model (``jgd.models.MLP``, ``nnx.Rngs(seed)``).
      dtype: the params' and inputs' float dtype.

    The recipe is the seeds': SGD, η = 0.01, batch 64, one epoch.
    """
    splits = _splits(source, mnist_dir, examples, width, seed)
    train, test = (data.Dataset(np.asarray(s.X, dtype), s.y) for s in splits[:2])
    net = models.MLP(train.X.shape[1], hidden, 10, activation=activation, rngs=nnx.Rngs(seed))
    apply, params = models.functional(net)
    params = jax.tree_util.tree_map(lambda p: p.astype(dtype), params)
    recipe = _recipe(optimizer=optax.sgd, learning_rate=0.01, batch_size=64, epochs=1)
    loss = models.classification_loss(apply)
    return Problem("mlp", loss, params, train, recipe, apply=apply, test=test, note=splits.name)


def edge_of_stability(
    source: str = "digits",
    *,
    examples: int = 1000,
    hidden: int = 128,
    seed: int = 0,
    mnist_dir: str | os.PathLike | None = None,
) -> Problem:
    """Cohen et al.'s edge-of-stability setting, at the seeds' scale: full-batch GD on a tanh MLP.

    The model is ``jgd.models.MLP`` (width-hidden-10, tanh, PyTorch's uniform init), the loss
    the squared error against one-hot targets, ``0.5 · mean over examples of ‖f(x) - e_y‖²``, the
    data ``examples`` training images (a fixed random sample, pixels in [0, 1]): 1,000 MNIST
    images with ``source="mnist"``. Cohen et al. (ICLR 2021) train fc-tanh 3072-200-200-10 on
    5,000 CIFAR-10 images; this net has one hidden layer and MNIST's (or the 8x8 digits') inputs,
    so its sharpness starts lower (about 21 on MNIST, 12 on the digits) and GD reaches 2/η sooner.

    Args:
      source: ``"digits"``, ``"mnist"`` or ``"real"``, as for ``mlp``.
      examples: the training images used (at most those of the source).
      hidden, seed: the model's width and init seed.
      mnist_dir: the MNIST IDX files.

    The recipe: plain GD (``optax.sgd``), η = 0.05, full batch, 4,000 steps.
    """
    examples = _errors.positive_int("examples", examples)
    splits = _splits(source, mnist_dir, 0, 0, seed)
    X, y = np.asarray(splits.train.X, np.float32), np.asarray(splits.train.y)
    rows = np.sort(np.random.default_rng(0).permutation(len(y))[: min(examples, len(y))])
    X, y = X[rows], y[rows]
    net = models.MLP(X.shape[1], hidden, 10, activation="tanh", rngs=nnx.Rngs(seed))
    apply, params = models.functional(net)

    def squared_error(p: Any, batch: Any) -> jax.Array:
        return 0.5 * jnp.mean(jnp.sum((apply(p, batch[0]) - batch[1]) ** 2, axis=-1))

    targets = np.eye(10, dtype=np.float32)[y]
    recipe = _recipe(optimizer=optax.sgd, learning_rate=0.05, epochs=4000)
    test = data.Dataset(np.asarray(splits.test.X, np.float32), splits.test.y)
    note = f"{splits.name}, {len(y)} training images"
    return Problem(
        "edge_of_stability",
        squared_error,
        params,
        (X, targets),
        recipe,
        apply=apply,
        test=test,
        note=note,
    )


def _splits(source: str, mnist_dir: Any, examples: int, width: int, seed: int) -> data.DigitSplits:
    """The train and test splits of ``source`` (see ``mlp``)."""
    _errors.one_of("source", source, ("digits", "mnist", "real", "synthetic"))
    if source == "real":
        return data.real_digits(mnist_dir)
    if source == "digits":
        return data.DigitSplits(
            data.digits("train"), data.digits("test"), "scikit-learn 8x8 digits"
        )
    if source == "mnist":
        folder = data.default_dir() if mnist_dir is None else mnist_dir
        return data.DigitSplits(
            data.mnist(folder, "train"), data.mnist(folder, "test"), f"MNIST ({folder})"
        )
    rng = np.random.default_rng(seed)  # "synthetic"
    X = rng.uniform(size=(examples, width)).astype(np.float32)
    y = rng.integers(0, 10, examples).astype(np.int32)
    return data.DigitSplits(data.Dataset(X, y), data.Dataset(X, y), "synthetic MNIST-shaped")


def _newton_logistic(X: np.ndarray, y: np.ndarray, iterations: int = 50) -> np.ndarray:
    """The logistic loss's minimizer by Newton's method in NumPy float64 (the reference)."""
    w = np.zeros(X.shape[1])
    for _ in range(iterations):
        p = 1 / (1 + np.exp(-X @ w))
        H = (X.T * (p * (1 - p))) @ X / len(y)
        w -= np.linalg.solve(H, X.T @ (p - y) / len(y))
    return w


PROBLEMS: dict[str, Callable[..., Problem]] = {
    "bowl": bowl,
    "line": line,
    "noise_ball": noise_ball,
    "ravine": ravine,
    "logistic": logistic,
    "double_well": double_well,
    "mlp": mlp,
    "edge_of_stability": edge_of_stability,
}


def get(name: str, **options: Any) -> Problem:
    """The problem ``name`` (one of ``PROBLEMS``), built with ``options``."""
    _errors.one_of("name", name, tuple(PROBLEMS))
    return PROBLEMS[name](**options)


__all__ = [
    "PROBLEMS",
    "Problem",
    "bowl",
    "bowl_loss",
    "double_well",
    "double_well_loss",
    "edge_of_stability",
    "get",
    "line",
    "line_loss",
    "logistic",
    "logistic_loss",
    "mlp",
    "noise_ball",
    "ravine",
    "ravine_loss",
]
