"""3. Full batch vs mini-batch vs SGD on seed 003's line fit, beside the seed's NumPy loop."""

from __future__ import annotations

import numpy as np

from jgd import data, problems
from jgd.tour._report import Row, Section, Spec

RUNS = {  # name: (batch size, epochs, η), seed 003's cell 7
    "full batch": (100, 60, 0.4),
    "mini-batch B=10": (10, 8, 0.4),
    "SGD B=1": (1, 3, 0.1),
}


def numpy_descend(X, y, batch_size, epochs, eta, seed=0) -> np.ndarray:
    """Seed 003's ``descend`` in NumPy float64, written as the seed writes it: the reference."""
    g, theta = np.random.default_rng(seed), np.array([-1.0, -1.0])
    for _ in range(epochs):
        order = g.permutation(len(y))
        for s in range(0, len(y), batch_size):
            Xb, yb = X[order[s : s + batch_size]], y[order[s : s + batch_size]]
            theta = theta - eta * (2 / len(yb)) * (Xb.T @ (Xb @ theta - yb))
    return theta


def batch_variants() -> Section:
    """Seed 003's cell 7: GD (60 epochs, η=0.4), B=10 (8 epochs, η=0.4), SGD (3 epochs, η=0.1)."""
    line = problems.line()
    X, y = line.data
    rows = [Row("line fit: least-squares θ*", line.optimum, [1.961, 0.998], 5e-4, fmt="{:.3f}")]
    runs = {}
    for name, (B, epochs, eta) in RUNS.items():
        order = data.epoch_order(len(y), B, epochs=epochs, seed=0)
        result = line.fit(learning_rate=eta, order=order, record_params=True)
        path = np.asarray(result.params_history)
        full_loss = np.mean((path @ X.T - y) ** 2, axis=1)
        runs[name] = {"path": path, "loss": full_loss, "seen": np.arange(len(path)) * B}
        rows += [
            Row(
                f"line fit, {name}: final θ (NumPy loop alongside)",
                np.asarray(result.params),
                numpy_descend(X, y, B, epochs, eta),
                5e-4,
                "NumPy",
                "{:.3f}",
            ),
            Row(f"line fit, {name}: loss after {len(path) - 1} updates", full_loss[-1]),
        ]
    figure = {"runs": runs, "grid": _loss_grid(X, y, line.optimum), "theta_star": line.optimum}
    return Section(3, TITLE, rows, figure, [])


def _loss_grid(X, y, center, span=3.2, n=120):
    a = np.linspace(center[0] - span, center[0] + span, n)
    b = np.linspace(center[1] - span, center[1] + span, n)
    A, B = np.meshgrid(a, b)
    thetas = np.stack([A.ravel(), B.ravel()], 1)
    Z = np.mean((thetas @ X.T - y) ** 2, axis=1).reshape(A.shape)
    return A, B, Z


def draw(fig, f) -> None:
    ax1, ax2 = fig.subplots(1, 2)
    A, B, Z = f["grid"]
    levels = np.geomspace(Z.min() + 1e-3, Z.max(), 18)
    ax1.contour(A, B, Z, levels=levels, cmap="Greys", linewidths=0.6)
    for name, run in f["runs"].items():
        ax1.plot(run["path"][:, 0], run["path"][:, 1], ".-", ms=2, lw=0.8, label=name)
        ax2.semilogy(run["seen"], run["loss"], lw=1, label=name)
    ax1.plot(*f["theta_star"], "k*", ms=12, label="θ* (least squares)")
    ax1.set(xlabel="θ0 (slope)", ylabel="θ1 (intercept)", title="Paths over the loss contours")
    ax2.set(xlabel="examples seen", ylabel="full-data loss", title="Progress per example seen")
    ax1.legend(fontsize=8)
    ax2.legend(fontsize=8)


TITLE = "Full batch vs mini-batch vs SGD"
SPEC = Spec(3, TITLE, "03_batch_variants.png", batch_variants, draw)
