"""5. Momentum and Adam on a ravine (condition number 50): steps to reach a loss."""

from __future__ import annotations

import functools

import numpy as np
import optax

import jgd
from jgd import problems
from jgd.tour._report import Row, Section, Spec

SETUPS = {
    "GD (η=0.035)": (optax.sgd, 0.035),
    "momentum 0.9 (η=0.035)": (functools.partial(optax.sgd, momentum=0.9), 0.035),
    "Nesterov 0.9 (η=0.025)": (functools.partial(optax.sgd, momentum=0.9, nesterov=True), 0.025),
    "Adam (η=0.3)": (optax.adam, 0.3),
}


def _steps(reached: int | None, limit: int) -> str:
    return str(reached) if reached is not None else f"> {limit}"


def ravine(tolerance: float = 1e-6, steps: int = 600) -> Section:
    """Plain GD, momentum, Nesterov and Adam from (-10, 1): steps until the loss < tolerance."""
    rav = problems.ravine()
    bound = float(jgd.max_stable_learning_rate(rav.loss, rav.params, None).learning_rate)
    rows = [
        Row(
            "ravine: stability bound 2/λmax for plain GD",
            bound,
            0.04,
            1e-5,
            "closed form 2/50",
        )
    ]
    paths = {}
    for name, (opt, lr) in SETUPS.items():
        result = rav.fit(optimizer=opt, learning_rate=lr, epochs=steps, record_params=True)
        if result.diverged:
            rows.append(Row(f"ravine: {name} diverged at step", result.diverged_at, fmt="{:d}"))
            continue
        history = np.asarray(result.params_history, np.float64)
        below = np.nonzero(0.5 * (history[:, 0] ** 2 + 50 * history[:, 1] ** 2) < tolerance)[0]
        paths[name] = history
        rows.append(
            Row(
                f"ravine: steps to loss < {tolerance:g}, {name}",
                int(below[0]) if below.size else None,
                fmt=functools.partial(_steps, limit=steps),
            )
        )
    note = (
        "GD's rate is capped by the steep direction (η < 2/50); momentum keeps the step size "
        "and accumulates speed along the shallow floor. Nesterov's look-ahead tightens its "
        "own bound to (2+2μ)/((1+2μ)λ) ≈ 0.027, hence its smaller η."
    )
    return Section(5, TITLE, rows, {"paths": paths}, [note])


def draw(fig, f) -> None:
    ax = fig.subplots()
    a, b = np.meshgrid(np.linspace(-11, 3, 200), np.linspace(-1.5, 1.5, 200))
    levels = np.geomspace(0.01, 120, 15)
    ax.contour(a, b, 0.5 * (a**2 + 50 * b**2), levels=levels, cmap="Greys", linewidths=0.6)
    for name, path in f["paths"].items():
        ax.plot(path[:120, 0], path[:120, 1], ".-", ms=2, lw=0.8, label=name)
    ax.set(
        xlabel="w0 (shallow, λ=1)",
        ylabel="w1 (steep, λ=50)",
        title="First 120 steps on a ravine",
        ylim=(-1.5, 1.5),
    )
    ax.legend(fontsize=8)


TITLE = "Momentum and Adam on a ravine"
SPEC = Spec(5, TITLE, "05_ravine.png", ravine, draw)
