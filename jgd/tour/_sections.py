"""The seeds' lesson, section by section: each function runs jgd and returns its numbers.

A section returns a ``Section``: rows for the final table (quantity, the seed's value or a
reference computed on the spot, jgd's value, whether they agree) and the arrays its figure needs.
Nothing here prints or plots; ``jgd.tour.run`` and the CLI do.
"""

from __future__ import annotations

import copy
import functools
import time
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

import jgd
from jgd._compare import epoch_order


class Row(NamedTuple):
    """One line of the final table."""

    quantity: str
    reference: str  # the seed's printed value, or a reference computed now (said in `source`)
    value: str  # jgd's value
    agree: bool | None  # None: nothing to compare with
    source: str = "seed"


class Section(NamedTuple):
    """What a section computed."""

    number: int
    title: str
    rows: list[Row]
    figure: dict[str, Any]
    notes: list[str]


def _fmt(x: float, digits: int = 4) -> str:
    return f"{x:.{digits}f}"


# --- 1. the quadratic bowl -------------------------------------------------------------------


def bowl_loss(w: jax.Array, batch: Any) -> jax.Array:
    """Seed 003's convex bowl L(w) = 0.5 (w - 3)², minimum at w = 3."""
    return 0.5 * (w - 3.0) ** 2


def quadratic_bowl() -> Section:
    """15 steps of GD with η = 0.3 from w = -2: the seed prints 2.9763."""
    result = jgd.fit(
        bowl_loss,
        jnp.array(-2.0),
        jnp.zeros(1),
        optimizer=optax.sgd,
        learning_rate=0.3,
        epochs=15,
        record_params=True,
    )
    final = float(result.params)
    rows = [
        Row(
            "bowl: final w after 15 steps (η=0.3, w0=-2)",
            "2.9763",
            _fmt(final),
            _fmt(final) == "2.9763",
        )
    ]
    return Section(
        1,
        "Gradient descent on a convex bowl",
        rows,
        {"trajectory": np.asarray(result.params_history)},
        [],
    )


# --- 2. the learning rate --------------------------------------------------------------------


def learning_rate() -> Section:
    """η ∈ {0.1, 0.6, 1.9, 2.1} in one sweep; the bound 2/λ from the curvature."""
    etas = [0.1, 0.6, 1.9, 2.1]
    result = jgd.sweep(
        bowl_loss,
        jnp.array(-2.0),
        jnp.zeros(1),
        optimizer=optax.sgd,
        learning_rate=etas,
        epochs=30,
        record_params=True,
    )
    history = np.asarray(result.params_history)  # (4, 31)
    curves = 0.5 * (history[:, 1:] - 3.0) ** 2  # L(w) after each step, as the seed records
    bound = jgd.max_stable_learning_rate(bowl_loss, jnp.array(-2.0), None)
    diverged = [eta for eta, d in zip(etas, result.diverged, strict=True) if d]
    rows = [
        Row(
            "learning rate: which of 0.1, 0.6, 1.9, 2.1 diverge",
            "2.1 (η > 2 blows up)",
            ", ".join(map(str, diverged)) or "none",
            diverged == [2.1],
        ),
        Row(
            "learning rate: stability bound 2/λ",
            "2",
            f"{float(bound.learning_rate):.4g}",
            abs(float(bound.learning_rate) - 2) < 1e-4,
        ),
    ]
    return Section(
        2,
        "The learning rate",
        rows,
        {"etas": etas, "curves": curves},
        [
            f"one jgd.sweep call: {len(etas)} runs, compile {result.compile_time:.2f}s, "
            f"run {result.run_time * 1e3:.1f}ms"
        ],
    )


# --- 3. full batch vs mini-batch vs SGD ------------------------------------------------------

LINE_LOSS = jgd.per_example(lambda th, ex: jgd.losses.squared_error(ex[0] @ th, ex[1]))


def seed_order(seed: int, m: int, epochs: int, batch_size: int) -> np.ndarray:
    """The batches of seed 003's NumPy loop: a ``default_rng(seed)`` permutation per epoch."""
    g = np.random.default_rng(seed)
    rows = []
    for _ in range(epochs):
        perm = g.permutation(m)
        rows += [perm[s : s + batch_size] for s in range(0, m, batch_size)]
    return np.stack(rows)


