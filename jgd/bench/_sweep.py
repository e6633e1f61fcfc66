"""``jgd bench sweep``: K learning rates in one ``jgd.sweep`` call vs K sequential ``fit`` calls.

Two problems: seed 003's noise ball (SGD, B=1, 4,000 steps of a 2-parameter model: per-step
overhead dominates, the common case for sweeps of small models) and the MLP 64-128-10 on the 8x8
digits (B=32, 5 epochs: compute dominates). Compile time is excluded from both sides.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np
import optax
from flax import nnx

import jgd
from jgd.bench import _harness as hn


def _problems():
    line = jgd.data.line()
    line_loss = jgd.per_example(lambda th, ex: jgd.losses.squared_error(ex[0] @ th, ex[1]))
    digits = jgd.data.digits("train")
    apply, params = jgd.models.functional(jgd.models.MLP(64, 128, 10, rngs=nnx.Rngs(0)))
    return {
        "noise ball (P=2, B=1, 4000 steps)": (
            line_loss,
            np.array([-1.0, -1.0], np.float32),
            line,
            {"batch_size": 1, "epochs": 40},
            np.geomspace(0.01, 0.2, 64),
        ),
        "MLP 64-128-10 on digits (B=32, 5 epochs)": (
            jgd.models.classification_loss(apply),
            params,
            tuple(digits),
            {"batch_size": 32, "epochs": 5},
            np.geomspace(0.005, 0.5, 64),
        ),
    }


def _interleaved(sweep, single, rounds: int) -> tuple[float, float]:
    """Median run times of a sweep and of one run, alternated (after a warm-up of each)."""
    sweep(), single()
    times = [(sweep().run_time, single().run_time) for _ in range(rounds)]
    return float(np.median([t[0] for t in times])), float(np.median([t[1] for t in times]))


def run(quick: bool, out: str, tiny: bool = False) -> dict[str, Any]:
    Ks = [1, 2] if tiny else [1, 4, 16] if quick else [1, 4, 16, 64]
    rounds = 1 if tiny else 7
    rows = []
    for name, (loss, params, data, plan, rates) in _problems().items():
        for K in Ks:
            lrs = [float(r) for r in rates[:: len(rates) // K][:K]]
            common = dict(optimizer=optax.sgd, key=0, **plan)
            args = (loss, params, data)
            swept, single = _interleaved(
                functools.partial(jgd.sweep, *args, learning_rate=lrs, **common),
                functools.partial(jgd.fit, *args, learning_rate=lrs[0], **common),
                rounds,
            )
            sequential = sum(
                jgd.fit(loss, params, data, learning_rate=lr, **common).run_time for lr in lrs
            )
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
            print(
                f"  {name}: K={K:>3} sweep {swept * 1e3:8.1f} ms, {K} fits "
                f"{sequential * 1e3:8.1f} ms, sweep / one run {swept / single:5.2f}x",
                flush=True,
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
