"""``jgd bench fwdgrad``: the forward gradient vs backprop on real digits (Baydin et al. 2022).

The seeds' MLP trained by SGD with gradients from reverse mode and from the forward gradient
(one random jvp per step), same batches; the loss against steps and against wall time. Data:
MNIST from ``$JGD_MNIST`` or ``../shared/data/mnist`` when present, else scikit-learn's 8x8 digits.
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


def run(quick: bool, out: str, tiny: bool = False) -> dict[str, Any]:
    mlp = jgd.problems.mlp("real", mnist_dir=None if tiny else _mnist_dir())
    width = mlp.data.X.shape[1]
    epochs = 1 if tiny else 2 if quick else 10
    settings = {"reverse": 0.05, "forward_gradient": 0.002}
    curves = {}
    for mode, lr in settings.items():
        kwargs = dict(learning_rate=lr, batch_size=64, epochs=epochs, key=0, mode=mode)
        mlp.fit(**kwargs)  # compile outside the clock
        result = mlp.fit(**kwargs)
        acc = mlp.accuracy(result.params)
        curves[mode] = {
            "lr": lr,
            "losses": result.losses,
            "run_time": result.run_time,
            "seconds_per_step": result.run_time / result.steps,
            "accuracy": acc,
        }
        hn.say(
            f"  {mode}: lr {lr}, {result.steps} steps in {result.run_time:.2f}s, "
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
    print(table)
    results = {"quick": quick, "data": mlp.note, "curves": curves}
    text = f"MLP {width}-128-10 on {mlp.note}, SGD, batch 64, {epochs} epochs.\n\n{table}"
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
