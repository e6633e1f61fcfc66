"""The lesson's small synthetic data sets, drawn with NumPy's ``default_rng`` (reproducible)."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from jgd import _errors


class Dataset(NamedTuple):
    """Inputs and targets, ``(X, y)``: a NamedTuple, so a pytree ``jgd.fit`` takes as ``data``.

    Every loader of ``jgd.data`` returns one; unpack it (``X, y = data``) or read its fields.

    Examples:
      >>> import numpy as np, jgd
      >>> data = jgd.data.Dataset(np.array([[1.0, 1.0], [2.0, 1.0]]), np.array([3.0, 5.0]))
      >>> data.X.shape, data.y.tolist()
      ((2, 2), [3.0, 5.0])
      >>> data.least_squares.round(6).tolist()  # y = 2x + 1 exactly
      [2.0, 1.0]
    """

    X: np.ndarray
    y: np.ndarray

    @property
    def least_squares(self) -> np.ndarray:
        """θ* = argmin mean((X θ - y)²), from the normal equations (X of full column rank)."""
        return np.linalg.solve(self.X.T @ self.X, self.X.T @ self.y)


def line(m: int = 100, seed: int = 0, noise: float = 0.3) -> Dataset:
    """Noisy points on a line: ``y = 2x + 1 + N(0, noise²)``, ``x ~ U(0, 1)``, columns ``[x, 1]``.

    Args:
      m: the number of points.
      seed: the ``np.random.default_rng`` seed.
      noise: the standard deviation of the noise.

    Returns:
      ``Dataset(X, y)``: X of shape (m, 2) (``[x, 1]``, so θ = (slope, intercept)), y of shape (m,).

    Examples:
      >>> import jgd
      >>> data = jgd.data.line()
      >>> data.X.shape, [round(float(v), 3) for v in data.least_squares]
      ((100, 2), [1.961, 0.998])
    """
    m = _errors.positive_int("m", m)
    rng = np.random.default_rng(seed)
    x = rng.uniform(0, 1, m)
    y = 2.0 * x + 1.0 + rng.normal(0, noise, m)
    return Dataset(np.c_[x, np.ones(m)], y)


def logistic(m: int = 200, seed: int = 0) -> Dataset:
    """Data for a simple logistic regression: two overlapping Gaussian blobs in 1-D, labels 0/1.

    Class 0 around x = -1, class 1 around x = +1 (unit variance), columns ``[x, 1]``; not
    separable, so the logistic loss has a unique finite minimum. Labels alternate 0, 1, 0, ...

    Args:
      m: the number of points.
      seed: the ``np.random.default_rng`` seed.

    Returns:
      ``Dataset(X, y)``: X of shape (m, 2), y float64 of shape (m,).

    Examples:
      >>> import jgd
      >>> data = jgd.data.logistic()
      >>> data.X.shape, sorted(set(data.y.tolist()))
      ((200, 2), [0.0, 1.0])
    """
    m = _errors.positive_int("m", m)
    rng = np.random.default_rng(seed)
    y = (np.arange(m) % 2).astype(np.float64)
    x = rng.normal(2 * y - 1, 1.0)
    return Dataset(np.c_[x, np.ones(m)], y)