def numpy_descend(X, y, batch_size, epochs, eta, seed=0) -> np.ndarray:
    """Seed 003's ``descend`` in NumPy float64, the reference for section 3."""
    g, theta = np.random.default_rng(seed), np.array([-1.0, -1.0])
    for _ in range(epochs):
        order = g.permutation(len(y))
        for s in range(0, len(y), batch_size):
            Xb, yb = X[order[s : s + batch_size]], y[order[s : s + batch_size]]
            theta = theta - eta * (2 / len(yb)) * (Xb.T @ (Xb @ theta - yb))
    return theta


def batch_variants() -> Section:
    """Seed 003's cell 7: GD (60 epochs, η=0.4), B=10 (8 epochs, η=0.4), SGD (3 epochs, η=0.1)."""
    data = jgd.data.line()
    X, y = data
    theta_star = data.least_squares
    rows = [
        Row(
            "line fit: least-squares θ*",
            "[1.961, 0.998]",
            "[" + ", ".join(f"{v:.3f}" for v in theta_star) + "]",
            [f"{v:.3f}" for v in theta_star] == ["1.961", "0.998"],
        )
    ]
    runs = {}
    for name, (B, epochs, eta) in {
        "full batch": (100, 60, 0.4),
        "mini-batch B=10": (10, 8, 0.4),
        "SGD B=1": (1, 3, 0.1),
    }.items():
        order = seed_order(0, len(y), epochs, B)
        result = jgd.fit(
            LINE_LOSS,
            jnp.array([-1.0, -1.0]),
            data,
            optimizer=optax.sgd,
            learning_rate=eta,
            order=order,
            record_params=True,
        )
        path = np.asarray(result.params_history)
        full_loss = np.mean((path @ X.T - y) ** 2, axis=1)
        reference = numpy_descend(X, y, B, epochs, eta)
        runs[name] = {"path": path, "loss": full_loss, "seen": np.arange(len(path)) * B}
        final = np.asarray(result.params)
        rows.append(
            Row(
                f"line fit, {name}: final θ (NumPy loop alongside)",
                "[" + ", ".join(f"{v:.3f}" for v in reference) + "]",
                "[" + ", ".join(f"{v:.3f}" for v in final) + "]",
                bool(np.allclose(final, reference, atol=5e-4)),
                "NumPy",
            )
        )
        rows.append(
            Row(
                f"line fit, {name}: loss after {len(path) - 1} updates",
                "",
                f"{full_loss[-1]:.4f}",
                None,
                "-",
            )
        )
    grid = _loss_grid(X, y, theta_star)
    return Section(
        3,
        "Full batch vs mini-batch vs SGD",
        rows,
        {"runs": runs, "grid": grid, "theta_star": theta_star},
        [],
    )


def _loss_grid(X, y, center, span=3.2, n=120):
    a = np.linspace(center[0] - span, center[0] + span, n)
    b = np.linspace(center[1] - span, center[1] + span, n)
    A, B = np.meshgrid(a, b)
    thetas = np.stack([A.ravel(), B.ravel()], 1)
    Z = np.mean((thetas @ X.T - y) ** 2, axis=1).reshape(A.shape)
    return A, B, Z


# --- 4. the noise ball -----------------------------------------------------------------------


