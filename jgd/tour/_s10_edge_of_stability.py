"""10. The edge of stability: full-batch GD raises the sharpness to 2/η, and stays there."""

from __future__ import annotations

import numpy as np

from jgd import problems
from jgd.tour._report import Row, Section, Spec

EVERY = 20  # steps between sharpness records


def edge_of_stability(mnist_dir: str | None = None, steps: int | None = None) -> Section:
    """Cohen et al. (2021) on a tanh MLP: the sharpness (top Hessian eigenvalue) under full-batch
    GD for two learning rates, recorded inside one vmapped run (``sweep(sharpness_every=...)``).

    The seeds teach that GD diverges for η > 2/λ. On a network the curvature is not fixed: GD
    raises the sharpness until it reaches 2/η (progressive sharpening), then hovers there, the
    loss still falling though non-monotonically (the edge of stability).
    """
    eos = problems.edge_of_stability("real", mnist_dir=mnist_dir)
    mnist = eos.data[0].shape[1] == 784
    rates = (0.05, 0.1) if mnist else (0.1, 0.2)  # 2/η above, and just below, the start
    steps = steps or (4000 if mnist else 3000)
    result = eos.sweep(learning_rate=list(rates), epochs=steps, sharpness_every=EVERY)
    sharp = result.sharpness
    late = sharp.steps >= steps // 2
    rows = [Row("sharpness at the start (top Hessian eigenvalue)", float(sharp.values[0, 0]))]
    figure = {"steps": sharp.steps, "rates": rates, "losses": result.losses}
    for i, lr in enumerate(rates):
        edge = 2 / lr
        hover = sharp.values[i, late]
        rows.append(
            Row(
                f"η = {lr}: sharpness over steps {steps // 2}-{steps} [min, max]",
                [hover.min(), hover.max()],
                [edge, edge],
                0.1 * edge,
                "2/η ± 10%",
                "{:.2f}",
            )
        )
        losses = result.losses[i]
        rows.append(
            Row(
                f"η = {lr}: loss at step {steps - 1}, below the loss at step {steps // 2}",
                float(losses[-1]),
                float(losses[steps // 2]),
                source="the run",
                rule="below",
            )
        )
        figure[f"sharpness {lr}"] = sharp.values[i]
    notes = [
        f"{eos.note}; tanh MLP {eos.data[0].shape[1]}-128-10, squared error against one-hot "
        f"targets, full-batch GD for {steps} steps; sharpness every {EVERY} steps by power "
        "iteration on Hessian-vector products, warm-started (mean "
        f"{sharp.iterations[:, 1:].mean():.1f} HVPs a record)",
        "Cohen et al. (ICLR 2021) use fc-tanh 3072-200-200-10 on 5,000 CIFAR-10 images; one "
        "hidden layer on MNIST starts flatter and reaches 2/η within a thousand steps",
    ]
    return Section(10, TITLE, rows, figure, notes)


def draw(fig, f) -> None:
    ax1, ax2 = fig.subplots(1, 2)
    for lr, color in zip(f["rates"], ("C0", "C1"), strict=False):
        ax1.plot(f["steps"], f[f"sharpness {lr}"], color=color, label=f"η = {lr}")
        ax1.axhline(2 / lr, color=color, ls="--", lw=1, label=f"2/η = {2 / lr:g}")
    ax1.set(xlabel="step", ylabel="sharpness (top Hessian eigenvalue)", title="Sharpness")
    ax1.legend()
    for lr, losses, color in zip(f["rates"], f["losses"], ("C0", "C1"), strict=False):
        ax2.plot(np.arange(len(losses)), losses, color=color, label=f"η = {lr}")
    ax2.set(xlabel="step", ylabel="loss", yscale="log", title="Loss (full batch)")
    ax2.legend()


TITLE = "The edge of stability"
SPEC = Spec(10, TITLE, "10_edge_of_stability.png", edge_of_stability, draw, uses_mnist=True)
