"""``jgd bench ad``'s tables and figures, from the rows ``_ad`` measured."""

from __future__ import annotations

from typing import Any

import jgd
from jgd.bench import _harness as hn
from jgd.bench._ad_torch import PEERS


def table(costs: list[dict], slopes: dict[str, dict], jac: list[dict]) -> str:
    Ps = sorted({r["P"] for r in costs})
    by = {(r["P"], r["mode"]): r for r in costs}
    names = [*jgd.MODES, *[p for p in PEERS if any(r["mode"] == p for r in costs)]]

    def cells(mode, fmt):
        return [fmt(by[(P, mode)]) if (P, mode) in by else "-" for P in Ps]

    def num(x, spec=".2f"):
        return "-" if x is None else format(x, spec)

    part1 = hn.markdown(
        ["mode", *[f"P={P:,}" for P in Ps], "time slope (points)", "FLOP slope", "theory"],
        [
            [
                mode,
                *cells(mode, lambda r: f"{r['cost_in_marginal_passes']:,.1f}"),
                f"{num(slopes[mode]['time'])} ({slopes[mode]['time_points']})",
                num(slopes[mode]["flops"]),
                slopes[mode]["theory"],
            ]
            for mode in jgd.MODES
        ],
    )
    part2 = hn.markdown(
        ["gradient", *[f"P={P:,}" for P in Ps]],
        [[mode, *cells(mode, lambda r: f"{r['seconds'] * 1e3:,.3f}")] for mode in names],
    )
    part3 = hn.markdown(
        ["mode", *[f"P={P:,}" for P in Ps]],
        [
            [mode, *cells(mode, lambda r: num((r["xla_memory_bytes"] or 0) / 2**20))]
            for mode in jgd.MODES
        ],
    )
    libs = [lib for lib in ("jax", "torch") if any(f"{lib} jacfwd" in r for r in jac)]
    part4 = hn.markdown(
        [
            "n",
            "m",
            *[f"{lib} {k} (ms)" for lib in libs for k in ("jacfwd", "jacrev")],
            *[f"{lib} faster" for lib in libs],
        ],
        [
            [
                r["n"],
                r["m"],
                *[f"{r[f'{lib} {k}'] * 1e3:.3f}" for lib in libs for k in ("jacfwd", "jacrev")],
                *[_winner(r, lib) for lib in libs],
            ]
            for r in jac
        ],
    )
    return (
        "Cost of one gradient in forward passes (time; median). Time slopes are fitted over the "
        "points where per-call overhead is under 10%; FLOP slopes from XLA's cost analysis:\n\n"
        f"{part1}\n\nSeconds per gradient (ms), jgd's modes and torch.func (eager):\n\n{part2}\n\n"
        f"XLA memory of each compiled gradient (temporaries + outputs, MiB):\n\n{part3}\n\n"
        f"Jacobian of tanh(W2 tanh(W1 x)), f: R^n -> R^m (median):\n\n{part4}"
    )


def _winner(row: dict[str, Any], lib: str) -> str:
    fwd, rev = row[f"{lib} jacfwd"], row[f"{lib} jacrev"]
    return f"jacfwd {rev / fwd:.1f}x" if fwd < rev else f"jacrev {fwd / rev:.1f}x"


def figures(costs: list[dict], jac: list[dict]) -> list[Any]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig1, (a1, a2) = plt.subplots(1, 2, figsize=(11, 4.5), layout="constrained")
    for mode in jgd.MODES:
        pts = sorted(
            (r["P"], r["cost_in_marginal_passes"], r["cost_in_flops"])
            for r in costs
            if r["mode"] == mode
        )
        P, t, f = zip(*pts, strict=True)
        a1.loglog(P, t, "o-", label=mode)
        a2.loglog(P, f, "o-", label=mode)
    a1.set(xlabel="parameters P", ylabel="forward passes (time)", title="Gradient cost by time")
    a2.set(
        xlabel="parameters P", ylabel="forward passes (FLOPs)", title="Gradient cost by XLA FLOPs"
    )
    for a in (a1, a2):
        a.legend(fontsize=8)
    fig2, axes = plt.subplots(1, 2, figsize=(11, 4.5), layout="constrained")
    for ax, vary in zip(axes, ("n", "m"), strict=True):
        rows = [r for r in jac if r["vary"] == vary]
        xs = [r[vary] for r in rows]
        for key, style in (
            ("jax jacfwd", "o-"),
            ("jax jacrev", "s-"),
            ("torch jacfwd", "o--"),
            ("torch jacrev", "s--"),
        ):
            if key in rows[0]:
                ax.loglog(xs, [r[key] * 1e3 for r in rows], style, label=key)
        other = "m" if vary == "n" else "n"
        ax.set(xlabel=vary, ylabel="ms", title=f"Jacobian crossover, {other} = {rows[0][other]}")
        ax.legend(fontsize=8)
    return [fig1, fig2]
