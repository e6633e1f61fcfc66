"""``jgd bench ad``: the cost of one gradient by each mode against P, and jacfwd vs jacrev.

Every gradient is timed jitted, compiled and warmed up first, blocked, as the median of several
calls, and divided by the median time of one forward pass (one loss evaluation) of the same
model and batch. Slopes are fitted on log-log axes over the sizes where a forward pass is
compute-bound (not dominated by per-call overhead).
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

import jgd
from jgd.bench import _harness as hn

THEORY = {
    "reverse": 0.0,
    "forward": 1.0,
    "forward_gradient": 0.0,
    "fd_forward": 1.0,
    "fd_central": 1.0,
}


def _problem(hidden: int, batch: int = 64):
    mlp = jgd.problems.mlp("synthetic", hidden=hidden, examples=batch)
    return mlp.loss, mlp.params, jax.device_put(tuple(mlp.data))


def gradient_costs(hidden_all: list[int], hidden_p_modes: list[int]) -> list[dict[str, Any]]:
    """One row per (width, mode): seconds, cost in forward passes, peak RSS."""
    rows = []
    for hidden in hidden_all:
        loss, params, batch = _problem(hidden)
        P = sum(x.size for x in jax.tree_util.tree_leaves(params))
        forward_jit = jax.jit(loss)
        one = hn.timeit(lambda f=forward_jit, p=params, b=batch: f(p, b), repeats=21).median
        # A single small forward pass is dominated by per-call overhead; its marginal compute
        # cost (a 16x larger batch, divided by 16) is the unit the slopes are fitted in.
        big = jax.tree_util.tree_map(lambda a: jnp.concatenate([a] * 16), batch)
        marginal = hn.timeit(lambda f=forward_jit, p=params, b=big: f(p, b), repeats=11).median
        marginal /= 16
        for mode in jgd.MODES:
            if mode in ("forward", "fd_forward", "fd_central") and hidden not in hidden_p_modes:
                continue
            fn = jax.jit(jgd.grad(loss, mode))
            key = jax.random.key(0)
            jax.block_until_ready(fn(params, batch, key=key))  # compile outside the clock
            reset = hn.reset_peak_rss()
            heavy = mode in ("forward", "fd_forward", "fd_central")
            t = hn.timeit(
                lambda fn=fn, p=params, b=batch, k=key: fn(p, b, key=k),
                repeats=3 if heavy else 21,
                warmup=0 if heavy else 1,
            )
            rows.append(
                {
                    "hidden": hidden,
                    "P": int(P),
                    "mode": mode,
                    "seconds": t.median,
                    "spread": [t.min, t.max],
                    "forward_pass_seconds": one,
                    "cost_in_forward_passes": t.median / one,
                    "marginal_forward_seconds": marginal,
                    "cost_in_marginal_passes": t.median / marginal,
                    "peak_rss_mb": hn.peak_rss_mb() if reset else None,
                }
            )
            hn.say(
                f"  P={P:>8,} {mode:<17} {t.median * 1e3:10.2f} ms "
                f"= {t.median / one:10.1f} forward passes"
            )
    return rows


def jacobian_crossover(sizes: list[int], fixed: int = 64, width: int = 256) -> list[dict]:
    """jacfwd vs jacrev for f: R^n -> R^m, f(x) = tanh(W2 tanh(W1 x)), as n and m vary."""
    rows = []
    for vary in ("n", "m"):
        for size in sizes:
            n, m = (size, fixed) if vary == "n" else (fixed, size)
            k1, k2, k3 = jax.random.split(jax.random.key(1), 3)
            W1 = jax.random.normal(k1, (width, n)) / np.sqrt(n)
            W2 = jax.random.normal(k2, (m, width)) / np.sqrt(width)
            x = jax.random.normal(k3, (n,))

            def f(x, W1=W1, W2=W2):
                return jnp.tanh(W2 @ jnp.tanh(W1 @ x))

            fwd, rev = jax.jit(jax.jacfwd(f)), jax.jit(jax.jacrev(f))
            tf = hn.timeit(lambda fwd=fwd, x=x: fwd(x), repeats=21).median
            tr = hn.timeit(lambda rev=rev, x=x: rev(x), repeats=21).median
            rows.append({"vary": vary, "n": n, "m": m, "jacfwd": tf, "jacrev": tr})
    return rows


def run(quick: bool, out: str, tiny: bool = False) -> dict[str, Any]:
    hidden_all = [8, 16, 32] if quick else [8, 16, 32, 64, 128, 512]
    hidden_p = [8, 16, 32] if quick else [8, 16, 32, 64]
    if tiny:
        hidden_all = hidden_p = [1, 2]
    hn.say("gradient cost per mode (MLP 784-h-10, batch 64):")
    costs = gradient_costs(hidden_all, hidden_p)
    slopes = {}
    for mode in jgd.MODES:
        pts = [(r["P"], r["cost_in_marginal_passes"]) for r in costs if r["mode"] == mode]
        slopes[mode] = hn.slope(*zip(*pts, strict=True)) if len(pts) > 1 else None
    jac = jacobian_crossover(
        [4, 16] if tiny else [4, 16, 64, 256] if quick else [4, 16, 64, 256, 1024]
    )
    table = _table(costs, slopes, jac)
    print(table)
    results = {
        "quick": quick,
        "gradient_costs": costs,
        "slopes": slopes,
        "theory": THEORY,
        "jacobian": jac,
    }
    files = hn.write(out, "ad", results, table, _figures(costs, jac))
    print("written:", ", ".join(str(f) for f in files))
    return results


def _table(costs, slopes, jac) -> str:
    Ps = sorted({r["P"] for r in costs})
    by = {(r["P"], r["mode"]): r for r in costs}
    rows = []
    for mode in jgd.MODES:
        cells = [
            f"{by[(P, mode)]['cost_in_forward_passes']:,.1f}" if (P, mode) in by else "-"
            for P in Ps
        ]
        s = slopes[mode]
        rows.append([mode, *cells, "-" if s is None else f"{s:.2f}", f"{THEORY[mode]:.0f}"])
    part1 = hn.markdown(["mode", *[f"P={P:,}" for P in Ps], "slope", "theory"], rows)
    mem = hn.markdown(
        ["mode", *[f"P={P:,}" for P in Ps]],
        [
            [
                mode,
                *[
                    f"{by[(P, mode)]['peak_rss_mb']:.0f}"
                    if (P, mode) in by and by[(P, mode)]["peak_rss_mb"]
                    else "-"
                    for P in Ps
                ],
            ]
            for mode in jgd.MODES
        ],
    )
    part2 = hn.markdown(
        ["vary", "n", "m", "jacfwd (ms)", "jacrev (ms)", "faster"],
        [
            [
                r["vary"],
                r["n"],
                r["m"],
                f"{r['jacfwd'] * 1e3:.3f}",
                f"{r['jacrev'] * 1e3:.3f}",
                "jacfwd" if r["jacfwd"] < r["jacrev"] else "jacrev",
            ]
            for r in jac
        ],
    )
    return (
        "Cost of one gradient in forward passes (median; slope of log cost vs log P):\n\n"
        f"{part1}\n\nPeak RSS of the process while timing each mode (MB):\n\n{mem}\n\n"
        f"Jacobian of f: R^n -> R^m (median time):\n\n{part2}"
    )


def _figures(costs, jac):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig1, ax = plt.subplots(figsize=(7, 4.5), layout="constrained")
    for mode in jgd.MODES:
        pts = sorted((r["P"], r["cost_in_forward_passes"]) for r in costs if r["mode"] == mode)
        ax.loglog(*zip(*pts, strict=True), "o-", label=mode)
    ax.set(
        xlabel="parameters P",
        ylabel="cost of one gradient (forward passes)",
        title="Gradient cost by mode (MLP 784-h-10, batch 64)",
    )
    ax.legend()
    fig2, axes = plt.subplots(1, 2, figsize=(10, 4), layout="constrained")
    for ax, vary in zip(axes, ("n", "m"), strict=True):
        rows = [r for r in jac if r["vary"] == vary]
        xs = [r[vary] for r in rows]
        ax.loglog(xs, [r["jacfwd"] * 1e3 for r in rows], "o-", label="jax.jacfwd")
        ax.loglog(xs, [r["jacrev"] * 1e3 for r in rows], "s-", label="jax.jacrev")
        other = "m" if vary == "n" else "n"
        ax.set(xlabel=vary, ylabel="ms", title=f"Jacobian, {other} = {rows[0][other]}")
        ax.legend()
    return [fig1, fig2]
