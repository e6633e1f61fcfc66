"""9. Batch size (seed 004): the MLP with B ∈ {8, 32, 128, 512}, same epochs."""

from __future__ import annotations

import numpy as np

from jgd import problems
from jgd.tour._report import Row, Section, Spec

BATCHES = (8, 32, 128, 512)


def batch_size(mnist_dir: str | None = None, epochs: int = 10) -> Section:
    """Seed 004: the MLP with B ∈ {8, 32, 128, 512}, same epochs: time per epoch and accuracy."""
    mlp = problems.mlp("real", mnist_dir=mnist_dir)
    rows, table = [], []
    for B in BATCHES:
        # the same learning rate per example seen: η grows with B (the linear scaling rule)
        result = mlp.fit(learning_rate=0.05 * B / 32, batch_size=B, epochs=epochs, key=0)
        acc = mlp.accuracy(result.params)
        per_epoch = result.run_time / epochs
        table.append((B, per_epoch, acc, result.steps))
        rows.append(
            Row(
                f"batch size {B}: ms per epoch; test accuracy after {epochs} epochs",
                (per_epoch * 1e3, acc),
                fmt=lambda v: f"{v[0]:.2f} ms; {v[1]:.4f}",
            )
        )
    notes = [f"{mlp.note}; learning rate 0.05 x B/32 (linear scaling)"]
    return Section(9, TITLE, rows, {"table": table}, notes)


def draw(fig, f) -> None:
    ax1, ax2 = fig.subplots(1, 2)
    B, per_epoch, acc, _ = map(np.array, zip(*f["table"], strict=True))
    ax1.plot(B, per_epoch * 1e3, "o-")
    ax1.set(xscale="log", xlabel="batch size", ylabel="ms per epoch", title="Time per epoch")
    ax2.plot(B, acc, "o-")
    ax2.set(
        xscale="log", xlabel="batch size", ylabel="test accuracy", title="Accuracy, same epochs"
    )


TITLE = "Batch size"
SPEC = Spec(9, TITLE, "09_batch_size.png", batch_size, draw, uses_mnist=True)
