"""``jgd bench train``: training throughput of the seeds' MLP against its peers, in one run.

The seeds' model (784-128-10, ReLU, softmax cross-entropy, SGD lr 0.01) on MNIST-shaped data,
the same batches for everyone, steps per second (median of repeats, compile excluded) for:

- ``jgd.fit``: the whole run as one ``lax.scan`` (data on the device, batches gathered inside),
  with the default guard (loss and gradient checked every step) and with ``guard="loss"``;
- ``jgd.make_step`` under a Python loop (one jitted step per call, batches indexed on the host);
- the flax NNX tutorial loop (``nnx.jit`` train step with ``nnx.Optimizer``);
- PyTorch eager (the seeds' loop) and ``torch.compile``.

Plus the machine's float32 matmul rate and each entry's fraction of the throughput it allows:
a step costs ``4 B·784·128 + 6 B·128·10`` FLOPs (forward, weight gradients of both layers and the
hidden-layer gradient; no input gradient is needed).
"""

from __future__ import annotations

import time
from typing import Any

import jax
import numpy as np
import optax
from flax import nnx

import jgd
from jgd.bench import _harness as hn

N_EXAMPLES = 8192


def flops_per_step(batch: int) -> int:
    return 4 * batch * 784 * 128 + 6 * batch * 128 * 10


def _data():
    rng = np.random.default_rng(0)
    X = rng.uniform(size=(N_EXAMPLES, 784)).astype(np.float32)
    y = rng.integers(0, 10, N_EXAMPLES).astype(np.int32)
    return X, y


def _order(batch: int, steps: int) -> np.ndarray:
    return np.random.default_rng(batch).integers(0, N_EXAMPLES, size=(steps, batch))


def _median_rate(fn, steps: int, repeats: int) -> float:
    times = [fn() for _ in range(repeats)]
    return steps / float(np.median(times))


def jgd_fit(X, y, order, repeats, guard="full") -> float:
    apply, params = jgd.models.functional(jgd.models.MLP(rngs=nnx.Rngs(0)))
    loss = jgd.models.classification_loss(apply)

    def once():
        r = jgd.fit(
            loss, params, (X, y), optimizer=optax.sgd, learning_rate=0.01, order=order, guard=guard
        )
        return r.run_time

    once()  # compile
    return _median_rate(once, len(order), repeats)


def jgd_step_loop(X, y, order, repeats) -> float:
    apply, params = jgd.models.functional(jgd.models.MLP(rngs=nnx.Rngs(0)))
    opt = optax.sgd(0.01)
    step = jax.jit(jgd.make_step(jgd.models.classification_loss(apply), opt))
    Xd, yd = jax.device_put(X), jax.device_put(y)

    def once():
        state = jgd.TrainState.create(params, opt)
        start = time.perf_counter()
        for rows in order:
            state, _ = step(state, (Xd[rows], yd[rows]))
        jax.block_until_ready(state)
        return time.perf_counter() - start

    once()
    return _median_rate(once, len(order), repeats)


def nnx_loop(X, y, order, repeats) -> float:
    Xd, yd = jax.device_put(X), jax.device_put(y)

    @nnx.jit
    def train_step(model, optimizer, x, labels):
        def loss_fn(model):
            logits = model(x)
            return optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()

        loss, grads = nnx.value_and_grad(loss_fn)(model)
        optimizer.update(model, grads)
        return loss

    def once():
        model = jgd.models.MLP(rngs=nnx.Rngs(0))
        optimizer = nnx.Optimizer(model, optax.sgd(0.01), wrt=nnx.Param)
        start = time.perf_counter()
        for rows in order:
            loss = train_step(model, optimizer, Xd[rows], yd[rows])
        jax.block_until_ready(loss)
        return time.perf_counter() - start

    once()
    return _median_rate(once, len(order), repeats)


