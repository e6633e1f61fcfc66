"""Batches as a NumPy or PyTorch loop draws them: one ``default_rng(seed)`` permutation an epoch."""

from __future__ import annotations

import numpy as np

from jgd import _errors


def epoch_order(
    num_examples: int,
    batch_size: int,
    *,
    epochs: int | None = None,
    steps: int | None = None,
    seed: int = 0,
) -> np.ndarray:
    """Example indices ``(steps, batch_size)``, one shuffled permutation per epoch, cut in batches.

    Each epoch is ``np.random.default_rng(seed).permutation(num_examples)`` (one generator for the
    whole run) cut into ``num_examples // batch_size`` batches; the short last batch is left out.
    Give ``epochs`` (whole epochs) or ``steps`` (the first ``steps`` batches). Pass the result to
    ``jgd.fit(order=...)`` and to a PyTorch loop to run both on the same batches.
    ``jgd.shuffled_order`` is the other order: the one ``fit(batch_size=..., key=...)`` draws.

    Args:
      num_examples: the number of examples, indexed ``0 .. num_examples - 1``.
      batch_size: the examples per batch (at most ``num_examples``).
      epochs: the number of whole epochs to draw (give this or ``steps``).
      steps: the number of batches to draw (give this or ``epochs``).
      seed: the ``np.random.default_rng`` seed.

    Returns:
      An int array of shape ``(steps, batch_size)``, one row of example indices per step.

    Raises:
      ValueError: both or neither of ``epochs`` and ``steps``, a count below 1, or
        ``batch_size > num_examples``.

    Examples:
      >>> import jgd
      >>> order = jgd.data.epoch_order(10, 3, epochs=2, seed=0)
      >>> order.shape  # 3 batches per epoch, one example of each epoch left out
      (6, 3)
      >>> jgd.data.epoch_order(10, 3, steps=4).shape
      (4, 3)
    """
    num_examples = _errors.positive_int("num_examples", num_examples)
    batch_size = _errors.positive_int("batch_size", batch_size)
    if batch_size > num_examples:
        raise ValueError(
            f"batch_size={batch_size} is larger than num_examples={num_examples}; an epoch has "
            "no whole batch."
        )
    if (epochs is None) == (steps is None):
        raise ValueError(f"give epochs or steps, one of them; got epochs={epochs}, steps={steps}.")
    per_epoch = num_examples // batch_size
    if steps is None:
        steps = _errors.positive_int("epochs", epochs) * per_epoch
    steps = _errors.positive_int("steps", steps)
    rng = np.random.default_rng(seed)
    rows = [
        rng.permutation(num_examples)[: per_epoch * batch_size].reshape(per_epoch, batch_size)
        for _ in range(-(-steps // per_epoch))
    ]
    return np.concatenate(rows)[:steps]