def noise_ball(seeds: int = 256) -> Section:
    """SGD with constant η=0.1 vs η0/(1+γt) (γ=0.01) and η0/(t+1), 40 epochs."""
    data = jgd.data.line()
    theta_star = data.least_squares
    S = jgd.schedules
    order = seed_order(1, 100, 40, 1)
    rows, curves = [], {}
    for name, schedule, printed in [
        ("constant η=0.1", S.inverse_time_decay(0.1, 0.0), "0.182"),
        ("η0/(1+γt), γ=0.01", S.inverse_time_decay(0.1, 0.01), "0.009"),
    ]:
        result = jgd.fit(
            LINE_LOSS,
            jnp.array([-1.0, -1.0]),
            data,
            optimizer=optax.sgd,
            learning_rate=schedule,
            order=order,
            record_params=True,
        )
        dist = np.linalg.norm(np.asarray(result.params_history)[1:] - theta_star, axis=1)
        curves[name] = dist
        rows.append(
            Row(
                f"noise ball: final distance, {name}",
                printed,
                f"{dist[-1]:.3f}",
                f"{dist[-1]:.3f}" == printed,
            )
        )
    schedules = {
        "constant η=0.1": S.inverse_time_decay(0.1, 0.0),
        "η0/(1+γt), γ=0.01": S.inverse_time_decay(0.1, 0.01),
        "η0/(t+1), η0=0.5": S.harmonic(0.5),
    }
    result = jgd.sweep(
        LINE_LOSS,
        jnp.array([-1.0, -1.0]),
        data,
        optimizer=optax.sgd,
        learning_rate=list(schedules.values()),
        seeds=range(seeds),
        batch_size=1,
        epochs=40,
    )
    final = np.linalg.norm(np.asarray(result.params) - theta_star, axis=1).reshape(3, seeds)
    spread = {}
    for name, d in zip(schedules, final, strict=True):
        q = np.percentile(d, [10, 50, 90])
        spread[name] = d
        rows.append(
            Row(
                f"noise ball over {seeds} seeds: median final distance, {name}",
                "",
                f"{q[1]:.4f} (10-90%: {q[0]:.4f}-{q[2]:.4f})",
                None,
                "-",
            )
        )
    med = np.median(final, axis=1)
    rows.append(
        Row(
            "noise ball: decaying η ends closer than constant (median)",
            "yes",
            "yes" if med[1] < med[0] else "no",
            bool(med[1] < med[0]),
        )
    )
    return Section(
        4,
        "The noise ball and learning-rate schedules",
        rows,
        {"curves": curves, "spread": spread},
        [
            f"{3 * seeds} SGD runs x 4,000 steps in one jgd.sweep: compile "
            f"{result.compile_time:.2f}s, run {result.run_time:.2f}s"
        ],
    )


# --- 5. momentum and Adam on a ravine ---------------------------------------------------------


def ravine_loss(w: jax.Array, batch: Any) -> jax.Array:
    """An ill-conditioned quadratic: curvature 1 along w0, 50 along w1 (condition number 50)."""
    return 0.5 * (w[0] ** 2 + 50.0 * w[1] ** 2)


def ravine(tolerance: float = 1e-6, steps: int = 600) -> Section:
    """Plain GD, momentum, Nesterov and Adam from (-10, 1): steps until the loss < tolerance."""
    w0 = jnp.array([-10.0, 1.0])
    bound = float(jgd.max_stable_learning_rate(ravine_loss, w0, None).learning_rate)
    setups = {
        "GD (η=0.035)": (optax.sgd, 0.035),
        "momentum 0.9 (η=0.035)": (functools.partial(optax.sgd, momentum=0.9), 0.035),
        "Nesterov 0.9 (η=0.025)": (
            functools.partial(optax.sgd, momentum=0.9, nesterov=True),
            0.025,
        ),
        "Adam (η=0.3)": (optax.adam, 0.3),
    }
    rows = [
        Row(
            "ravine: stability bound 2/λmax for plain GD",
            "2/50 = 0.04",
            f"{bound:.4f}",
            abs(bound - 0.04) < 1e-5,
            "closed form",
        )
    ]
    paths = {}
    for name, (opt, lr) in setups.items():
        result = jgd.fit(
            ravine_loss,
            w0,
            jnp.zeros(1),
            optimizer=opt,
            learning_rate=lr,
            epochs=steps,
            record_params=True,
        )
        history = np.asarray(result.params_history, np.float64)
        if result.diverged:
            rows.append(Row(f"ravine: {name}", "", f"diverged at {result.diverged_at}", None, "-"))
            continue
        losses = 0.5 * (history[:, 0] ** 2 + 50 * history[:, 1] ** 2)
        below = np.nonzero(losses < tolerance)[0]
        reached = int(below[0]) if below.size else None
        paths[name] = history
        rows.append(
            Row(
                f"ravine: steps to loss < {tolerance:g}, {name}",
                "",
                str(reached) if reached is not None else f"> {steps}",
                None,
                "-",
            )
        )
    return Section(
        5,
        "Momentum and Adam on a ravine",
        rows,
        {"paths": paths},
        [
            "GD's rate is capped by the steep direction (η < 2/50); momentum keeps the step size "
            "and accumulates speed along the shallow floor. Nesterov's look-ahead tightens its "
            "own bound to (2+2μ)/((1+2μ)λ) ≈ 0.027, hence its smaller η."
        ],
    )


