"""``jgd bench instruments``: what ``sharpness_every`` and ``noise_scale_every`` cost.

1. A step between records: the run's own compiled chunk (``_engine.run_chunk``) with the
   instrument, over steps 1 .. S-1 of a run recording every S steps (so no record falls inside),
   against the same chunk without the instrument; interleaved rounds of blocked calls, medians.
2. A record: the instrument's own computation at the run's params on its probe examples, jitted,
   warm (the sharpness from the previous eigenvector; the first record of a run starts from a
   random vector and takes up to 100 HVPs instead of up to 20).

Workloads: full-batch GD on the edge-of-stability net (digits, 1,000 images: the tour's section
10), and the seeds' MLP 784-128-10 at batch 64 and batch 1 (synthetic rows).
"""

from __future__ import annotations

import time
from typing import Any

import jax
import numpy as np

import jgd
from jgd import _config, _engine, _instruments, _noise, _sweep
from jgd.bench import _harness as hn

INSTRUMENTS = ("sharpness_every", "noise_scale_every")


def _workloads(tiny: bool) -> dict[str, tuple[Any, dict[str, Any], int]]:
    """name: (problem, fit options, steps); a mini-batch run is one epoch of ``steps`` batches."""
    steps = 40 if tiny else 400
    eos = jgd.problems.edge_of_stability(examples=200 if tiny else 1000)
    out = {"full batch, tanh 64-128-10, 1000 images": (eos, {"epochs": steps}, steps)}
    for batch, n in ((64, steps), (1, 4 * steps)):
        mlp = jgd.problems.mlp("synthetic", examples=batch * n, width=64 if tiny else 784)
        options = {"batch_size": batch, "epochs": 1, "key": 0}
        out[f"batch {batch}, MLP 784-128-10"] = (mlp, options, n)
    return out


def _chunk_runner(problem, options, steps, instrument):
    """A self-timing call of ``steps - 1`` steps of the run's compiled chunk, with ``instrument``
    recording every ``steps`` steps (none of them inside) or without it."""
    extra = {} if instrument is None else {instrument: steps}
    arguments = _sweep._fit_arguments(
        problem.loss, problem.params, problem.data, problem.recipe["optimizer"], 0.01, 0,
        {k: v for k, v in {**options, **extra}.items() if k != "key"},
    )  # fmt: skip
    config = _config.configure(**arguments)
    program = config.program(steps)
    rows = None if config.plan.kind == "full" else _rows(config, steps)
    state, watch = config.state, None
    if instrument is not None:
        state = (state, _instruments.fresh_probe(state.params, config.instruments))
        watch = (config.probe_batch, np.int32(1))
    call = jax.jit(_engine.run_chunk, static_argnums=0)
    args = ((program, False), config.data, state, rows, np.int32(0), np.int32(steps - 1), watch)
    jax.block_until_ready(call(*args))

    def run() -> float:
        start = time.perf_counter()
        jax.block_until_ready(call(*args))
        return (time.perf_counter() - start) / (steps - 1)

    return run, config


def _rows(config, steps):
    plan = config.plan
    rows = np.asarray(jgd.shuffled_order(plan.num_examples, plan.batch_size, 1, 0))[:steps]
    return jax.device_put(rows.astype(np.int32))


def _record_cost(config, kind: str) -> float:
    """Seconds of one warm record of ``kind`` at the run's start params."""
    loss, params, batch = config.step.loss, config.state.params, config.probe_batch
    if kind == "sharpness_every":
        probe = _instruments.fresh_probe(params, config.instruments)
        warm = jax.jit(lambda p, b, q: _instruments.sharpness(loss, p, b, q))
        probe = warm(params, batch, probe)[0]  # the eigenvector, as later records start
        return jgd.timing.timeit(lambda: warm(params, batch, probe), repeats=5).median
    noise = jax.jit(lambda p, b: _noise.simple(loss, p, b, _instruments.NOISE_CHUNK))
    return jgd.timing.timeit(lambda: noise(params, batch), repeats=3).median


def measure(rounds: int, tiny: bool) -> list[dict[str, Any]]:
    rows = []
    for name, (problem, options, steps) in _workloads(tiny).items():
        runs, configs = {}, {}
        for kind in (None, *INSTRUMENTS):
            runs[kind or "none"], configs[kind] = _chunk_runner(problem, options, steps, kind)
        t = {k: v.median for k, v in jgd.timing.interleaved(runs, rounds=rounds).items()}
        for kind in INSTRUMENTS:
            record = _record_cost(configs[kind], kind)
            ratio = t[kind] / t["none"]
            rows.append(
                {
                    "workload": name,
                    "instrument": kind,
                    "step_ms": t["none"] * 1e3,
                    "between_ms": t[kind] * 1e3,
                    "ratio": ratio,
                    "record_ms": record * 1e3,
                    "record_in_steps": record / t["none"],
                }
            )
            hn.say(
                f"  {name:<42} {kind:<18} step {t['none'] * 1e3:8.4f} ms, between records "
                f"{t[kind] * 1e3:8.4f} ms ({ratio:.2f}x), a record {record * 1e3:8.2f} ms = "
                f"{record / t['none']:.0f} steps"
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
        "What the instruments cost: a step between records (the run's compiled chunk with the "
        "instrument and no record inside it, against the chunk without it; interleaved medians) "
        f"and a warm record (jitted, median).\n\n{table}"
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
