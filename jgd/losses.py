"""Per-example losses (thin over ``optax.losses``): combine with ``jgd.per_example``."""

from jgd._losses import sigmoid_cross_entropy, softmax_cross_entropy, squared_error

__all__ = ["sigmoid_cross_entropy", "softmax_cross_entropy", "squared_error"]
