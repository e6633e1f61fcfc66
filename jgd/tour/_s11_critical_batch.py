"""11. The critical batch size: steps to a target loss against batch size, and the noise scale."""

from __future__ import annotations

import numpy as np
import optax

from jgd import fit, problems, shuffled_order
from jgd.tour._report import Row, Section, Spec

BATCHES = (2, 4, 8, 16, 32, 64, 128, 256)
RATES = (0.025, 0.05, 0.1, 0.2, 0.4, 0.8)  # each batch size takes its best
TARGET = 0.3  # training loss (cross-entropy)
NOISE_BATCH = 32  # the run the noise scale is recorded on
SMOOTH = 64  # batch losses are averaged over this many examples before the target is read


def _whole_numbers(v) -> str:  # module-level, not lambdas: a Section is sent between processes
    return ", ".join(f"{x:.0f}" for x in v)


def _s_min_b_crit(v) -> str:
    return f"{v[0]:.0f}; {v[1]:.1f}"


def critical_batch(mnist_dir: str | None = None, batches: tuple[int, ...] = BATCHES) -> Section:
    """McCandlish et al. (2018): steps to a target loss fall as 1/B for small batches and stop
    falling past the critical batch size; the gradient noise scale B = tr(Σ)/‖G‖², measured
    during the run (``noise_scale_every``), estimates where that knee is.

    Each batch size runs one ``sweep`` over ``RATES`` (SGD) and keeps its fastest learning rate,
    as the paper tunes it per batch size; the steps are fitted with the paper's model
    S(B) = S_min (1 + B_crit / B).
    """
    mlp = problems.mlp("real", mnist_dir=mnist_dir)
    m = len(mlp.data.y)
    steps, best = [], []
    for B in batches:
        budget = max(100, min(1500, 12000 // B))  # steps: ~2x the slowest hit measured
        epochs = -(-budget // (m // B))
        # in turn (each run fit's own program): 21 s for the section against 25 s vmapped,
        # measured twice each on 2 cores, the same numbers either way
        result = mlp.sweep(
            learning_rate=list(RATES), batch_size=B, epochs=epochs, key=0, batch_runs=1
        )
        hits = [_steps_to(result.losses[i], B) for i in range(len(RATES))]
        i = int(np.argmin(hits))
        steps.append(hits[i])
        best.append(RATES[i])
    at = batches.index(NOISE_BATCH)
    noise = _noise_at_target(mlp, NOISE_BATCH, best[at], steps[at])
    steps = np.asarray(steps, np.float64)
    s_min, b_crit = _fit(np.asarray(batches, np.float64), steps)
    model = s_min * (1 + b_crit / np.asarray(batches))
    worst = float(np.max(np.abs(model / steps - 1)))
    rows = [
        Row(
            f"steps to training loss {TARGET} at batch size {list(batches)}",
            steps,
            fmt=_whole_numbers,
        ),
        Row(
            "S(B) = S_min (1 + B_crit/B) fitted: worst relative miss over the batch sizes",
            worst,
            0.35,
            source="target",
            fmt="{:.2f}",
            rule="below",
        ),
        Row(
            "S_min (steps, large batches); B_crit (the knee)",
            (s_min, b_crit),
            fmt=_s_min_b_crit,
        ),
        Row(
            f"noise scale B_simple = tr(Σ)/‖G‖² at loss {TARGET} (batch 32 run)",
            noise,
            fmt="{:.0f}",
        ),
        Row(
            "B_simple / B_crit: the noise scale against the knee (within a factor of 4)",
            noise / b_crit,
            [0.25, 4.0],
            source="target",
            fmt="{:.2f}",
            rule="within",
        ),
    ]
    notes = [
        f"{mlp.note}: the seeds' MLP, SGD; each batch size keeps its fastest learning rate of "
        f"{list(RATES)} (chosen: {best}); steps read from batch losses averaged over {SMOOTH} "
        "examples",
        "B_simple assumes the loss is equally curved in every direction; the Hessian-weighted "
        "B_noise = tr(HΣ)/GᵀHG (McCandlish et al. §2.2) is smaller on an ill-conditioned loss, "
        "and the largest stable learning rate (2/λ, section 10) caps how few steps large "
        "batches can take: so B_simple marks the knee to within a small factor, not exactly",
    ]
    figure = {"B": np.asarray(batches), "steps": steps, "fit": (s_min, b_crit), "noise": noise}
    return Section(11, TITLE, rows, figure, notes)


def _noise_at_target(mlp, batch: int, lr: float, hit: float) -> float:
    """B_simple recorded during the fastest batch-``batch`` run, the median of its records
    within a quarter of the steps to the target of where the run reached it: the run goes
    unwatched to 3/4 of the way, then continues from its state with ``noise_scale_every`` (each
    record takes the per-example gradients of up to 4,096 examples)."""
    hit = int(hit)
    every, lead = max(1, hit // 8), hit - hit // 4
    first = mlp.fit(learning_rate=lr, order=_order(mlp, batch, 0, lead))
    rest = fit(mlp.loss, first.state, mlp.data, optimizer=optax.sgd, learning_rate=lr,
               order=_order(mlp, batch, lead, hit // 2 + 1), noise_scale_every=every)  # fmt: skip
    return float(np.median(rest.noise_scale.values))


def _order(mlp, batch: int, start: int, steps: int) -> np.ndarray:
    """Rows ``start .. start + steps`` of the batch plan ``fit(batch_size=batch, key=0)`` draws."""
    m = len(mlp.data.y)
    epochs = -(-(start + steps) // (m // batch))
    return shuffled_order(m, batch, epochs, 0)[start : start + steps]


def _steps_to(losses: np.ndarray, batch: int) -> float:
    """The first step whose batch loss, averaged over ``SMOOTH`` examples, is below ``TARGET``
    (inf if never, or if the run blew up)."""
    if not np.isfinite(losses).all():
        return np.inf
    w = max(1, -(-SMOOTH // batch))
    smooth = np.convolve(losses, np.ones(w) / w, mode="valid")
    below = np.flatnonzero(smooth < TARGET)
    return float(below[0] + (w + 1) // 2) if below.size else np.inf


def _fit(B: np.ndarray, steps: np.ndarray) -> tuple[float, float]:
    """Least squares of S = S_min + (S_min B_crit) / B, linear in (S_min, S_min B_crit), with
    relative errors (each point weighted by 1/S)."""
    ok = np.isfinite(steps)
    A = np.c_[np.ones(ok.sum()), 1 / B[ok]] / steps[ok, None]
    (a, b), *_ = np.linalg.lstsq(A, np.ones(ok.sum()), rcond=None)
    return float(a), float(b / a)


def draw(fig, f) -> None:
    ax1, ax2 = fig.subplots(1, 2)
    B, steps = f["B"], f["steps"]
    s_min, b_crit = f["fit"]
    grid = np.geomspace(B[0], B[-1], 100)
    ax1.plot(B, steps, "o", label="measured (best learning rate)")
    ax1.plot(grid, s_min * (1 + b_crit / grid), "-", label="S_min (1 + B_crit/B)")
    ax1.axvline(b_crit, color="C1", ls="--", lw=1, label=f"knee B_crit = {b_crit:.0f}")
    ax1.axvline(f["noise"], color="C2", ls=":", lw=1.5, label=f"B_simple = {f['noise']:.0f}")
    ax1.set(xscale="log", yscale="log", xlabel="batch size", ylabel=f"steps to loss {TARGET}")
    ax1.set_title("Steps to a target loss")
    ax1.legend(fontsize=8)
    ax2.plot(B, steps * B, "o-")
    ax2.axvline(b_crit, color="C1", ls="--", lw=1)
    ax2.set(xscale="log", yscale="log", xlabel="batch size", ylabel="examples to the target")
    ax2.set_title("Examples processed: flat, then rising past the knee")


TITLE = "The critical batch size"
SPEC = Spec(11, TITLE, "11_critical_batch.png", critical_batch, draw, uses_mnist=True)