# --- 6. logistic regression and initialization -----------------------------------------------


def logistic_and_init() -> Section:
    """Seed 002: GD for logistic regression; a non-convex loss where the start decides."""
    data = jgd.data.logistic()
    loss = jgd.per_example(lambda w, ex: jgd.losses.sigmoid_cross_entropy(ex[0] @ w, ex[1]))
    result = jgd.fit(loss, jnp.zeros(2), data, optimizer=optax.sgd, learning_rate=1.0, epochs=500)
    w = np.asarray(result.params, np.float64)
    reference = _newton_logistic(*data)
    accuracy = float(np.mean(((data.X @ w) > 0) == (data.y > 0.5)))
    rows = [
        Row(
            "logistic regression: GD weights (Newton's method alongside)",
            "[" + ", ".join(f"{v:.3f}" for v in reference) + "]",
            "[" + ", ".join(f"{v:.3f}" for v in w) + "]",
            bool(np.allclose(w, reference, atol=2e-3)),
            "Newton",
        ),
        Row("logistic regression: training accuracy", "", f"{accuracy:.3f}", None, "-"),
    ]

    def double_well(w, batch):  # minima near -1.30 (global) and 1.13
        return w**4 - 3 * w**2 + w

    starts = np.linspace(-2.0, 2.0, 9)
    ends = []
    for w0 in starts:  # same shapes: one compile, the other starts reuse it
        r = jgd.fit(
            double_well,
            jnp.asarray(w0, jnp.float32),
            jnp.zeros(1),
            optimizer=optax.sgd,
            learning_rate=0.01,
            epochs=500,
        )
        ends.append(float(r.params))
    minima = sorted({round(e, 2) for e in ends})
    rows.append(
        Row(
            "non-convex w⁴-3w²+w: minima reached from 9 starts",
            "2 different",
            ", ".join(f"{m:.2f}" for m in minima),
            len(minima) == 2,
        )
    )
    return Section(
        6,
        "Logistic regression, and where you start",
        rows,
        {"data": data, "w": w, "starts": starts, "ends": np.array(ends)},
        [],
    )


def _newton_logistic(X, y, iterations=50):
    w = np.zeros(X.shape[1])
    for _ in range(iterations):
        p = 1 / (1 + np.exp(-X @ w))
        H = (X.T * (p * (1 - p))) @ X / len(y)
        w -= np.linalg.solve(H, X.T @ (p - y) / len(y))
    return w


# --- 7. how to compute the gradient ----------------------------------------------------------


def _mlp_problem(widths, batch: int = 64, seed: int = 0, dtype=jnp.float32):
    model = jgd.models.MLP(*widths, rngs=nnx.Rngs(seed))
    apply, params = jgd.models.functional(model)
    params = jax.tree_util.tree_map(lambda p: p.astype(dtype), params)
    rng = np.random.default_rng(seed)
    X = rng.uniform(size=(batch, widths[0])).astype(dtype)
    y = rng.integers(0, widths[2], batch).astype(np.int32)
    return jgd.models.classification_loss(apply), params, (jnp.asarray(X), jnp.asarray(y))


