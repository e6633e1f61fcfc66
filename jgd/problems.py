"""The lesson's problems in one registry; the tour, the benchmarks, the CLI, the examples and the
tests all train on these, so a number printed in one place is the number tested in another."""

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

from jgd import _errors, data, models
from jgd._fit import fit
from jgd._losses import bowl_loss, double_well_loss, line_loss, logistic_loss, ravine_loss
from jgd._sweep import sweep
from jgd.data import epoch_order

_PLAN = ("batch_size", "epochs", "order")


class Problem(NamedTuple):
    """A loss, its starting params and data, the recipe ``fit`` runs it with, and its optimum.

    Get one with ``get``. ``recipe`` is ``jgd.fit``'s keyword arguments, ``optimum`` the minimizer
    (None if unknown); a classifier has its model ``apply(params, X)`` and held-out ``test`` data.

    Examples:
      >>> import jgd
      >>> p = jgd.problems.get("ravine")
      >>> p.name, p.params.tolist(), p.recipe["learning_rate"], p.optimum.tolist()
      ('ravine', [-10.0, 1.0], 0.035, [0.0, 0.0])
    """

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
        """``jgd.fit`` of this problem with its recipe, ``overrides`` replacing entries: a batch
        plan given (``batch_size``, ``epochs`` or ``order``) replaces the recipe's whole plan, an
        ``optimizer`` given the recipe's optimizer and learning rate."""
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


_NO_DATA = np.zeros(1, np.float32)  # a loss of the params alone still takes a batch


def bowl() -> Problem:
    """The convex bowl L(w) = 0.5 (w - 3)² (``bowl_loss``): 15 steps of GD, η = 0.3, from w = -2.

    Examples:
      >>> import jgd
      >>> round(float(jgd.problems.bowl().fit().params), 4)  # 3 - 5 · 0.7¹⁵
      2.9763
    """
    recipe = _recipe(optimizer=optax.sgd, learning_rate=0.3, epochs=15)
    return Problem("bowl", bowl_loss, jnp.array(-2.0), _NO_DATA, recipe, optimum=3.0)


def line(m: int = 100, seed: int = 0) -> Problem:
    """The line fit of ``jgd.data.line(m, seed)``: full-batch GD, η = 0.4, 60 epochs, θ₀ = (-1, -1).

    Examples:
      >>> import jgd
      >>> jgd.problems.line().optimum.round(3).tolist()  # least squares, near the true (2, 1)
      [1.961, 0.998]
    """
    d = data.line(m, seed)
    recipe = _recipe(optimizer=optax.sgd, learning_rate=0.4, epochs=60)
    return Problem("line", line_loss, jnp.array([-1.0, -1.0]), d, recipe, d.least_squares)


def noise_ball(epochs: int = 40) -> Problem:
    """The line fit by SGD, one example a step, constant η = 0.1, for ``epochs`` epochs of
    ``jgd.data.epoch_order(100, 1, seed=1)``: the iterates settle in a ball around the optimum.

    Examples:
      >>> import jgd
      >>> jgd.problems.noise_ball(epochs=2).recipe["order"].shape  # 2 epochs of 100 steps
      (200, 1)
    """
    p = line()
    order = epoch_order(len(p.data.y), 1, epochs=epochs, seed=1)
    recipe = _recipe(optimizer=optax.sgd, learning_rate=0.1, order=order)
    return p._replace(name="noise_ball", recipe=recipe)


def ravine() -> Problem:
    """The quadratic ``ravine_loss`` from (-10, 1): 600 GD steps, η = 0.035 (stable below 2/50).

    Examples:
      >>> import jgd
      >>> jgd.problems.ravine().recipe["epochs"]
      600
    """
    recipe = _recipe(optimizer=optax.sgd, learning_rate=0.035, epochs=600)
    return Problem("ravine", ravine_loss, jnp.array([-10.0, 1.0]), _NO_DATA, recipe, np.zeros(2))


def logistic() -> Problem:
    """Logistic regression on ``jgd.data.logistic()``: GD, η = 1, 500 steps; the optimum by Newton.

    Examples:
      >>> import jgd
      >>> jgd.problems.logistic().optimum.round(3).tolist()  # (slope, intercept)
      [2.348, -0.045]
    """
    d = data.logistic()
    recipe = _recipe(optimizer=optax.sgd, learning_rate=1.0, epochs=500)
    return Problem("logistic", logistic_loss, jnp.zeros(2), d, recipe, _newton_logistic(*d))


