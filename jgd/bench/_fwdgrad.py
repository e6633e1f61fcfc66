"""``jgd bench fwdgrad``: the forward gradient vs backprop (Baydin et al. 2022), per tangent kind.

1. What a step costs: a ``jgd.fit`` step of the seeds' MLP (784-128-10) at batch 64 and 256 with
   the gradient from reverse mode and from the forward gradient with each tangent kind
   (``jgd.TANGENTS``), interleaved rounds, medians, as a ratio to the reverse step.
2. What a step buys: SGD on real digits with each gradient, same batches; the loss after N steps,
   test accuracy, and the loss against steps and against wall time. Data: MNIST from
   ``$JGD_MNIST`` or ``../shared/data/mnist`` when present, else scikit-learn's 8x8 digits.
"""

from __future__ import annotations

import os
import pathlib
from typing import Any

import numpy as np

import jgd
from jgd.bench import _harness as hn


def _mnist_dir() -> str | None:
    for candidate in (os.environ.get("JGD_MNIST"), "../shared/data/mnist"):
        if candidate and (pathlib.Path(candidate) / "train-images-idx3-ubyte.gz").exists():
            return candidate
    return None


GRADIENTS = {"reverse": {"mode": "reverse"}} | {
    f"forward_gradient ({kind})": {"mode": "forward_gradient", "tangent": kind}
    for kind in jgd.TANGENTS
}


def step_costs(
    batch_sizes: list[int], steps: int, rounds: int, examples: int = 8192
) -> list[dict[str, Any]]:
    """Seconds per ``fit`` step for each gradient, interleaved; the ratio to reverse mode."""
    mlp = jgd.problems.mlp("synthetic", examples=examples)
    rows = []
    for B in batch_sizes:
        epochs = max(1, steps * B // len(mlp.data.X))

        def one(options, B=B, epochs=epochs):
            result = mlp.fit(learning_rate=0.01, batch_size=B, epochs=epochs, key=0, **options)
            return result.run_time / result.steps

        for options in GRADIENTS.values():
            one(options)  # compile outside the clock
        times = jgd.timing.interleaved(
            {name: lambda o=o: one(o) for name, o in GRADIENTS.items()}, rounds=rounds
        )
        base = times["reverse"].median
        for name, t in times.items():
            rows.append(
                {"batch": B, "gradient": name, "seconds": t.median, "ratio": t.median / base}
            )
            hn.say(
                f"  B={B:>4} {name:<30} {t.median * 1e3:8.3f} ms/step "
                f"= {t.median / base:.2f}x reverse"
            )
    return rows


def run(quick: bool, out: str, tiny: bool = False) -> dict[str, Any]:
    hn.say("step cost via jgd.fit, MLP 784-128-10:")
    batches = [64] if tiny else [64, 256]  # tiny: one batch size, the same code
    costs = step_costs(
        batches,
        steps=20 if tiny else 200,
        rounds=1 if tiny else 5 if quick else 9,
        examples=1280 if tiny else 8192,  # tiny: one epoch of 20 steps, not 128
    )
    mlp = jgd.problems.mlp("real", mnist_dir=None if tiny else _mnist_dir())
    width = mlp.data.X.shape[1]
    epochs = 1 if tiny else 2 if quick else 10
    hn.say(f"learning: SGD, batch 64, {epochs} epochs on {mlp.note}:")
    curves = {}
    for name, options in GRADIENTS.items():
        lr = 0.05 if name == "reverse" else 0.002
        kwargs = dict(learning_rate=lr, batch_size=64, epochs=epochs, key=0, **options)
        mlp.fit(**kwargs)  # compile outside the clock
        result = mlp.fit(**kwargs)
        acc = mlp.accuracy(result.params)
        curves[name] = {
            "lr": lr,
            "losses": result.losses,
            "run_time": result.run_time,
            "seconds_per_step": result.run_time / result.steps,
            "accuracy": acc,
        }
        hn.say(
            f"  {name}: lr {lr}, {result.steps} steps in {result.run_time:.2f}s, "
            f"final loss {np.mean(result.losses[-50:]):.3f}, test accuracy {acc:.3f}"
        )
    table = hn.markdown(
        ["gradient", "lr", "steps", "ms per step", "final loss (last 50)", "test accuracy"],
        [
            [
                m,
                c["lr"],
                len(c["losses"]),
                f"{c['seconds_per_step'] * 1e3:.3f}",
                f"{np.mean(c['losses'][-50:]):.3f}",
                f"{c['accuracy']:.3f}",
            ]
            for m, c in curves.items()
        ],
    )
    cost_table = hn.markdown(
        [
            "gradient",
            *[f"B={B} ms/step" for B in batches],
            *[f"B={B} vs reverse" for B in batches],
        ],
        [
            [name]
            + [f"{r['seconds'] * 1e3:.3f}" for r in costs if r["gradient"] == name]
            + [f"{r['ratio']:.2f}x" for r in costs if r["gradient"] == name]
            for name in GRADIENTS
        ],
    )
    print(cost_table)
    print(table)
    results = {"quick": quick, "data": mlp.note, "step_costs": costs, "curves": curves}
    text = (
        f"Step cost through jgd.fit, MLP 784-128-10 (synthetic rows), interleaved medians:\n\n"
        f"{cost_table}\n\nWhat a step buys: MLP {width}-128-10 on {mlp.note}, SGD, batch 64, "
        f"{epochs} epochs (final loss: mean of the last 50 batch losses).\n\n{table}"
    )
    files = hn.write(out, "fwdgrad", results, text, [_figure(curves)])
    print("written:", ", ".join(str(f) for f in files))
    return results


def _smooth(x, k=25):
    return np.convolve(x, np.ones(k) / k, mode="valid")


def _figure(curves):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 4), layout="constrained")
    for mode, c in curves.items():
        s = _smooth(c["losses"])
        a1.plot(s, label=mode)
        a2.plot(np.arange(len(s)) * c["seconds_per_step"], s, label=mode)
    a1.set(xlabel="step", ylabel="batch loss (smoothed)", title="Loss against steps")
    a2.set(xlabel="seconds", ylabel="batch loss (smoothed)", title="Loss against wall time")
    for a in (a1, a2):
        a.legend()
    return fig
