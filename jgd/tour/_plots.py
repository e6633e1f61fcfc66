"""One PNG per tour section, drawn with matplotlib (Agg: no display needed)."""

from __future__ import annotations

import pathlib
from collections.abc import Callable

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from jgd import _io
from jgd.tour._sections import Section


def _bowl(fig, f):
    w = f["trajectory"]
    ax1, ax2 = fig.subplots(1, 2)
    grid = np.linspace(-2.5, 5, 200)
    ax1.plot(grid, 0.5 * (grid - 3) ** 2, color="0.6", label="L(w) = 0.5 (w - 3)²")
    ax1.plot(w, 0.5 * (w - 3) ** 2, "o-", ms=4, label="GD iterates (η = 0.3)")
    ax1.set(xlabel="w", ylabel="L(w)", title="Iterates march down the bowl")
    ax2.plot(np.arange(len(w)), w, "o-", ms=4, label="w_k")
    ax2.axhline(3, ls="--", color="k", lw=1, label="minimum w = 3")
    ax2.set(xlabel="step k", ylabel="w", title=f"w after 15 steps = {w[-1]:.4f}")
    for ax in (ax1, ax2):
        ax.legend()


def _learning_rate(fig, f):
    ax = fig.subplots()
    for eta, curve in zip(f["etas"], f["curves"], strict=True):
        ax.semilogy(
            np.arange(1, len(curve) + 1), np.maximum(curve, 1e-30), "o-", ms=3, label=f"η = {eta}"
        )
    ax.set(
        xlabel="step", ylabel="L(w) (log scale)", title="Too small is slow; η > 2/λ = 2 diverges"
    )
    ax.legend()


def _batch_variants(fig, f):
    ax1, ax2 = fig.subplots(1, 2)
    A, B, Z = f["grid"]
    ax1.contour(
        A, B, Z, levels=np.geomspace(Z.min() + 1e-3, Z.max(), 18), cmap="Greys", linewidths=0.6
    )
    for name, run in f["runs"].items():
        ax1.plot(run["path"][:, 0], run["path"][:, 1], ".-", ms=2, lw=0.8, label=name)
        ax2.semilogy(run["seen"], run["loss"], lw=1, label=name)
    ax1.plot(*f["theta_star"], "k*", ms=12, label="θ* (least squares)")
    ax1.set(xlabel="θ0 (slope)", ylabel="θ1 (intercept)", title="Paths over the loss contours")
    ax2.set(xlabel="examples seen", ylabel="full-data loss", title="Progress per example seen")
    ax1.legend(fontsize=8)
    ax2.legend(fontsize=8)


def _noise_ball(fig, f):
    ax1, ax2 = fig.subplots(1, 2)
    for name, dist in f["curves"].items():
        ax1.semilogy(np.arange(1, len(dist) + 1), dist, lw=0.7, label=name)
    ax1.set(xlabel="SGD step", ylabel="‖θ - θ*‖", title="Constant η bounces in a noise ball")
    ax1.legend()
    names = list(f["spread"])
    ax2.boxplot([f["spread"][n] for n in names], showfliers=False)
    ax2.set_xticks(range(1, len(names) + 1), names, fontsize=8)
    ax2.set_yscale("log")
    ax2.set(ylabel="final ‖θ - θ*‖", title=f"Over {len(f['spread'][names[0]])} seeds (one sweep)")


def _ravine(fig, f):
    ax = fig.subplots()
    a, b = np.meshgrid(np.linspace(-11, 3, 200), np.linspace(-1.5, 1.5, 200))
    ax.contour(
        a,
        b,
        0.5 * (a**2 + 50 * b**2),
        levels=np.geomspace(0.01, 120, 15),
        cmap="Greys",
        linewidths=0.6,
    )
    for name, path in f["paths"].items():
        ax.plot(path[:120, 0], path[:120, 1], ".-", ms=2, lw=0.8, label=name)
    ax.set(
        xlabel="w0 (shallow, λ=1)",
        ylabel="w1 (steep, λ=50)",
        title="First 120 steps on a ravine",
        ylim=(-1.5, 1.5),
    )
    ax.legend(fontsize=8)