def _time(fn: Callable, *args, repeats: int = 5, **kwargs) -> float:
    jax.block_until_ready(fn(*args, **kwargs))  # compile and warm up outside the timing
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(fn(*args, **kwargs))
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def gradient_modes() -> Section:
    """Seed 000: one gradient of an MLP loss by each mode, and cost against parameter count.

    Runs in float64 (inside ``jax.enable_x64``) so the finite differences show their truncation
    error rather than float32 rounding noise.
    """
    with jax.enable_x64(True):
        loss, params, batch = _mlp_problem((64, 32, 10), dtype=jnp.float64)
        P = sum(x.size for x in jax.tree_util.tree_leaves(params))
        forward_pass = _time(jax.jit(loss), params, batch, repeats=20)
        report = jgd.check_grads(loss, params, batch, timeit=True, repeats=3)
        smooth = jgd.check_grads(_tanh_twin(batch), params, batch, modes=("fd_central",))
        scaling = [_cost_in_passes(hidden) for hidden in (64, 128, 256)]
    rows = [
        Row(
            f"gradient by {r.mode} (P={P:,}): cost in forward passes; rel. error vs reverse",
            "",
            f"{r.seconds / forward_pass:,.1f}x; {r.relative_error:.1e}",
            None,
            "-",
        )
        for r in report.rows
    ]
    limits = {"forward": 1e-10, "fd_forward": 1e-4}
    ok = all(report[m].relative_error < tol for m, tol in limits.items())
    rows.append(
        Row(
            "float64 agreement with reverse: forward < 1e-10, fd_forward < 1e-4",
            "yes",
            "yes" if ok else "no",
            ok,
            "target",
        )
    )
    central = smooth["fd_central"].relative_error
    rows.append(
        Row(
            "fd_central on the same net with tanh for ReLU: rel. error < 1e-6",
            "yes",
            f"{central:.1e}",
            central < 1e-6,
            "target",
        )
    )
    P_, rev_, fwd_ = map(np.array, zip(*scaling, strict=True))
    slope_f = float(np.polyfit(np.log(P_), np.log(fwd_), 1)[0])
    slope_r = float(np.polyfit(np.log(P_), np.log(rev_), 1)[0])
    rows.append(
        Row(
            "forward mode: measured log-log slope of cost (forward passes) vs P",
            "1",
            f"{slope_f:.2f}",
            None,
            "theory",
        )
    )
    rows.append(
        Row(
            "reverse mode: measured log-log slope of cost (forward passes) vs P",
            "0",
            f"{slope_r:.2f}",
            None,
            "theory",
        )
    )
    notes = [
        str(report),
        "fd_central's larger step (eps^(1/3)) straddles ReLU kinks, where the "
        "loss is not differentiable; on the smooth tanh twin it is accurate to "
        f"{central:.0e}. Forward mode is exact but costs P passes. The slopes are timed at "
        "small sizes where per-call overhead still counts; `jgd bench ad` fits them at scale.",
    ]
    return Section(
        7,
        "How to compute the gradient",
        rows,
        {"report": report, "forward_pass": forward_pass, "scaling": scaling},
        notes,
    )


def _tanh_twin(batch):
    """The MLP's loss with tanh in place of ReLU: the same parameters, a smooth function."""

    def loss(params, b):
        X, y = b
        hidden = jnp.tanh(X @ params["fc1"]["kernel"][...] + params["fc1"]["bias"][...])
        logits = hidden @ params["fc2"]["kernel"][...] + params["fc2"]["bias"][...]
        return jnp.mean(jax.vmap(jgd.losses.softmax_cross_entropy)(logits, y))

    return loss


def _cost_in_passes(hidden: int) -> tuple[int, float, float]:
    """(P, reverse cost, forward cost) of the MLP 64-hidden-10, in units of one forward pass."""
    loss, params, batch = _mlp_problem((64, hidden, 10), dtype=jnp.float64)
    P = sum(x.size for x in jax.tree_util.tree_leaves(params))
    one = _time(jax.jit(loss), params, batch, repeats=20)
    reverse = _time(jax.jit(jgd.grad(loss, "reverse")), params, batch, repeats=20)
    forward = _time(jax.jit(jgd.grad(loss, "forward")), params, batch, repeats=1)
    return P, reverse / one, forward / one


# --- 8 and 9. the PyTorch model, ported -------------------------------------------------------


