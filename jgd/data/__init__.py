"""Data: the lesson's synthetic sets, scikit-learn's real digits, and MNIST IDX files."""

from jgd.data._digits import DigitSplits, digits, real_digits
from jgd.data._mnist import MNISTError, default_dir, download_mnist, mnist, read_idx
from jgd.data._order import epoch_order
from jgd.data._synthetic import Dataset, line, logistic

__all__ = [
    "Dataset",
    "DigitSplits",
    "MNISTError",
    "default_dir",
    "digits",
    "download_mnist",
    "epoch_order",
    "line",
    "logistic",
    "mnist",
    "read_idx",
    "real_digits",
]
