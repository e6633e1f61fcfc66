"""A benchmark measured in a fresh process: ``python -m jgd.bench._worker '<json>'``.

XLA reads its flags and fixes its devices once, at start-up, so ``jgd bench scale`` (a device count
per process) and ``jgd bench xla`` (a flag setting per process) run each setting here and read one
JSON line back. The job: steps per second of ``jgd.fit`` (the seeds' MLP on synthetic
MNIST-shaped rows, SGD) for each ``(batch, steps)`` of the plan, the median of ``repeats`` runs
after a compiling one; over ``jgd.data_mesh()`` when ``mesh`` is true.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any


def measure(plan: list[list[int]], hidden: int = 128, mesh: bool = False, repeats: int = 3):
    """``{"devices", "platform", "<batch>": steps per second, ...}`` in this process."""
    import jax
    import numpy as np

    import jgd

    mlp = jgd.problems.mlp("synthetic", hidden=hidden)
    rng = np.random.default_rng(0)
    out: dict[str, Any] = {"devices": len(jax.devices()), "platform": jax.devices()[0].platform}
    for batch, steps in plan:
        order = rng.integers(0, len(mlp.data.y), size=(steps, batch))
        kw = {"order": order, "mesh": jgd.data_mesh() if mesh else None}
        runs = {"fit": lambda kw=kw: mlp.fit(**kw).run_time}
        t = jgd.timing.interleaved(runs, rounds=repeats)["fit"]
        out[str(batch)] = t.rate(steps)
    return out


def run_in_fresh_process(
    job: dict[str, Any], env: dict[str, str] | None = None, module: str = "jgd.bench._worker"
) -> dict:
    """Runs ``module``'s ``measure(**job)`` in a new Python process with ``env`` added (its
    ``__main__`` prints the result as the last line of JSON); returns the result."""
    done = subprocess.run(
        [sys.executable, "-m", module, json.dumps(job)],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
    )
    if done.returncode:
        raise RuntimeError(f"the benchmark process failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


if __name__ == "__main__":
    print(json.dumps(measure(**json.loads(sys.argv[1]))))
