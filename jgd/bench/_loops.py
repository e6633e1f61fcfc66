"""The ways to train the seeds' MLP that ``jgd bench train`` compares: each ``once() -> seconds``.

Every contender runs the same batches (an explicit order) from the same initial weights, and
times one whole pass over the order after its own warm-up (compiles happen in the warm-up call).

- ``jgd.fit``: the engine (one compiled loop, the default exact guard).
- ``jgd scan_steps x100``: a user's loop over blocks of 100 steps, ``scan_steps(with_data(...))``.
- ``jgd with_data loop``: a user's loop, one compiled ``with_data`` step per call.
- ``naive loop``: ``jax.jit(make_step)`` per call, its batch cut from the device arrays with the
  host's indices (``X[rows]``: a gather dispatched per array per step), the loop the blocks replace.
- ``optax lax.scan``: the loop written by hand with optax: ``jax.jit`` of a ``lax.scan``.
- ``flax nnx.jit loop``: the flax NNX tutorial's train step under a Python loop.
- ``torch eager`` and ``torch.compile``: the seeds' PyTorch loop.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

import jgd
from jgd import data, problems, timing
from jgd.apps import compare

LEARNING_RATES = {"sgd": 0.01, "momentum": 0.01, "adam": 1e-3}
BLOCK = 100  # steps per scan_steps block


def factory(name: str) -> Callable[..., optax.GradientTransformation]:
    """The optax factory of ``name`` ("sgd", "momentum" (0.9) or "adam")."""
    return {
        "sgd": optax.sgd,
        "momentum": functools.partial(optax.sgd, momentum=0.9),
        "adam": optax.adam,
    }[name]


def model(hidden: int = 128) -> tuple[Callable, Any]:
    """The seeds' loss (784-hidden-10 MLP, cross-entropy) and its initial params."""
    mlp = problems.mlp("synthetic", hidden=hidden, examples=1)
    return mlp.loss, mlp.params


def jgd_fit(X, y, order, name, hidden):
    loss, params = model(hidden)
    lr = LEARNING_RATES[name]

    def once():
        return jgd.fit(
            loss, params, (X, y), optimizer=factory(name), learning_rate=lr, order=order
        ).run_time

    return once


def scan_blocks(X, y, order, name, hidden):
    loss, params = model(hidden)
    opt = factory(name)(LEARNING_RATES[name])
    steps = jgd.scan_steps(jgd.with_data(jgd.make_step(loss, opt), (X, y)))
    pad = (-len(order)) % BLOCK
    blocks = np.concatenate([order, np.zeros((pad, order.shape[1]), order.dtype)])
    blocks = blocks.reshape(-1, BLOCK, order.shape[1]).astype(np.int32)
    last = len(order) - (len(blocks) - 1) * BLOCK

    def run():
        state = jgd.TrainState.create(params, opt)
        for i, rows in enumerate(blocks):
            state, _ = steps(state, rows, last if i == len(blocks) - 1 else BLOCK)
        return state

    return lambda: timing.blocked(run)


def with_data_loop(X, y, order, name, hidden):
    loss, params = model(hidden)
    opt = factory(name)(LEARNING_RATES[name])
    step = jgd.with_data(jgd.make_step(loss, opt), (X, y))
    rows = order.astype(np.int32)

    def run():
        state = jgd.TrainState.create(params, opt)
        for r in rows:
            state, _ = step(state, r)
        return state

    return lambda: timing.blocked(run)


def naive_loop(X, y, order, name, hidden):
    loss, params = model(hidden)
    opt = factory(name)(LEARNING_RATES[name])
    step = jax.jit(jgd.make_step(loss, opt))
    Xd, yd = jax.device_put((X, y))

    def run():
        state = jgd.TrainState.create(params, opt)
        for r in order:  # device arrays indexed from the host: a gather dispatched per array
            state, _ = step(state, (Xd[r], yd[r]))
        return state

    return lambda: timing.blocked(run)


def optax_scan(X, y, order, name, hidden):
    loss, params = model(hidden)
    opt = factory(name)(LEARNING_RATES[name])

    @jax.jit
    def run(params, opt_state, X, y, rows):
        def body(carry, r):
            p, s = carry
            value, grads = jax.value_and_grad(loss)(p, (jnp.take(X, r, 0), jnp.take(y, r, 0)))
            updates, s = opt.update(grads, s, p)
            return (optax.apply_updates(p, updates), s), value

        return jax.lax.scan(body, (params, opt_state), rows)

    Xd, yd = jax.device_put((X, y))
    return lambda: timing.blocked(
        lambda: run(params, opt.init(params), Xd, yd, jax.device_put(order.astype(np.int32)))
    )


def nnx_loop(X, y, order, name, hidden):
    Xd, yd = jax.device_put((X, y))
    tx = factory(name)(LEARNING_RATES[name])

    @nnx.jit
    def train_step(net, optimizer, x, labels):
        def loss_fn(net):
            return optax.softmax_cross_entropy_with_integer_labels(net(x), labels).mean()

        loss, grads = nnx.value_and_grad(loss_fn)(net)
        optimizer.update(net, grads)
        return loss

    def run():
        net = jgd.models.MLP(784, hidden, 10, rngs=nnx.Rngs(0))
        optimizer = nnx.Optimizer(net, tx, wrt=nnx.Param)
        loss = None
        for r in order:
            loss = train_step(net, optimizer, Xd[r], yd[r])
        return loss

    return lambda: timing.blocked(run)


def torch_loop(X, y, order, name, hidden, compile: bool = False):
    """The seeds' PyTorch loop (SGD, with momentum) through the one comparison's ``Race``; None
    without torch or for Adam (issue 16 brings the other torch optimizers)."""
    if name == "adam":
        return None
    try:
        from jgd import torch_baseline

        torch = torch_baseline.require_torch()
    except ImportError:
        return None
    if compile:
        torch.compiler.reset()
    mlp = problems.mlp("synthetic", hidden=hidden, examples=1)._replace(data=data.Dataset(X, y))
    momentum = 0.9 if name == "momentum" else 0.0
    race = compare.Race(
        mlp, order, hidden=hidden, lr=LEARNING_RATES[name], momentum=momentum, compile=compile
    )
    return lambda: race.torch().seconds


CONTENDERS = {
    "jgd.fit": jgd_fit,
    "jgd scan_steps x100": scan_blocks,
    "jgd with_data loop": with_data_loop,
    "naive loop": naive_loop,
    "optax lax.scan": optax_scan,
    "flax nnx.jit loop": nnx_loop,
    "torch eager": torch_loop,
    "torch.compile": functools.partial(torch_loop, compile=True),
}
