"""2. The learning rate: η ∈ {0.1, 0.6, 1.9, 2.1} in one sweep, and the bound 2/λ."""

from __future__ import annotations

import numpy as np

import jgd
from jgd import problems
from jgd.tour._report import Row, Section, Spec

ETAS = (0.1, 0.6, 1.9, 2.1)


def _listed(values) -> str:
    return ", ".join(f"{v:g}" for v in values) or "none"


def learning_rate() -> Section:
    """η ∈ {0.1, 0.6, 1.9, 2.1} in one sweep; the bound 2/λ from the curvature."""
    bowl = problems.bowl()
    result = bowl.sweep(learning_rate=list(ETAS), epochs=30, record_params=True)
    history = np.asarray(result.params_history)  # (4, 31)
    curves = 0.5 * (history[:, 1:] - 3.0) ** 2  # L(w) after each step, as the seed records
    bound = jgd.max_stable_learning_rate(bowl.loss, bowl.params, None).learning_rate
    diverged = [eta for eta, d in zip(ETAS, result.diverged, strict=True) if d]
    rows = [
        Row(
            "learning rate: which of 0.1, 0.6, 1.9, 2.1 diverge",
            diverged,
            [2.1],
            fmt=_listed,
        ),
        Row("learning rate: stability bound 2/λ", float(bound), 2.0, 1e-4, fmt="{:.4g}"),
    ]
    note = (
        f"one jgd.sweep call: {len(ETAS)} runs, compile {result.compile_time:.2f}s, "
        f"run {result.run_time * 1e3:.1f}ms"
    )
    return Section(2, TITLE, rows, {"etas": ETAS, "curves": curves}, [note])


def draw(fig, f) -> None:
    ax = fig.subplots()
    for eta, curve in zip(f["etas"], f["curves"], strict=True):
        steps = np.arange(1, len(curve) + 1)
        ax.semilogy(steps, np.maximum(curve, 1e-30), "o-", ms=3, label=f"η = {eta}")
    ax.set(
        xlabel="step", ylabel="L(w) (log scale)", title="Too small is slow; η > 2/λ = 2 diverges"
    )
    ax.legend()


TITLE = "The learning rate"
SPEC = Spec(2, TITLE, "02_learning_rate.png", learning_rate, draw)
