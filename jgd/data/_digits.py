"""Real handwritten digits that need no download: scikit-learn's 8x8 set (1,797 images)."""

from __future__ import annotations

import os
from typing import NamedTuple

import numpy as np

from jgd.data._synthetic import Dataset


def digits(split: str = "train", test_fraction: float = 0.25, seed: int = 0) -> Dataset:
    """scikit-learn's 8x8 digits (UCI), shipped with scikit-learn: float32 pixels in [0, 1].

    A fixed shuffled split (NumPy ``default_rng(seed)``): the first ``1 - test_fraction`` of the
    shuffled images train, the rest test.

    Returns:
      ``Dataset(X, y)``: X float32 of shape (n, 64), y int32.

    Examples:
      >>> import jgd
      >>> train, test = jgd.data.digits("train"), jgd.data.digits("test")
      >>> train.X.shape[1], len(train.y) + len(test.y)
      (64, 1797)
    """
    if split not in ("train", "test"):
        raise ValueError(f"split={split!r} is not valid; expected 'train' or 'test'.")
    if not 0 < test_fraction < 1:
        raise ValueError(f"test_fraction={test_fraction!r} is not valid; expected 0 < f < 1.")
    from sklearn.datasets import load_digits

    bunch = load_digits()
    X = (bunch.data / 16.0).astype(np.float32)
    y = bunch.target.astype(np.int32)
    perm = np.random.default_rng(seed).permutation(len(y))
    cut = round(len(y) * (1 - test_fraction))
    rows = perm[:cut] if split == "train" else perm[cut:]
    return Dataset(X[rows], y[rows])


class DigitSplits(NamedTuple):
    """A train/test pair of ``Dataset``s and the name of where it came from.

    ``real_digits`` returns one; unpack it (``train, test, name = splits``) or read its fields.

    Examples:
      >>> import jgd
      >>> splits = jgd.data.DigitSplits(jgd.data.digits("train"), jgd.data.digits("test"), "8x8")
      >>> splits.name, splits.train.X.shape, splits.test.X.shape
      ('8x8', (1348, 64), (449, 64))
    """

    train: Dataset
    test: Dataset
    name: str


def real_digits(mnist_dir: str | os.PathLike | None = None) -> DigitSplits:
    """MNIST from ``mnist_dir`` (or the download cache) when present, else scikit-learn's digits.

    Real handwritten digits either way, and never a download: without ``mnist_dir``, MNIST is
    read from ``jgd.data.default_dir()`` when ``download_mnist`` has put it there, and
    scikit-learn's 8x8 digits (``jgd.data.digits``) stand in otherwise.

    Args:
      mnist_dir: a folder of the MNIST IDX files (see ``jgd.data.mnist``); then MNIST or an error.

    Returns:
      ``DigitSplits(train, test, name)``, ``name`` saying which: ``"MNIST (folder)"`` or
      ``"scikit-learn 8x8 digits"``.

    Raises:
      FileNotFoundError: ``mnist_dir`` was given but is not a folder or lacks the files.
      MNISTError: a file in ``mnist_dir`` is truncated or corrupted.

    Examples:
      >>> import jgd
      >>> splits = jgd.data.real_digits()  # MNIST when downloaded, else the 8x8 digits
      >>> splits.name.startswith(("MNIST", "scikit-learn")), splits.train.X.shape[1] in (64, 784)
      (True, True)
    """
    from jgd.data._mnist import default_dir, mnist

    if mnist_dir is not None:
        return DigitSplits(
            mnist(mnist_dir, "train"), mnist(mnist_dir, "test"), f"MNIST ({mnist_dir})"
        )
    cache = default_dir()
    try:
        return DigitSplits(mnist(cache, "train"), mnist(cache, "test"), f"MNIST ({cache})")
    except (FileNotFoundError, ValueError):
        pass
    return DigitSplits(digits("train"), digits("test"), "scikit-learn 8x8 digits")