def torch_loop(X, y, order, repeats, compile: bool) -> float | None:
    try:
        from jgd import torch_baseline

        torch = torch_baseline.require_torch()
    except ImportError:
        return None

    def once():
        torch.manual_seed(0)
        net = torch_baseline.Net()
        return torch_baseline.train(net, X, y, order, lr=0.01, compile=compile)["seconds"]

    if compile:
        torch._dynamo.reset()
    once()
    return _median_rate(once, len(order), repeats)


def run(quick: bool, out: str, tiny: bool = False) -> dict[str, Any]:
    X, y = _data()
    gflops = hn.matmul_gflops(256 if tiny else 2048)
    print(f"float32 matmul rate: {gflops:.1f} GFLOP/s", flush=True)
    plan = (
        {1: 1000, 64: 400, 1024: 60} if quick else {1: 4000, 8: 3000, 64: 2000, 256: 600, 1024: 200}
    )
    repeats = 1 if tiny else 3
    rows = []
    for batch, steps in plan.items():
        order = _order(batch, steps)
        entry = {"batch": batch, "steps": steps, "flops_per_step": flops_per_step(batch)}
        entry["jgd.fit"] = jgd_fit(X, y, order, repeats)
        entry["jgd.fit guard=loss"] = jgd_fit(X, y, order, repeats, guard="loss")
        entry["jgd.make_step loop"] = jgd_step_loop(X, y, order, repeats)
        entry["flax nnx.jit loop"] = nnx_loop(X, y, order, repeats)
        entry["torch eager"] = torch_loop(X, y, order, repeats, compile=False)
        entry["torch.compile"] = None if quick else torch_loop(X, y, order, repeats, compile=True)
        entry["matmul_limit"] = gflops * 1e9 / flops_per_step(batch)
        rows.append(entry)
        print(
            f"  B={batch:>5}: "
            + ", ".join(f"{k} {v:,.0f}/s" for k, v in entry.items() if k in PEERS and v),
            flush=True,
        )
    table = _table(rows, gflops)
    print(table)
    results = {"quick": quick, "matmul_gflops": gflops, "rows": rows}
    files = hn.write(out, "train", results, table, [_figure(rows)])
    print("written:", ", ".join(str(f) for f in files))
    return results


PEERS = [
    "jgd.fit",
    "jgd.fit guard=loss",
    "jgd.make_step loop",
    "flax nnx.jit loop",
    "torch eager",
    "torch.compile",
]


def _table(rows, gflops) -> str:
    body = []
    for r in rows:
        cells = [f"{r[p]:,.0f}" if r[p] else "-" for p in PEERS]
        fit = r["jgd.fit"]
        fast = r["jgd.fit guard=loss"]
        ratios = [f"{fit / r[p]:.1f}x / {fast / r[p]:.1f}x" if r[p] else "-" for p in PEERS[2:]]
        body.append(
            [
                r["batch"],
                *cells,
                f"{r['matmul_limit']:,.0f}",
                f"{100 * fit / r['matmul_limit']:.0f}% / {100 * fast / r['matmul_limit']:.0f}%",
                *ratios,
            ]
        )
    headers = [
        "B",
        *PEERS,
        "matmul limit",
        "jgd.fit / limit (full / loss guard)",
        *[f"jgd.fit vs {p} (full / loss guard)" for p in PEERS[2:]],
    ]
    return (
        f"Steps per second (median of 3; compile excluded). Matmul rate {gflops:.1f} GFLOP/s; "
        "the limit is that rate over the model's FLOPs per step.\n\n" + hn.markdown(headers, body)
    )


def _figure(rows):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4.5), layout="constrained")
    batches = [r["batch"] for r in rows]
    for p in PEERS:
        pts = [(r["batch"], r[p]) for r in rows if r[p]]
        if pts:
            ax.loglog(*zip(*pts, strict=True), "o-", label=p)
    ax.loglog(batches, [r["matmul_limit"] for r in rows], "k--", label="matmul-limited")
    ax.set(
        xlabel="batch size",
        ylabel="steps per second",
        title="Training the seeds' MLP: steps per second",
    )
    ax.legend(fontsize=8)
    return fig
