"""8. The seeds' PyTorch model ported to flax NNX, trained beside PyTorch on the same batches."""

from __future__ import annotations

from jgd import data, problems
from jgd.apps import compare
from jgd.tour._report import Row, Section, Spec

INSTALL = (
    "PyTorch is not installed: add it with `pip install 'jgd[torch]'` (on a machine without a "
    "GPU, first `pip install torch --index-url https://download.pytorch.org/whl/cpu`) to run "
    "the same loop in PyTorch beside jgd."
)


def _torch_missing() -> bool:
    try:
        from jgd import torch_baseline

        torch_baseline.require_torch()
    except ImportError:
        return True
    return False


def pytorch_model(mnist_dir: str | None = None, epochs: int = 15) -> Section:
    """The seeds' Net in flax NNX, SGD lr 0.01, batch 64, beside the same run in PyTorch."""
    mlp = problems.mlp("real", mnist_dir=mnist_dir)
    m, width = mlp.data.X.shape
    epochs = 1 if m > 10_000 else epochs
    order = data.epoch_order(m, 64, epochs=epochs, seed=0)
    quantity = f"MLP {width}-128-10 on {mlp.note}: test accuracy after {len(order)} steps"
    notes = [f"data: {mlp.note}, {m} train / {len(mlp.test.y)} test images"]
    # the speed: whole runs of both sides, warm, interleaved; a spread wider than 1.5x is said
    if _torch_missing():
        result = mlp.fit(order=order)
        acc = mlp.accuracy(result.params)
        rows = [Row(quantity, acc)]
        return Section(8, TITLE, rows, {"jgd": result.losses}, [*notes, INSTALL])
    c = compare.compare(compare.Race(mlp, order, seed=0, lr=0.01), rounds=3)
    rows = [
        Row(quantity, c.jgd_accuracy),
        Row(
            "PyTorch vs jgd: max relative loss difference over the run",
            c.max_rel_diff,
            1e-4,
            source="target",
            fmt="{:.1e}",
            rule="below",
        ),
        Row("PyTorch vs jgd: test accuracy", c.jgd_accuracy, c.torch_accuracy, 2e-3, "PyTorch"),
        Row("steps per second (batch 64), PyTorch", c.torch_steps_per_second, fmt="{:,.0f}"),
        Row("steps per second (batch 64), jgd", c.jgd_steps_per_second, fmt="{:,.0f}"),
        Row(
            f"speed ratio jgd / PyTorch (median of {c.speed.rounds} interleaved rounds; range "
            f"{c.speed.low:.1f}-{c.speed.high:.1f}x; PyTorch on {c.threads} threads = XLA's cores)",
            c.speed.median,
            fmt="{:.1f}x",
        ),
    ]
    return Section(8, TITLE, rows, {"jgd": c.jgd_losses, "torch": c.torch_losses}, notes)


def draw(fig, f) -> None:
    ax = fig.subplots()
    ax.plot(f["jgd"], lw=1, label="jgd (flax NNX, one lax.scan)")
    if "torch" in f:
        ax.plot(f["torch"], "--", lw=1, label="PyTorch (the seeds' loop)")
    ax.set(xlabel="step", ylabel="batch loss", title="The same run, step for step")
    ax.legend()


TITLE = "The PyTorch model, ported to flax NNX"
SPEC = Spec(8, TITLE, "08_pytorch.png", pytorch_model, draw, uses_mnist=True)
