"""7. How to compute the gradient (seed 000): every mode on one MLP loss, and cost against P.

Runs in float64 (inside ``jax.enable_x64``) so that finite differences show their truncation error
rather than float32 rounding noise.
"""

from __future__ import annotations

import jax
import numpy as np
from flax import nnx

import jgd
from jgd import models, problems, timing
from jgd.tour._report import Row, Section, Spec


def _mlp(hidden: int, activation: str = "relu") -> problems.Problem:
    """MLP 64-hidden-10 on 64 uniform rows (float64): the batch the gradients are taken on."""
    return problems.mlp(
        "synthetic", width=64, hidden=hidden, examples=64, activation=activation, dtype=np.float64
    )


def _seconds(fn, *args, repeats: int) -> float:
    return timing.timeit(lambda: fn(*args), repeats=repeats).median


def _sized(hidden: int) -> tuple:
    """``(loss, params)`` of the MLP 64-hidden-10 with params drawn by NumPy (PyTorch's bound):
    only its costs are measured, so no program is compiled to draw them (``nnx.eval_shape``
    builds the module's structure without drawing anything)."""
    graphdef, state = nnx.split(
        nnx.eval_shape(lambda: models.MLP(64, hidden, 10, rngs=nnx.Rngs(0)))
    )
    rng = np.random.default_rng(hidden)
    state = jax.tree_util.tree_map(
        lambda a: rng.uniform(-1, 1, a.shape) / np.sqrt(a.shape[0]), state
    )
    apply, params = models.functional(nnx.merge(graphdef, state))
    return models.classification_loss(apply), params


def _cost_in_passes(hidden: int, data) -> tuple[int, float, float, float, float]:
    """P, then reverse and forward mode's cost in forward passes of the MLP 64-hidden-10 on
    ``data``: by time, and by XLA's FLOP count (no per-call overhead, no cache effects)."""
    loss, params = _sized(hidden)
    P = sum(x.size for x in jax.tree_util.tree_leaves(params))
    one = _seconds(jax.jit(loss), params, data, repeats=20)
    reverse = _seconds(jax.jit(jgd.grad(loss, "reverse")), params, data, repeats=20)
    forward = _seconds(jax.jit(jgd.grad(loss, "forward")), params, data, repeats=1)
    unit = jgd.flops(loss, params, data)
    by_flops = [
        jgd.flops(jgd.grad(loss, mode, chunk_size=P), params, data) / unit
        for mode in ("reverse", "forward")
    ]
    return P, reverse / one, forward / one, *by_flops


def _fit_slope(P, cost) -> float:
    return float(np.polyfit(np.log(P), np.log(cost), 1)[0])


def gradient_modes(hidden_sizes: tuple[int, ...] = (64, 128, 256)) -> Section:
    """Seed 000: one gradient of an MLP loss by each mode, and cost against parameter count
    (the MLP 64-h-10 for each h of ``hidden_sizes``)."""
    with jax.enable_x64(True):
        p, twin = _mlp(32), _mlp(32, activation="tanh")  # the same params, a smooth function
        P = sum(x.size for x in jax.tree_util.tree_leaves(p.params))
        forward_pass = _seconds(jax.jit(p.loss), p.params, p.data, repeats=20)
        report = jgd.check_grads(p.loss, p.params, p.data, timing=True, repeats=3)
        smooth = jgd.check_grads(twin.loss, twin.params, twin.data, modes=("fd_central",))
        scaling = [_cost_in_passes(hidden, p.data) for hidden in hidden_sizes]
    rows = [
        Row(
            f"gradient by {r.mode} (P={P:,}): cost in forward passes; rel. error vs reverse",
            (r.seconds / forward_pass, r.relative_error),
            fmt=lambda v: f"{v[0]:,.1f}x; {v[1]:.1e}",
        )
        for r in report.rows
    ]
    central = smooth["fd_central"].relative_error
    targets = [  # (what, relative error, the bound it must stay below)
        ("float64: forward mode's", report["forward"].relative_error, 1e-10),
        ("float64: fd_forward's", report["fd_forward"].relative_error, 1e-4),
        ("fd_central on the same net with tanh for ReLU:", central, 1e-6),
    ]
    rows += [
        Row(f"{what} rel. error vs reverse", error, bound, 0, "target", "{:.1e}", "below")
        for what, error, bound in targets
    ]
    sizes, rev, fwd, rev_flops, fwd_flops = map(np.array, zip(*scaling, strict=True))
    for mode, theory, by_flops, by_time in (
        ("forward", 1, fwd_flops, fwd),
        ("reverse", 0, rev_flops, rev),
    ):
        rows.append(
            Row(
                f"{mode} mode: log-log slope vs P of its cost in forward passes, by XLA FLOPs",
                _fit_slope(sizes, by_flops),
                theory,
                0.15,
                "theory",
                "{:.2f}",
            )
        )
        rows.append(
            Row(
                f"{mode} mode: the same slope by time (theory {theory})",
                _fit_slope(sizes, by_time),
                fmt="{:.2f}",
            )
        )
    notes = [
        str(report),
        "fd_central's larger step (eps^(1/3)) straddles ReLU kinks, where the "
        "loss is not differentiable; on the smooth tanh twin it is accurate to "
        f"{central:.0e}. Forward mode is exact but costs P passes. The slopes by FLOPs count "
        "the work; the slopes by time are measured where a batch-64 forward pass is tens of "
        "microseconds, so per-call overhead and cache effects bend them (time per pass falls as "
        "the matrices grow); `jgd bench ad` fits time slopes only where overhead is under 10%.",
    ]
    figure = {"report": report, "forward_pass": forward_pass, "scaling": scaling}
    return Section(7, TITLE, rows, figure, notes)


def draw(fig, f) -> None:
    ax1, ax2 = fig.subplots(1, 2)
    report = f["report"]
    modes = [r.mode for r in report.rows]
    costs = [r.seconds / f["forward_pass"] for r in report.rows]
    ax1.bar(modes, costs, color=["C0", "C1", "C2", "C3", "C4"])
    ax1.set_yscale("log")
    ax1.set(ylabel="cost of one gradient (forward passes)", title=f"P = {report.num_params:,}")
    ax1.tick_params(axis="x", labelrotation=25)
    P, rev, fwd, rev_flops, fwd_flops = map(np.array, zip(*f["scaling"], strict=True))
    ax2.loglog(P, fwd, "o-", color="C1", label="forward mode, time")
    ax2.loglog(P, fwd_flops, "o--", color="C1", label="forward mode, XLA FLOPs (slope 1)")
    ax2.loglog(P, rev, "s-", color="C0", label="reverse mode, time")
    ax2.loglog(P, rev_flops, "s--", color="C0", label="reverse mode, XLA FLOPs (slope 0)")
    ax2.set(xlabel="parameters P", ylabel="cost (forward passes)", title="Cost vs parameter count")
    ax2.legend()


TITLE = "How to compute the gradient"
SPEC = Spec(7, TITLE, "07_gradient_modes.png", gradient_modes, draw)
