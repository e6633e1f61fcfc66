"""1. Gradient descent on a convex bowl: seed 003's 15 steps of η = 0.3 from w = -2."""

from __future__ import annotations

import numpy as np

from jgd import problems
from jgd.tour._report import Row, Section, Spec, decimals


def quadratic_bowl() -> Section:
    """15 steps of GD with η = 0.3 from w = -2: the seed prints 2.9763."""
    result = problems.bowl().fit(record_params=True)
    row = Row(
        "bowl: final w after 15 steps (η=0.3, w0=-2)",
        float(result.params),
        2.9763,
        decimals("2.9763"),
    )
    return Section(1, TITLE, [row], {"trajectory": np.asarray(result.params_history)}, [])


def draw(fig, f) -> None:
    w = f["trajectory"]
    ax1, ax2 = fig.subplots(1, 2)
    grid = np.linspace(-2.5, 5, 200)
    ax1.plot(grid, 0.5 * (grid - 3) ** 2, color="0.6", label="L(w) = 0.5 (w - 3)²")
    ax1.plot(w, 0.5 * (w - 3) ** 2, "o-", ms=4, label="GD iterates (η = 0.3)")
    ax1.set(xlabel="w", ylabel="L(w)", title="Iterates march down the bowl")
    ax2.plot(np.arange(len(w)), w, "o-", ms=4, label="w_k")
    ax2.axhline(3, ls="--", color="k", lw=1, label="minimum w = 3")
    ax2.set(xlabel="step k", ylabel="w", title=f"w after 15 steps = {w[-1]:.4f}")
    for ax in (ax1, ax2):
        ax.legend()


TITLE = "Gradient descent on a convex bowl"
SPEC = Spec(1, TITLE, "01_bowl.png", quadratic_bowl, draw)
