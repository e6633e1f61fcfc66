"""A model with BatchNorm and Dropout: ``jgd.fit`` against NNX's own loops, step for step.

The model is the seeds' Net with BatchNorm after the hidden layer and Dropout (784 -> 128 ->
BatchNorm -> ReLU -> Dropout(0.2) -> 10), on 4,096 MNIST-shaped rows, trained by Adam over one
fixed order of batches. Contenders, each running the same steps on the same batches:

- ``jgd.fit``: the module given to ``fit`` (``loss(model, batch)``); its time is the run's own
  clock of its steps (``result.run_time``: the fixed cost of a call, issue 28's, is apart);
- ``nnx scan``: NNX's loop written as one ``jax.jit`` of a ``lax.scan`` over ``nnx.split``
  state (params, the rest, the optimizer state), merging the module inside each step: the
  fastest a hand loop gets; and the same again as the A/A partner (the noise floor);
- ``nnx.jit loop``: NNX's tutorial loop, ``nnx.Optimizer(wrt=nnx.Param)`` and one ``nnx.jit``
  step per call (fewer steps: it is timed per step).

Each process pins its cores before jax is imported and times the contenders interleaved,
``--rounds`` rounds after a warm-up round; ``--processes`` fresh processes. The ratio per
process is contender / ``nnx scan`` time per step; the verdict compares the median ratio of
``jgd.fit`` with 1.1 and with the A/A spread. Results: ``benchmarks/results/nnx_model.md``.

Usage::

    python benchmarks/nnx_model.py [--processes 5] [--rounds 30] [--cores 0,1] [--quick]
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
from pathlib import Path

RESULTS = Path(__file__).resolve().parents[1] / "benchmarks" / "results"
CASES = {1: 1000, 64: 300}  # batch size: steps per timed run
LOOP_STEPS = 100  # the nnx.jit loop's steps per timed run


def worker(rounds: int, cores: list[int]) -> None:
    """Pins the cores, times every contender per case, prints one JSON line of µs per step."""
    os.sched_setaffinity(0, cores)  # before jax starts its threads
    import jax
    import jax.numpy as jnp
    import numpy as np
    import optax
    from flax import nnx

    import jgd

    class Net(nnx.Module):
        def __init__(self, rngs):
            self.hidden = nnx.Linear(784, 128, rngs=rngs)
            self.norm = nnx.BatchNorm(128, rngs=rngs)
            self.drop = nnx.Dropout(0.2, rngs=rngs)
            self.out = nnx.Linear(128, 10, rngs=rngs)

        def __call__(self, x):
            return self.out(self.drop(jax.nn.relu(self.norm(self.hidden(x)))))

    def loss(model, batch):
        x, y = batch
        return optax.softmax_cross_entropy_with_integer_labels(model(x), y).mean()

    rng = np.random.default_rng(0)
    X = rng.uniform(size=(4096, 784)).astype(np.float32)
    Y = rng.integers(0, 10, 4096).astype(np.int32)
    data = (jnp.asarray(X), jnp.asarray(Y))
    tx = optax.adam(1e-3)
    out = {}
    for batch, steps in CASES.items():
        order = rng.integers(0, 4096, size=(steps, batch)).astype(np.int32)
        model = Net(nnx.Rngs(0, dropout=1))

        def fit_run(order=order, model=model):
            return jgd.fit(loss, model, (X, Y), optimizer=tx, order=order).run_time / len(order)

        graphdef, params0, rest0 = nnx.split(model, nnx.Param, ...)

        scan = make_scan(graphdef, loss, tx, data)
        device_order = jnp.asarray(order)

        def scan_run(device_order=device_order, params0=params0, rest0=rest0, scan=scan):
            opt_state = tx.init(params0)
            return jgd.timing.blocked(lambda: scan(params0, rest0, opt_state, device_order)) / (
                len(device_order)
            )

        @nnx.jit
        def train_step(model, optimizer, rows):
            value, grads = nnx.value_and_grad(loss)(model, (data[0][rows], data[1][rows]))
            optimizer.update(model, grads)
            return value

        loop_rows = [jnp.asarray(r) for r in order[:LOOP_STEPS]]

        def loop_run(model=model, loop_rows=loop_rows):
            m = nnx.clone(model)
            optimizer = nnx.Optimizer(m, tx, wrt=nnx.Param)

            def go():
                value = None
                for rows in loop_rows:
                    value = train_step(m, optimizer, rows)
                return value

            return jgd.timing.blocked(go) / len(loop_rows)

        timings = jgd.timing.interleaved(
            {
                "jgd.fit": fit_run,
                "nnx scan": scan_run,
                "nnx scan (A/A)": scan_run,
                "nnx.jit loop": loop_run,
            },
            rounds=rounds,
        )
        out[f"B={batch}"] = {name: t.median * 1e6 for name, t in timings.items()}
    versions = {p: getattr(sys.modules[p], "__version__", "?") for p in ("jax", "optax")}
    import flax

    versions["flax"] = flax.__version__
    print(json.dumps({"us_per_step": out, "versions": versions}))


def make_scan(graphdef, loss, tx, data):
    """NNX's loop as one jitted ``lax.scan`` over ``nnx.split`` state: the hand-written best."""
    import jax
    import optax
    from flax import nnx

    @jax.jit
    def scan(params, rest, opt_state, order):
        def step(carry, rows):
            params, rest, opt_state = carry

            def f(p):
                m = nnx.merge(graphdef, p, rest, copy=True)
                value = loss(m, (data[0][rows], data[1][rows]))
                return value, nnx.split(m, nnx.Param, ...)[2]

            (value, rest), grads = jax.value_and_grad(f, has_aux=True)(params)
            updates, opt_state = tx.update(grads, opt_state, params)
            return (optax.apply_updates(params, updates), rest, opt_state), value

        return jax.lax.scan(step, (params, rest, opt_state), order)

    return scan


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--processes", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--cores", default=",".join(map(str, sorted(os.sched_getaffinity(0)))))
    parser.add_argument("--quick", action="store_true", help="2 processes x 3 rounds")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    cores = [int(c) for c in args.cores.split(",")]
    if args.quick:
        args.processes, args.rounds = 2, 3
    if args.worker:
        worker(args.rounds, cores)
        return
    runs = []
    for i in range(args.processes):
        cmd = [sys.executable, __file__, "--worker", "--rounds", str(args.rounds)]
        done = subprocess.run([*cmd, "--cores", args.cores], capture_output=True, text=True)
        if done.returncode != 0:
            sys.exit(done.stderr[-3000:])
        runs.append(json.loads(done.stdout.strip().splitlines()[-1]))
        print(f"process {i + 1}/{args.processes}: {runs[-1]['us_per_step']}", file=sys.stderr)
    write(runs, args, cores)