def double_well(start: float = -2.0) -> Problem:
    """w⁴ - 3w² + w (``double_well_loss``) from ``start``, GD with η = 0.01 for 500 steps.

    Examples:
      >>> import jgd
      >>> [round(float(jgd.problems.double_well(s).fit().params), 2) for s in (-2.0, 2.0)]
      [-1.3, 1.13]
    """
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
    """The lesson's MLP (PyTorch's ``Net``: width-hidden-10, PyTorch's init), softmax cross-entropy.

    The recipe: SGD, η = 0.01, batch 64, one epoch.

    Args:
      source: ``"digits"`` (scikit-learn's 8x8, width 64), ``"mnist"`` (the IDX files in
        ``mnist_dir``, else the download cache), ``"real"`` (MNIST when found, else digits) or
        ``"synthetic"`` (``examples`` uniform rows of ``width`` pixels, random labels).
      hidden: the hidden layer's width (``jgd.models.MLP``).
      seed: the init seed (``nnx.Rngs(seed)``).
      activation: the hidden layer's activation.
      dtype: the params' and inputs' float dtype.
      mnist_dir: the folder of the MNIST IDX files.

    Examples:
      >>> import jgd
      >>> jgd.problems.mlp().note  # the default source needs no download
      'scikit-learn 8x8 digits'
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
    """Cohen et al.'s edge of stability (ICLR 2021: fc-tanh on CIFAR-10), scaled down to one MLP.

    The model is ``jgd.models.MLP`` (width-hidden-10, tanh), the loss ``0.5 · mean ‖f(x) - e_y‖²``
    against one-hot targets, the data ``examples`` training images (a fixed random sample), the
    recipe GD, η = 0.05, full batch, 4,000 steps; sharpness starts near 21 (MNIST), 12 (digits).

    Args:
      source: ``"digits"``, ``"mnist"`` or ``"real"``, as for ``mlp``.
      examples: the training images used (at most those of the source).
      hidden: the hidden layer's width.
      seed: the init seed.
      mnist_dir: the MNIST IDX files.

    Examples:
      >>> import jgd
      >>> jgd.problems.edge_of_stability(examples=100).data[1].shape  # one-hot targets
      (100, 10)
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
    return Problem("edge_of_stability", squared_error, params, (X, targets), recipe, apply=apply,
                   test=test, note=f"{splits.name}, {len(y)} training images")  # fmt: skip


def _splits(source: str, mnist_dir: Any, examples: int, width: int, seed: int) -> data.DigitSplits:
    """The train and test splits of ``source`` (see ``mlp``)."""
    _errors.one_of("source", source, ("digits", "mnist", "real", "synthetic"))
    if source == "real":
        return data.real_digits(mnist_dir)
    if source == "digits":
        return data.DigitSplits(data.digits("train"), data.digits("test"),
                                "scikit-learn 8x8 digits")  # fmt: skip
    if source == "mnist":
        folder = data.default_dir() if mnist_dir is None else mnist_dir
        return data.DigitSplits(data.mnist(folder, "train"), data.mnist(folder, "test"),
                                f"MNIST ({folder})")  # fmt: skip
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
    "bowl": bowl, "line": line, "noise_ball": noise_ball, "ravine": ravine, "logistic": logistic,
    "double_well": double_well, "mlp": mlp, "edge_of_stability": edge_of_stability}  # fmt: skip
"""Each problem's builder by name; ``get(name, **options)`` calls one.

Examples:
  >>> import jgd
  >>> sorted(jgd.problems.PROBLEMS)
  ['bowl', 'double_well', 'edge_of_stability', 'line', 'logistic', 'mlp', 'noise_ball', 'ravine']
"""


def get(name: str, **options: Any) -> Problem:
    """The problem ``name`` (a key of ``PROBLEMS``), built with ``options`` (its builder's).

    Raises:
      ValueError: ``name`` is not in ``PROBLEMS``.

    Examples:
      >>> import jgd
      >>> float(jgd.problems.get("double_well", start=1.0).params)
      1.0
    """
    _errors.one_of("name", name, tuple(PROBLEMS))
    return PROBLEMS[name](**options)


__all__ = ["PROBLEMS", "Problem", "bowl", "bowl_loss", "double_well", "double_well_loss",
           "edge_of_stability", "get", "line", "line_loss", "logistic", "logistic_loss", "mlp",
           "noise_ball", "ravine", "ravine_loss"]  # fmt: skip
