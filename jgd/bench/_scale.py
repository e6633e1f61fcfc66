"""``jgd bench scale``: data-parallel ``fit`` steps per second against the device count.

Each device count runs in a fresh process (XLA fixes its devices at start-up). On a CPU the
devices are ``--xla_force_host_platform_device_count`` fakes sharing the same cores, so no
speed-up is expected: the point is that the partitioned program is correct and what its
overhead costs. On a machine with several GPUs the same command measures real scaling.
"""

from __future__ import annotations

from typing import Any

from jgd.bench import _harness as hn
from jgd.bench._worker import run_in_fresh_process


def run(quick: bool, out: str, tiny: bool = False) -> dict[str, Any]:
    counts = [1, 2] if tiny else [1, 2, 4] if quick else [1, 2, 4, 8]
    batches = [8] if tiny else [64, 512] if quick else [64, 256, 1024]
    steps = 10 if tiny else 100 if quick else 300
    job = {"plan": [[b, steps] for b in batches], "mesh": True}
    rows = []
    for n in counts:
        env = {"XLA_FLAGS": f"--xla_force_host_platform_device_count={n}"}
        result = run_in_fresh_process(job, env)
        rows.append(result)
        hn.say(
            f"  {n} devices: " + ", ".join(f"B={b} {result[str(b)]:,.0f} steps/s" for b in batches)
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
