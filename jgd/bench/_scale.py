"""``jgd bench scale``: data-parallel ``fit`` steps per second against the device count.

Each device count runs in a fresh process (XLA fixes its devices at start-up). On a CPU the
devices are ``--xla_force_host_platform_device_count`` fakes sharing the same cores, so no
speed-up is expected: the point is that the partitioned program is correct and what its
overhead costs. On a machine with several GPUs the same command measures real scaling.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

from jgd.bench import _harness as hn

_SCRIPT = """
import json, jax, numpy as np, optax, jgd
from flax import nnx
rng = np.random.default_rng(0)
X = rng.uniform(size=(8192, 784)).astype(np.float32)
y = rng.integers(0, 10, 8192).astype(np.int32)
apply, params = jgd.models.functional(jgd.models.MLP(rngs=nnx.Rngs(0)))
loss = jgd.models.classification_loss(apply)
mesh = jgd.data_mesh()
out = {"devices": len(jax.devices()), "platform": jax.devices()[0].platform}
for batch in BATCHES:
    order = rng.integers(0, 8192, size=(STEPS, batch))
    kw = dict(optimizer=optax.sgd, learning_rate=0.01, order=order, mesh=mesh)
    jgd.fit(loss, params, (X, y), **kw)
    times = [jgd.fit(loss, params, (X, y), **kw).run_time for _ in range(3)]
    out[str(batch)] = STEPS / float(np.median(times))
print(json.dumps(out))
"""


def run(quick: bool, out: str, tiny: bool = False) -> dict[str, Any]:
    counts = [1, 2] if tiny else [1, 2, 4] if quick else [1, 2, 4, 8]
    batches = [8] if tiny else [64, 512] if quick else [64, 256, 1024]
    steps = 10 if tiny else 100 if quick else 300
    script = _SCRIPT.replace("BATCHES", repr(batches)).replace("STEPS", str(steps))
    rows = []
    for n in counts:
        env = {**os.environ, "XLA_FLAGS": f"--xla_force_host_platform_device_count={n}"}
        done = subprocess.run(
            [sys.executable, "-c", script], capture_output=True, text=True, env=env, check=True
        )
        result = json.loads(done.stdout.strip().splitlines()[-1])
        rows.append(result)
        print(
            f"  {n} devices: " + ", ".join(f"B={b} {result[str(b)]:,.0f} steps/s" for b in batches),
            flush=True,
        )
    table = hn.markdown(
        ["devices", *[f"B={b} steps/s" for b in batches], *[f"B={b} vs 1 device" for b in batches]],
        [
            [
                r["devices"],
                *[f"{r[str(b)]:,.0f}" for b in batches],
                *[f"{r[str(b)] / rows[0][str(b)]:.2f}x" for b in batches],
            ]
            for r in rows
        ],
    )
    print(table)
    note = (
        f"Data-parallel jgd.fit of the seeds' MLP, {steps} steps, on {rows[0]['platform']} "
        "devices (fake CPU devices share the same cores: no speed-up is expected).\n\n"
    )
    results = {"quick": quick, "rows": rows, "batches": batches, "steps": steps}
    files = hn.write(out, "scale", results, note + table, [_figure(rows, batches)])
    print("written:", ", ".join(str(f) for f in files))
    return results


def _figure(rows, batches):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5), layout="constrained")
    for b in batches:
        ax.plot([r["devices"] for r in rows], [r[str(b)] for r in rows], "o-", label=f"B={b}")
    ax.set(
        xlabel="devices",
        ylabel="steps per second",
        yscale="log",
        title="Data-parallel fit against the device count",
    )
    ax.legend()
    return fig
