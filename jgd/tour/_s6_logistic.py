"""6. Logistic regression by GD (seed 002), and a non-convex loss where the start decides."""

from __future__ import annotations

import numpy as np

from jgd import problems
from jgd.tour._report import Row, Section, Spec

STARTS = np.linspace(-2.0, 2.0, 9)


def _minima(ends) -> str:
    return ", ".join(f"{m:.2f}" for m in ends)


def logistic_and_init() -> Section:
    """Seed 002: GD for logistic regression; a non-convex loss where the start decides."""
    logistic = problems.logistic()
    w = np.asarray(logistic.fit().params, np.float64)
    X, y = logistic.data
    accuracy = float(np.mean(((X @ w) > 0) == (y > 0.5)))
    ends = np.array([float(problems.double_well(s).fit().params) for s in STARTS])  # one compile
    minima = np.unique(np.round(ends, 2))
    rows = [
        Row(
            "logistic regression: GD weights (Newton's method alongside)",
            w,
            logistic.optimum,
            2e-3,
            "Newton",
            "{:.3f}",
        ),
        Row("logistic regression: training accuracy", accuracy, fmt="{:.3f}"),
        Row(
            "non-convex w⁴-3w²+w: minima reached from 9 starts",
            minima,
            [-1.3008, 1.1315],  # the roots of 4w³ - 6w + 1 with positive curvature
            0.01,
            "closed form",
            _minima,
        ),
    ]
    figure = {"data": logistic.data, "w": w, "starts": STARTS, "ends": ends}
    return Section(6, TITLE, rows, figure, [])


def draw(fig, f) -> None:
    ax1, ax2 = fig.subplots(1, 2)
    X, y = f["data"]
    ax1.scatter(X[:, 0], y, s=8, alpha=0.5, label="data (label 0/1)")
    grid = np.linspace(X[:, 0].min(), X[:, 0].max(), 200)
    ax1.plot(grid, 1 / (1 + np.exp(-(f["w"][0] * grid + f["w"][1]))), "r", label="σ(w·x + b)")
    ax1.set(xlabel="x", ylabel="P(y = 1)", title="Logistic regression by GD")
    ax1.legend()
    w = np.linspace(-2.2, 2.2, 300)
    ax2.plot(w, w**4 - 3 * w**2 + w, color="0.5")
    for s, e in zip(f["starts"], f["ends"], strict=True):
        arrow = {"arrowstyle": "->", "color": "C0" if e < 0 else "C3"}
        ax2.annotate("", (e, e**4 - 3 * e**2 + e), (s, s**4 - 3 * s**2 + s), arrowprops=arrow)
    ax2.set(xlabel="w", ylabel="w⁴ - 3w² + w", title="Non-convex: the start picks the minimum")


TITLE = "Logistic regression, and where you start"
SPEC = Spec(6, TITLE, "06_logistic_and_init.png", logistic_and_init, draw)
