"""4. The noise ball: SGD with a constant η bounces; decaying η settles (seed 003)."""

from __future__ import annotations

import numpy as np

from jgd import problems, schedules
from jgd.tour._report import Row, Section, Spec, decimals

SCHEDULES = {  # name: (schedule, the seed's printed final distance or None)
    "constant η=0.1": (schedules.inverse_time_decay(0.1, 0.0), "0.182"),
    "η0/(1+γt), γ=0.01": (schedules.inverse_time_decay(0.1, 0.01), "0.009"),
    "η0/(t+1), η0=0.5": (schedules.harmonic(0.5), None),
}


def noise_ball(seeds: int = 256) -> Section:
    """SGD with constant η=0.1 vs η0/(1+γt) (γ=0.01) and η0/(t+1), 40 epochs."""
    ball = problems.noise_ball()
    rows, curves = [], {}
    for name, (schedule, printed) in SCHEDULES.items():
        if printed is None:
            continue
        result = ball.fit(learning_rate=schedule, record_params=True)
        dist = np.linalg.norm(np.asarray(result.params_history)[1:] - ball.optimum, axis=1)
        curves[name] = dist
        q = f"noise ball: final distance, {name}"
        rows.append(Row(q, dist[-1], float(printed), decimals(printed), fmt="{:.3f}"))
    result = ball.sweep(
        learning_rate=[s for s, _ in SCHEDULES.values()],
        seeds=range(seeds),
        batch_size=1,
        epochs=40,
    )
    final = np.linalg.norm(np.asarray(result.params) - ball.optimum, axis=1)
    spread = dict(zip(SCHEDULES, final.reshape(len(SCHEDULES), seeds), strict=True))
    for name, d in spread.items():
        q = np.percentile(d, [10, 50, 90])
        rows.append(
            Row(
                f"noise ball over {seeds} seeds: median final distance, {name}",
                q,
                fmt=lambda q: f"{q[1]:.4f} (10-90%: {q[0]:.4f}-{q[2]:.4f})",
            )
        )
    med = [float(np.median(d)) for d in spread.values()]
    rows.append(
        Row(
            "noise ball: median final distance, η0/(1+γt) below constant η",
            med[1],
            med[0],
            source="constant η",
            rule="below",
        )
    )
    note = (
        f"{len(SCHEDULES) * seeds} SGD runs x 4,000 steps in one jgd.sweep: compile "
        f"{result.compile_time:.2f}s, run {result.run_time:.2f}s"
    )
    return Section(4, TITLE, rows, {"curves": curves, "spread": spread}, [note])


def draw(fig, f) -> None:
    ax1, ax2 = fig.subplots(1, 2)
    for name, dist in f["curves"].items():
        ax1.semilogy(np.arange(1, len(dist) + 1), dist, lw=0.7, label=name)
    ax1.set(xlabel="SGD step", ylabel="‖θ - θ*‖", title="Constant η bounces in a noise ball")
    ax1.legend()
    names = list(f["spread"])
    ax2.boxplot([f["spread"][n] for n in names], showfliers=False)
    ax2.set_xticks(range(1, len(names) + 1), names, fontsize=8)
    ax2.set_yscale("log")
    ax2.set(ylabel="final ‖θ - θ*‖", title=f"Over {len(f['spread'][names[0]])} seeds (one sweep)")


TITLE = "The noise ball and learning-rate schedules"
SPEC = Spec(4, TITLE, "04_noise_ball.png", noise_ball, draw)
