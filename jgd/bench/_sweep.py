"""``jgd bench sweep``: K learning rates in one ``jgd.sweep`` call vs K sequential ``fit`` calls.

Two problems: seed 003's noise ball (SGD, B=1, 4,000 steps of a 2-parameter model: per-step
overhead dominates, the common case for sweeps of small models) and the MLP 64-128-10 on the 8x8
digits (B=32, 5 epochs: compute dominates). Compile time is excluded from both sides.
"""

from __future__ import annotations

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


def run(quick: bool, out: str, tiny: bool = False) -> dict[str, Any]:
    Ks = [1, 2] if tiny else [1, 4, 16] if quick else [1, 4, 16, 64]
    rows = []
    for name, (loss, params, data, plan, rates) in _problems().items():
        single = None
        for K in Ks:
            lrs = [float(r) for r in rates[:: len(rates) // K][:K]]
            jgd.sweep(loss, params, data, optimizer=optax.sgd, learning_rate=lrs, key=0, **plan)
            swept = float(
                np.median(
                    [
                        jgd.sweep(
                            loss,
                            params,
                            data,
                            optimizer=optax.sgd,
                            learning_rate=lrs,
                            key=0,
                            **plan,
                        ).run_time
                        for _ in range(3)
                    ]
                )
            )
            fits = [
                jgd.fit(
                    loss, params, data, optimizer=optax.sgd, learning_rate=lr, key=0, **plan
                ).run_time
                for lr in lrs
            ]  # the first compiles (excluded)
            sequential = float(np.sum(fits))
            if K == 1:
                single = float(
                    np.median(
                        fits
                        + [
                            jgd.fit(
                                loss,
                                params,
                                data,
                                optimizer=optax.sgd,
                                learning_rate=lrs[0],
                                key=0,
                                **plan,
                            ).run_time
                            for _ in range(2)
                        ]
                    )
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
        "Run time, compile excluded (median of 3 sweeps).\n\n" + table,
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