def pytorch_model(mnist_dir: str | None = None, epochs: int = 15) -> Section:
    """The seeds' Net in flax NNX, SGD lr 0.01, batch 64, beside the same run in PyTorch."""
    splits = jgd.data.real_digits(mnist_dir)
    train, test = splits.train, splits.test
    if len(train.y) > 10_000:
        epochs = 1
    width = train.X.shape[1]
    order = epoch_order(len(train.y), 64, steps=epochs * (len(train.y) // 64), seed=0)
    try:
        from jgd import torch_baseline

        torch = torch_baseline.require_torch()
    except ImportError:
        torch = None
    if torch is not None:
        torch.manual_seed(0)
        net = torch_baseline.Net(width, 128, 10)
        model = jgd.models.from_torch(net)
    else:
        model = jgd.models.MLP(width, 128, 10, rngs=nnx.Rngs(0))
    apply, params = jgd.models.functional(model)
    loss = jgd.models.classification_loss(apply)
    result = jgd.fit(
        loss, params, tuple(train), optimizer=optax.sgd, learning_rate=0.01, order=order
    )
    acc = jgd.models.accuracy(apply, result.params, test.X, test.y)
    rows = [
        Row(
            f"MLP {width}-128-10 on {splits.name}: test accuracy after {len(order)} steps",
            "",
            f"{acc:.4f}",
            None,
            "-",
        )
    ]
    figure: dict[str, Any] = {"jgd": result.losses}
    notes = [f"data: {splits.name}, {len(train.y)} train / {len(test.y)} test images"]
    if torch is None:
        notes.append(
            "PyTorch is not installed: add it with `pip install 'jgd[torch]'` to run the "
            "same loop in PyTorch beside jgd."
        )
        return Section(8, "The PyTorch model, ported to flax NNX", rows, figure, notes)
    # warm PyTorch up on a copy (allocator, threads), as jgd's compile time is excluded too
    torch_baseline.train(copy.deepcopy(net), train.X, train.y, order[:20], lr=0.01)
    theirs = torch_baseline.train(net, train.X, train.y, order, lr=0.01)
    torch_acc = jgd.models.accuracy(
        apply, jgd.models.functional(jgd.models.from_torch(net))[1], test.X, test.y
    )
    rel = np.max(np.abs(result.losses - theirs["losses"]) / np.abs(theirs["losses"]))
    jgd_rate, torch_rate = len(order) / result.run_time, len(order) / theirs["seconds"]
    figure["torch"] = theirs["losses"]
    rows += [
        Row(
            "PyTorch vs jgd: max relative loss difference over the run",
            "< 1e-4",
            f"{rel:.1e}",
            bool(rel < 1e-4),
            "target",
        ),
        Row(
            "PyTorch vs jgd: test accuracy",
            f"{torch_acc:.4f}",
            f"{acc:.4f}",
            abs(torch_acc - acc) < 2e-3,
            "PyTorch",
        ),
        Row(
            "steps per second (batch 64)",
            f"{torch_rate:,.0f} (PyTorch)",
            f"{jgd_rate:,.0f}",
            None,
            "PyTorch",
        ),
        Row("speed ratio jgd / PyTorch", "", f"{jgd_rate / torch_rate:.1f}x", None, "-"),
    ]
    return Section(8, "The PyTorch model, ported to flax NNX", rows, figure, notes)


def batch_size(mnist_dir: str | None = None, epochs: int = 10) -> Section:
    """Seed 004: the MLP with B ∈ {8, 32, 128, 512}, same epochs: time per epoch and accuracy."""
    splits = jgd.data.real_digits(mnist_dir)
    train, test = splits.train, splits.test
    width = train.X.shape[1]
    apply, params = jgd.models.functional(jgd.models.MLP(width, 128, 10, rngs=nnx.Rngs(0)))
    loss = jgd.models.classification_loss(apply)
    rows, table = [], []
    for B in (8, 32, 128, 512):
        # the same learning rate per example seen: η grows with B (the linear scaling rule)
        lr = 0.05 * B / 32
        result = jgd.fit(
            loss,
            params,
            tuple(train),
            optimizer=optax.sgd,
            learning_rate=lr,
            batch_size=B,
            epochs=epochs,
            key=0,
        )
        acc = jgd.models.accuracy(apply, result.params, test.X, test.y)
        per_epoch = result.run_time / epochs
        table.append((B, per_epoch, acc, result.steps))
        rows.append(
            Row(
                f"batch size {B}: ms per epoch; test accuracy after {epochs} epochs",
                "",
                f"{per_epoch * 1e3:.2f} ms; {acc:.4f}",
                None,
                "-",
            )
        )
    return Section(
        9,
        "Batch size",
        rows,
        {"table": table},
        [f"{splits.name}; learning rate 0.05 x B/32 (linear scaling)"],
    )


SECTIONS: dict[int, Callable[..., Section]] = {
    1: quadratic_bowl,
    2: learning_rate,
    3: batch_variants,
    4: noise_ball,
    5: ravine,
    6: logistic_and_init,
    7: gradient_modes,
    8: pytorch_model,
    9: batch_size,
}
