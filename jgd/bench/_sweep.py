"""``jgd bench sweep``: K learning rates in one ``jgd.sweep`` call vs K sequential ``fit`` calls.

Two problems: seed 003's noise ball (SGD, B=1, 4,000 steps of a 2-parameter model: per-step
overhead dominates, the common case for sweeps of small models) and the MLP 64-128-10 on the 8x8
digits (B=32, 5 epochs: compute dominates). Compile time is excluded from both sides.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np

import jgd
from jgd.bench import _harness as hn


def _problems():
    ball, mlp = jgd.problems.noise_ball(), jgd.problems.mlp("digits")
    return {
        "noise ball (P=2, B=1, 4000 steps)": (
            ball,
            {"batch_size": 1, "epochs": 40},
            np.geomspace(0.01, 0.2, 64),
        ),
        "MLP 64-128-10 on digits (B=32, 5 epochs)": (
            mlp,
            {"batch_size": 32, "epochs": 5},
            np.geomspace(0.005, 0.5, 64),
        ),
    }


def _run_time(run, learning_rate, plan) -> float:
    return run(learning_rate=learning_rate, key=0, **plan).run_time


def run(quick: bool, out: str, tiny: bool = False) -> dict[str, Any]:
    Ks = [1, 2] if tiny else [1, 4, 16] if quick else [1, 4, 16, 64]
    rounds = 1 if tiny else 7
    rows = []
    for name, (problem, plan, rates) in _problems().items():
        for K in Ks:
            lrs = [float(r) for r in rates[:: len(rates) // K][:K]]
            times = jgd.timing.interleaved(
                {
                    "sweep": functools.partial(_run_time, problem.sweep, lrs, plan),
                    "one": functools.partial(_run_time, problem.fit, lrs[0], plan),
                },
                rounds=rounds,
            )
            swept, single = times["sweep"].median, times["one"].median
            sequential = sum(problem.fit(learning_rate=lr, key=0, **plan).run_time for lr in lrs)
            rows.append(
                {
                    "problem": name,
                    "K": K,
                    "sweep_seconds": swept,
                    "sequential_seconds": sequential,
                    "single_run_seconds": single,
                    "sweep_over_single": swept / single,
                }
            )
            hn.say(
                f"  {name}: K={K:>3} sweep {swept * 1e3:8.1f} ms, {K} fits "
                f"{sequential * 1e3:8.1f} ms, sweep / one run {swept / single:5.2f}x"
            )
    table = hn.markdown(
        ["problem", "K", "one sweep (ms)", "K fits (ms)", "speed-up", "sweep / one run"],
        [
            [
                r["problem"],
                r["K"],
                f"{r['sweep_seconds'] * 1e3:.1f}",
                f"{r['sequential_seconds'] * 1e3:.1f}",
                f"{r['sequential_seconds'] / r['sweep_seconds']:.1f}x",
                f"{r['sweep_over_single']:.2f}x",
            ]
            for r in rows
        ],
    )
    print(table)
    results = {"quick": quick, "rows": rows}
    files = hn.write(
        out,
        "sweep",
        results,
        "Run time, compile excluded: a sweep and one run alternated over 7 rounds, medians; "
        "the K fits once each, after their compile.\n\n" + table,
        [_figure(rows)],
    )
    print("written:", ", ".join(str(f) for f in files))
    return results


def _figure(rows):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5), layout="constrained")
    for i, problem in enumerate(sorted({r["problem"] for r in rows})):
        rs = [r for r in rows if r["problem"] == problem]
        Ks = [r["K"] for r in rs]
        ax.loglog(
            Ks, [r["sweep_seconds"] for r in rs], "o-", color=f"C{i}", label=f"one sweep: {problem}"
        )
        ax.loglog(
            Ks,
            [r["sequential_seconds"] for r in rs],
            "s--",
            color=f"C{i}",
            label=f"K fits: {problem}",
        )
    ax.set(xlabel="runs K", ylabel="seconds", title="K learning rates: one vmapped sweep vs K fits")
    ax.legend(fontsize=7)
    return fig