def _logistic(fig, f):
    ax1, ax2 = fig.subplots(1, 2)
    X, y = f["data"]
    ax1.scatter(X[:, 0], y, s=8, alpha=0.5, label="data (label 0/1)")
    grid = np.linspace(X[:, 0].min(), X[:, 0].max(), 200)
    ax1.plot(grid, 1 / (1 + np.exp(-(f["w"][0] * grid + f["w"][1]))), "r", label="σ(w·x + b)")
    ax1.set(xlabel="x", ylabel="P(y = 1)", title="Logistic regression by GD")
    ax1.legend()
    w = np.linspace(-2.2, 2.2, 300)
    ax2.plot(w, w**4 - 3 * w**2 + w, color="0.5")
    for s, e in zip(f["starts"], f["ends"], strict=True):
        ax2.annotate(
            "",
            (e, e**4 - 3 * e**2 + e),
            (s, s**4 - 3 * s**2 + s),
            arrowprops={"arrowstyle": "->", "color": "C0" if e < 0 else "C3"},
        )
    ax2.set(xlabel="w", ylabel="w⁴ - 3w² + w", title="Non-convex: the start picks the minimum")


def _gradient_modes(fig, f):
    ax1, ax2 = fig.subplots(1, 2)
    report = f["report"]
    modes = [r.mode for r in report.rows]
    costs = [r.seconds / f["forward_pass"] for r in report.rows]
    ax1.bar(modes, costs, color=["C0", "C1", "C2", "C3", "C4"])
    ax1.set_yscale("log")
    ax1.set(ylabel="cost of one gradient (forward passes)", title=f"P = {report.num_params:,}")
    ax1.tick_params(axis="x", labelrotation=25)
    P, rev, fwd = map(np.array, zip(*f["scaling"], strict=True))
    ax2.loglog(P, fwd, "o-", label="forward mode (slope ≈ 1)")
    ax2.loglog(P, rev, "s-", label="reverse mode (slope ≈ 0)")
    ax2.set(xlabel="parameters P", ylabel="cost (forward passes)", title="Cost vs parameter count")
    ax2.legend()


def _pytorch(fig, f):
    ax = fig.subplots()
    ax.plot(f["jgd"], lw=1, label="jgd (flax NNX, one lax.scan)")
    if "torch" in f:
        ax.plot(f["torch"], "--", lw=1, label="PyTorch (the seeds' loop)")
    ax.set(xlabel="step", ylabel="batch loss", title="The same run, step for step")
    ax.legend()


def _batch_size(fig, f):
    ax1, ax2 = fig.subplots(1, 2)
    B, per_epoch, acc, _ = map(np.array, zip(*f["table"], strict=True))
    ax1.plot(B, per_epoch * 1e3, "o-")
    ax1.set(xscale="log", xlabel="batch size", ylabel="ms per epoch", title="Time per epoch")
    ax2.plot(B, acc, "o-")
    ax2.set(
        xscale="log", xlabel="batch size", ylabel="test accuracy", title="Accuracy, same epochs"
    )


DRAW: dict[int, tuple[str, Callable]] = {
    1: ("01_bowl.png", _bowl),
    2: ("02_learning_rate.png", _learning_rate),
    3: ("03_batch_variants.png", _batch_variants),
    4: ("04_noise_ball.png", _noise_ball),
    5: ("05_ravine.png", _ravine),
    6: ("06_logistic_and_init.png", _logistic),
    7: ("07_gradient_modes.png", _gradient_modes),
    8: ("08_pytorch.png", _pytorch),
    9: ("09_batch_size.png", _batch_size),
}


def draw(section: Section, out: pathlib.Path) -> pathlib.Path:
    """Draws ``section``'s figure into ``out`` and returns the file's path."""
    name, fn = DRAW[section.number]
    fig = plt.figure(figsize=(11, 4.2), layout="constrained")
    fig.suptitle(f"{section.number}. {section.title}", fontweight="bold")
    fn(fig, section.figure)
    path = out / name
    with _io.atomic(path) as f:
        fig.savefig(f, dpi=110, format="png")
    plt.close(fig)
    return path
