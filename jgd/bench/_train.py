"""``jgd bench train``: training the seeds' MLP, steps per second, every way against every other.

The seeds' model (784-128-10, ReLU, softmax cross-entropy) on MNIST-shaped data (8192 uniform
rows), the same batches for everyone, for SGD (lr 0.01), momentum 0.9 and Adam (1e-3). The ways
to train are in ``_loops``. Measured interleaved: each round runs every contender once, in turn,
on the same order; the first round compiles and warms up; the table holds the medians of the
other rounds. Ratios are taken between medians of one run, never across runs.

Also the machine's float32 matmul rate and each contender's fraction of the throughput it allows:
a step costs ``4 B·784·128 + 6 B·128·10`` FLOPs (forward, weight gradients of both layers and the
hidden-layer gradient; no input gradient is needed).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from jgd import problems, timing
from jgd.bench import _harness as hn
from jgd.bench import _loops

N_EXAMPLES = 8192
RATIOS = [  # (name, numerator, denominator)
    ("fit / torch eager", "jgd.fit", "torch eager"),
    ("with_data loop / torch eager", "jgd with_data loop", "torch eager"),
    ("naive loop / torch eager", "naive loop", "torch eager"),
    ("fit / optax lax.scan", "jgd.fit", "optax lax.scan"),
    ("scan_steps x100 / fit", "jgd scan_steps x100", "jgd.fit"),
]


def flops_per_step(batch: int, hidden: int = 128) -> int:
    return 4 * batch * 784 * hidden + 6 * batch * hidden * 10


def measure(batch, steps, name, rounds, hidden=128, contenders=None) -> dict[str, float | None]:
    """Median steps per second of each contender, interleaved over ``rounds`` (+1 warm-up)."""
    X, y = problems.mlp("synthetic", examples=N_EXAMPLES).data
    order = np.random.default_rng(batch).integers(0, N_EXAMPLES, size=(steps, batch))
    chosen = contenders or list(_loops.CONTENDERS)
    runs = {c: _loops.CONTENDERS[c](X, y, order, name, hidden) for c in chosen}
    times = timing.interleaved(
        {c: once for c, once in runs.items() if once is not None}, rounds=rounds
    )
    rates = {c: times[c].rate(steps) if c in times else None for c in chosen}
    spreads = {  # per-round ratios of each pair in RATIOS: their spread says how sure a figure is
        label: list(timing.ratio(times[a], times[b])[1:3])
        for label, a, b in RATIOS
        if a in times and b in times
    }
    return {**rates, "spread": spreads}


def run(quick: bool, out: str, tiny: bool = False) -> dict[str, Any]:
    gflops = hn.matmul_gflops(256 if tiny else 2048)
    hn.say(f"float32 matmul rate: {gflops:.1f} GFLOP/s")
    threads = _torch_threads()
    if tiny:
        plan, optimizers, rounds, hidden = {1: 20, 64: 10}, ["sgd"], 1, 8
    elif quick:
        plan, optimizers, rounds, hidden = {1: 1000, 64: 300, 1024: 40}, ["sgd", "adam"], 3, 128
    else:
        plan = {1: 3000, 8: 2000, 64: 1000, 256: 400, 1024: 150}
        optimizers, rounds, hidden = ["sgd", "momentum", "adam"], 5, 128
    rows = []
    for name in optimizers:
        for batch, steps in plan.items():
            contenders = None
            if quick or tiny or name != "sgd":  # torch.compile: full runs, SGD only
                contenders = [c for c in _loops.CONTENDERS if c != "torch.compile"]
            rates = measure(batch, steps, name, rounds, hidden, contenders)
            limit = gflops * 1e9 / flops_per_step(batch, hidden)
            rows.append(
                {"optimizer": name, "batch": batch, "steps": steps, "limit": limit, **rates}
            )
            shown = ", ".join(f"{c} {v:,.0f}/s" for c, v in rates.items() if c != "spread" and v)
            hn.say(f"  {name} B={batch:>5}: {shown}")
    parity = _parity(plan, optimizers, 1 if tiny else 11, hidden)
    table = _table(rows, gflops, rounds, threads) + "\n\n" + _parity_table(parity)
    print(table)
    results = {
        "quick": quick,
        "matmul_gflops": gflops,
        "rounds": rounds,
        "torch_threads": threads,
        "rows": rows,
        "parity": parity,
    }
    files = hn.write(out, "train", results, table, [_figure(rows)])
    print("written:", ", ".join(str(f) for f in files))
    return results


def _parity(plan: dict, optimizers: list, rounds: int, hidden: int) -> list[dict]:
    """``jgd.fit`` against the hand-written optax scan alone, over more rounds: single cells of
    the main table swing by 20% at batch size 1 on a shared machine."""
    cells = []
    for name in optimizers:
        for batch in [b for b in plan if b in (1, 64)]:
            contenders = ["jgd.fit", "optax lax.scan"]
            rates = measure(batch, plan[batch], name, rounds, hidden, contenders)
            cells.append({"optimizer": name, "batch": batch, "rounds": rounds, **rates})
            hn.say(f"  parity {name} B={batch}: {rates}")
    return cells


def _parity_table(cells: list[dict]) -> str:
    rounds = cells[0]["rounds"] if cells else 0
    return (
        f"jgd.fit against the hand-written optax lax.scan alone, median of {rounds} interleaved "
        "rounds:\n\n"
        + hn.markdown(
            ["optimizer", "B", "jgd.fit", "optax lax.scan", "fit / optax lax.scan"],
            [
                [
                    c["optimizer"],
                    c["batch"],
                    f"{c['jgd.fit']:,.0f}",
                    f"{c['optax lax.scan']:,.0f}",
                    _ratio(c, "jgd.fit", "optax lax.scan"),
                ]
                for c in cells
            ],
        )
    )


def _ratio(row: dict, a: str, b: str, label: str = "") -> str:
    """The ratio of the medians; a range instead when its rounds spread wider than 1.5x."""
    if not (row.get(a) and row.get(b)):
        return "-"
    low, high = row.get("spread", {}).get(label, (0.0, 0.0))
    if low > 0 and high / low > 1.5:  # per-round ratios b/a of time = a/b of speed
        return f"{low:.2f}x to {high:.2f}x"
    return f"{row[a] / row[b]:.2f}x"


def _torch_threads() -> int | None:
    """PyTorch's threads set to XLA's CPU cores (None without PyTorch)."""
    try:
        from jgd import torch_baseline

        threads = torch_baseline.set_threads()
    except ImportError:
        return None
    hn.say(f"PyTorch threads: {threads} (= the cores XLA runs on)")
    return threads


def _table(rows: list[dict], gflops: float, rounds: int, threads: int | None = None) -> str:
    peers = [c for c in _loops.CONTENDERS if any(r.get(c) for r in rows)]
    speed = [
        [
            r["optimizer"],
            r["batch"],
            *[f"{r[c]:,.0f}" if r.get(c) else "-" for c in peers],
            f"{r['limit']:,.0f}",
            f"{100 * r['jgd.fit'] / r['limit']:.0f}%",
        ]
        for r in rows
    ]
    ratios = [
        [r["optimizer"], r["batch"], *[_ratio(r, a, b, label) for label, a, b in RATIOS]]
        for r in rows
    ]
    return (
        f"Steps per second, median of {rounds} interleaved rounds after a warm-up round "
        f"(compile excluded). Matmul rate {gflops:.1f} GFLOP/s; the limit is that rate over the "
        "model's FLOPs per step."
        + (f" PyTorch on {threads} threads, XLA on {threads} cores." if threads else "")
        + "\n\n"
        + hn.markdown(["optimizer", "B", *peers, "matmul limit", "fit / limit"], speed)
        + "\n\nRatios of the medians above (higher is faster for the first named; a range where "
        "the per-round ratios spread wider than 1.5x):\n\n"
        + hn.markdown(["optimizer", "B", *[name for name, _, _ in RATIOS]], ratios)
    )


def _figure(rows):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    optimizers = sorted({r["optimizer"] for r in rows}, key=[*_loops.LEARNING_RATES].index)
    fig, axes = plt.subplots(
        1, len(optimizers), figsize=(5 * len(optimizers), 4.5), layout="constrained", squeeze=False
    )
    for ax, name in zip(axes[0], optimizers, strict=True):
        mine = [r for r in rows if r["optimizer"] == name]
        for c in _loops.CONTENDERS:
            pts = [(r["batch"], r[c]) for r in mine if r.get(c)]
            if pts:
                ax.loglog(*zip(*pts, strict=True), "o-", label=c)
        ax.loglog([r["batch"] for r in mine], [r["limit"] for r in mine], "k--", label="matmul")
        ax.set(xlabel="batch size", ylabel="steps per second", title=f"seeds' MLP, {name}")
    axes[0][0].legend(fontsize=7)
    return fig
