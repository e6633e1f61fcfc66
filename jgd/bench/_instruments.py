"""``jgd bench instruments``: what ``sharpness_every`` and ``noise_scale_every`` cost.

Through ``jgd.fit`` alone. A step between records is the slope between two run lengths with
the same records: with ``every=E``, runs of ``E + 1`` and ``2E`` steps both record at steps 0
(cold) and ``E`` (warm), so ``(T(2E) - T(E + 1)) / (E - 1)`` is what a step between records
costs, the fixed cost of a call and the records cancelling; the same slope without the
instrument is a plain step. Each run's ``run_time`` (compile excluded), interleaved rounds,
medians. A record's cost is what the instrumented run of ``E + 1`` steps takes beyond the plain
one and its ``E + 1`` steps between records, halved (a cold and a warm record).

Workloads: full-batch GD on the edge-of-stability net (digits, 1,000 images: the tour's section
10), and the seeds' MLP 784-128-10 at batch 64 and batch 1 (512 synthetic rows, the probe too;
explicit random batches, so any run length is one plan).
"""

from __future__ import annotations

from typing import Any

import numpy as np

import jgd
from jgd.bench import _harness as hn

INSTRUMENTS = ("sharpness_every", "noise_scale_every")


def _workloads(tiny: bool) -> dict[str, tuple[Any, Any, int]]:
    """name: (problem, options of a run of n steps, E)."""
    eos = jgd.problems.edge_of_stability(examples=200 if tiny else 1000)
    out = {
        "full batch, tanh 64-128-10, 1000 images": (
            eos,
            lambda n: {"epochs": n},
            20 if tiny else 200,
        )
    }
    # 512 rows: the probe the records take is small enough that the slope between the runs, not
    # the records' own noise, is what the difference of two run times measures
    # tiny: the batch-1 workload only (the same code as batch 64)
    for batch, every in ((64, 4000), (1, 40 if tiny else 20000))[tiny:]:
        mlp = jgd.problems.mlp("synthetic", examples=512, width=64 if tiny else 784)
        orders = np.random.default_rng(batch).integers(0, 512, size=(2 * every, batch))

        def options(n, orders=orders):
            return {"order": orders[:n]}

        out[f"batch {batch}, MLP 784-128-10"] = (mlp, options, every)
    return out


def _runner(problem, options, instrument, every):
    """A self-timing fit of the run's options, with ``instrument`` every ``every`` steps."""
    extra = {} if instrument is None else {instrument: every}
    optimizer = problem.recipe["optimizer"]

    def run() -> float:
        result = jgd.fit(
            problem.loss, problem.params, problem.data, optimizer=optimizer,
            learning_rate=0.01, **options, **extra,
        )  # fmt: skip
        return result.run_time

    return run


def measure(rounds: int, tiny: bool) -> list[dict[str, Any]]:
    rows = []
    for name, (problem, options, every) in _workloads(tiny).items():
        short, long = options(every + 1), options(2 * every)
        runs = {}
        for kind in (None, *INSTRUMENTS):
            for n, opts in (("short", short), ("long", long)):
                runs[(kind, n)] = _runner(problem, opts, kind, every)
        t = jgd.timing.interleaved(runs, rounds=rounds)
        t = {k: v.median for k, v in t.items()}

        def slope(kind, t=t, every=every):
            return (t[(kind, "long")] - t[(kind, "short")]) / (every - 1)

        plain = slope(None)
        for kind in INSTRUMENTS:
            between = slope(kind)
            ratio = between / plain
            beyond = t[(kind, "short")] - t[(None, "short")] - (every + 1) * (between - plain)
            record = beyond / 2
            rows.append(
                {
                    "workload": name,
                    "instrument": kind,
                    "step_ms": plain * 1e3,
                    "between_ms": between * 1e3,
                    "ratio": ratio,
                    "record_ms": record * 1e3,
                    "record_in_steps": record / plain,
                }
            )
            hn.say(
                f"  {name:<42} {kind:<18} step {plain * 1e3:8.4f} ms, between records "
                f"{between * 1e3:8.4f} ms ({ratio:.2f}x), a record {record * 1e3:8.2f} ms = "
                f"{record / plain:.0f} steps"
            )
    return rows


def run(quick: bool, out: str, tiny: bool = False) -> dict[str, Any]:
    hn.say("instrument costs through jgd.fit (interleaved medians):")
    rows = measure(rounds=1 if tiny else 5 if quick else 9, tiny=tiny)
    table = hn.markdown(
        [
            "workload",
            "instrument",
            "ms per step",
            "between records",
            "ratio",
            "a record",
            "in steps",
        ],
        [
            [
                r["workload"],
                r["instrument"],
                f"{r['step_ms']:.4f}",
                f"{r['between_ms']:.4f}",
                f"{r['ratio']:.2f}x",
                f"{r['record_ms']:.2f} ms",
                f"{r['record_in_steps']:.0f}",
            ]
            for r in rows
        ],
    )
    print(table)
    text = (
        "What the instruments cost through jgd.fit: a step between records (the slope between "
        "runs of E + 1 and 2E steps, which record at the same steps, against the same slope "
        "without the instrument; run_time, interleaved medians) and a record (the mean of the "
        f"cold and the warm one).\n\n{table}"
    )
    files = hn.write(out, "instruments", {"quick": quick, "rows": rows}, text, [_figure(rows)])
    print("written:", ", ".join(str(f) for f in files))
    return {"quick": quick, "rows": rows}


def _figure(rows):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 4), layout="constrained")
    labels = [f"{r['workload']}\n{r['instrument']}" for r in rows]
    ax.barh(labels, [r["ratio"] for r in rows])
    ax.axvline(1.0, color="k", lw=1)
    ax.set(xlabel="a step between records / a step without the instrument")
    ax.set_title("What an instrument costs between its records")
    ax.invert_yaxis()
    ax.tick_params(axis="y", labelsize=7)
    return fig
