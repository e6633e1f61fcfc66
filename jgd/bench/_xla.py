"""``jgd bench xla``: XLA CPU's library flags against the default, on ``jgd.fit`` of the seeds' MLP.

XLA reads its flags once, at start-up, so each setting runs in a fresh process; the settings
alternate over rounds (round r runs every setting once) and the table holds medians, as the
machine's speed drifts over minutes. Steps per second of ``jgd.fit`` (SGD) at batch sizes where
the step is overhead-bound (1) and matmul-bound (64, 1024).
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from jgd.bench import _harness as hn
from jgd.bench._worker import run_in_fresh_process

SETTINGS = {
    "default": "",
    "xnnpack on": "--xla_cpu_use_xnnpack=true",
    "xnnpack off": "--xla_cpu_use_xnnpack=false",
    "onednn on": "--xla_cpu_use_onednn=true",
    "xnn fusion: dot": "--xla_cpu_experimental_xnn_fusion_type=dot",
    "xnn fusion: individual dot": "--xla_cpu_experimental_xnn_fusion_type=individual_dot",
    "xnn fusion: dot, eltwise, reduce": "--xla_cpu_experimental_xnn_fusion_type=dot,eltwise,reduce",
}


def run(quick: bool, out: str, tiny: bool = False) -> dict[str, Any]:
    if tiny:
        plan, rounds, hidden, settings = [(1, 20), (64, 5)], 1, 8, ["default", "xnnpack on"]
    else:
        plan = [(1, 1000), (64, 200), (1024, 30)] if quick else [(1, 3000), (64, 600), (1024, 80)]
        rounds, hidden, settings = (2 if quick else 5), 128, list(SETTINGS)
    job = {"plan": plan, "hidden": hidden}
    samples: dict[str, list[dict[str, float]]] = {s: [] for s in settings}
    for r in range(rounds):
        for name in settings:
            flags = " ".join(f for f in (os.environ.get("XLA_FLAGS", ""), SETTINGS[name]) if f)
            samples[name].append(run_in_fresh_process(job, {"XLA_FLAGS": flags}))
            hn.say(f"  round {r + 1}, {name}: {samples[name][-1]}")
    batches = [str(b) for b, _ in plan]
    medians = {
        name: {b: float(np.median([s[b] for s in runs])) for b in batches}
        for name, runs in samples.items()
    }
    base = medians["default"]
    table = (
        f"Steps per second of jgd.fit (seeds' MLP, SGD), median of {rounds} fresh processes per "
        "setting, settings alternated; each process reports the median of 3 runs.\n\n"
        + hn.markdown(
            [
                "setting",
                "XLA_FLAGS",
                *[f"B={b}" for b in batches],
                *[f"B={b} vs default" for b in batches],
            ],
            [
                [
                    name,
                    f"`{SETTINGS[name]}`" if SETTINGS[name] else "",
                    *[f"{m[b]:,.0f}" for b in batches],
                    *[f"{m[b] / base[b]:.2f}x" for b in batches],
                ]
                for name, m in medians.items()
            ],
        )
    )
    print(table)
    results = {"rounds": rounds, "plan": plan, "samples": samples, "medians": medians}
    files = hn.write(out, "xla", results, table, [_figure(medians, batches)])
    print("written:", ", ".join(str(f) for f in files))
    return results


def _figure(medians, batches):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4.5), layout="constrained")
    names = list(medians)
    width = 0.8 / len(batches)
    for i, b in enumerate(batches):
        ratios = [medians[n][b] / medians["default"][b] for n in names]
        ax.bar(np.arange(len(names)) + i * width, ratios, width, label=f"B={b}")
    ax.axhline(1.0, color="k", lw=0.8)
    ax.set_xticks(np.arange(len(names)) + width * (len(batches) - 1) / 2, names, rotation=30)
    ax.set(ylabel="steps/s vs default", title="XLA CPU flags on jgd.fit")
    ax.legend()
    return fig
