"""The analysis tools called eagerly: seconds of a first and a repeated call, in fresh processes.

``hvp``, ``max_stable_learning_rate`` and ``gradient_noise_scale`` on a module with BatchNorm and
Dropout (6 -> 16 -> BatchNorm -> ReLU -> Dropout -> 3, 96 rows: the tests' ``Net``) and on the
seeds' MLP (784-128-10, synthetic MNIST-shaped rows). A first call includes its compiles (and
the host checks); a repeated call is the same call again in the same process, so it shows
whether the tool keeps its program. Each process runs every case once; ``--processes`` fresh
processes alternate between this checkout and, with ``--against PATH``, another one (its ``jgd``
put first on ``PYTHONPATH``), and the table gives the medians of each. Results:
``benchmarks/results/analysis_tools.md``.

Usage::

    python benchmarks/analysis_tools.py [--processes 3] [--against /path/to/old/checkout]
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"


def worker() -> None:
    import time

    import jax
    import jax.numpy as jnp
    import numpy as np
    import optax
    from flax import nnx

    import jgd

    class Net(nnx.Module):
        def __init__(self, rngs):
            self.hidden = nnx.Linear(6, 16, rngs=rngs)
            self.norm = nnx.BatchNorm(16, rngs=rngs)
            self.drop = nnx.Dropout(0.3, rngs=rngs)
            self.out = nnx.Linear(16, 3, rngs=rngs)

        def __call__(self, x):
            return self.out(self.drop(jax.nn.relu(self.norm(self.hidden(x)))))

    def loss(model, batch):
        x, y = batch
        return jnp.mean(optax.softmax_cross_entropy_with_integer_labels(model(x), y))

    rng = np.random.default_rng(0)
    X, Y = rng.normal(size=(96, 6)).astype(np.float32), rng.integers(0, 3, size=96)
    model = Net(nnx.Rngs(0, dropout=1))
    frozen = nnx.clone(model)
    frozen.eval()  # running statistics: the noise scale's premise holds
    batch = (X[:32], Y[:32])
    v = jax.tree.map(jnp.ones_like, nnx.state(model, nnx.Param))
    mlp = jgd.problems.mlp("synthetic")
    rows = jax.tree.map(lambda a: a[:512], mlp.data)
    cases = {
        "hvp, module": lambda: jgd.hvp(loss, model, batch, v),
        "max_stable_learning_rate, module": lambda: jgd.max_stable_learning_rate(
            loss, model, batch
        ),
        "gradient_noise_scale, module (eval)": lambda: float(
            jgd.gradient_noise_scale(loss, frozen, (X, Y))
        ),
        "max_stable_learning_rate, MLP (512 rows)": lambda: jgd.max_stable_learning_rate(
            mlp.loss, mlp.params, rows
        ),
        "gradient_noise_scale, MLP (512 rows)": lambda: float(
            jgd.gradient_noise_scale(mlp.loss, mlp.params, rows)
        ),
    }
    out = {}
    for name, call in cases.items():
        for when in ("first", "repeated"):
            start = time.perf_counter()
            jax.block_until_ready(jax.tree.leaves(call()))
            out[f"{name}|{when}"] = time.perf_counter() - start
    print(json.dumps(out))


def run(checkout: Path | None) -> dict:
    env = dict(os.environ)
    if checkout is not None:
        env["PYTHONPATH"] = os.pathsep.join([str(checkout), env.get("PYTHONPATH", "")])
    done = subprocess.run(
        [sys.executable, __file__, "--worker"], capture_output=True, text=True, env=env
    )
    if done.returncode != 0:
        sys.exit(f"worker failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--processes", type=int, default=3)
    parser.add_argument("--against", type=Path, default=None)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return worker()
    sides = {"this checkout": None} | ({"against": args.against} if args.against else {})
    runs: dict[str, list[dict]] = {side: [] for side in sides}
    for _ in range(args.processes):
        for side, checkout in sides.items():
            runs[side].append(run(checkout))
    write(runs, args)


def write(runs: dict[str, list[dict]], args: argparse.Namespace) -> None:
    keys = list(runs["this checkout"][0])
    med = {s: {k: statistics.median(r[k] for r in rs) for k in keys} for s, rs in runs.items()}
    against = "against" in runs
    head = "| tool | call | this checkout s |" + (
        " against s | against / this |" if against else ""
    )
    lines = [
        f"# Analysis tools called eagerly ({datetime.date.today()})",
        "",
        f"`python benchmarks/analysis_tools.py --processes {args.processes}"
        + (f" --against {args.against}`" if against else "`")
        + f": medians of {args.processes} fresh processes per side, alternated.",
        "",
        head,
        "|---|---|---|" + ("---|---|" if against else ""),
    ]
    for key in keys:
        name, when = key.split("|")
        row = f"| {name} | {when} | {med['this checkout'][key]:.2f} |"
        if against:
            ratio = med["against"][key] / max(med["this checkout"][key], 1e-3)
            row += f" {med['against'][key]:.2f} | {ratio:.1f} |"
        lines.append(row)
    text = "\n".join(lines) + "\n"
    print(text)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "analysis_tools.md").write_text(text)
    (RESULTS / "analysis_tools.json").write_text(json.dumps(runs, indent=1))


if __name__ == "__main__":
    main()