def write(runs: list[dict], args: argparse.Namespace, cores: list[int]) -> None:
    """The table and the verdict, to ``benchmarks/results/nnx_model.md`` and ``.json``."""
    lines = [
        "# A model with BatchNorm and Dropout: jgd.fit against NNX's loops",
        "",
        f"{datetime.date.today()}, {platform.machine()}, {os.cpu_count()} CPUs, cores {cores}, "
        f"{args.processes} processes x {args.rounds} rounds; versions {runs[0]['versions']}.",
        f"Reproduce: `python benchmarks/nnx_model.py --processes {args.processes} "
        f"--rounds {args.rounds}`.",
        "",
        "Ratio: time per step / `nnx scan`'s, per process; median [min-max] over processes.",
        "",
        "| case | nnx scan µs/step | jgd.fit | A/A (nnx scan) | nnx.jit loop | verdict (<= 1.1) |",
        "|---|---|---|---|---|---|",
    ]
    record = {}
    for case in runs[0]["us_per_step"]:
        per = [r["us_per_step"][case] for r in runs]
        ratios = {
            name: [p[name] / p["nnx scan"] for p in per]
            for name in ("jgd.fit", "nnx scan (A/A)", "nnx.jit loop")
        }
        med = {name: statistics.median(v) for name, v in ratios.items()}
        aa = ratios["nnx scan (A/A)"]
        floor = max(max(aa), 1 / min(aa))
        fit = med["jgd.fit"]
        verdict = "within 1.1x" if fit <= 1.1 else ("unresolved" if fit <= 1.1 * floor else "over")

        def show(name, ratios=ratios, med=med):
            return f"{med[name]:.2f} [{min(ratios[name]):.2f}-{max(ratios[name]):.2f}]"

        base = statistics.median(p["nnx scan"] for p in per)
        lines.append(
            f"| {case} | {base:.1f} | {show('jgd.fit')} | {show('nnx scan (A/A)')} | "
            f"{show('nnx.jit loop')} | {verdict} |"
        )
        record[case] = {"ratios": ratios, "median": med, "verdict": verdict, "per": per}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "nnx_model.md").write_text("\n".join(lines) + "\n")
    (RESULTS / "nnx_model.json").write_text(json.dumps({"runs": runs, "cases": record}, indent=1))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
