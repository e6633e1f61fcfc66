"""The seeds' small data sets, generated exactly as the seeds do (NumPy ``default_rng``)."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from jgd import _errors


class Dataset(NamedTuple):
    """``(X, y)``: a pytree, so it can be passed to ``jgd.fit`` as ``data`` directly."""

    X: np.ndarray
    y: np.ndarray

    @property
    def least_squares(self) -> np.ndarray:
        """θ* = argmin mean((X θ - y)²), from the normal equations."""
        return np.linalg.solve(self.X.T @ self.X, self.X.T @ self.y)


def line(m: int = 100, seed: int = 0, noise: float = 0.3) -> Dataset:
    """Seed 003's line fit: ``y = 2x + 1 + N(0, noise²)``, ``x ~ U(0, 1)``, columns ``[x, 1]``.

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
    """Seed 002's "simplified logistic regression": two Gaussian blobs in 1-D, labels 0/1.

    Class 0 around x = -1, class 1 around x = +1 (unit variance), columns ``[x, 1]``; not
    separable, so the logistic loss has a unique finite minimum.

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
