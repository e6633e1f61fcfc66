"""Compose a jitted training step from your own loss and an optax chain, and drive it yourself.

`jgd.make_step` gives a pure `step(state, batch) -> (state, metrics)`; jit it, scan it, vmap it.
"""

import jax
import jax.numpy as jnp
import optax

import jgd


def loss(params, batch):  # your own loss: ridge regression written by hand
    X, y = batch
    return jnp.mean((X @ params["w"] + params["b"] - y) ** 2) + 1e-3 * jnp.sum(params["w"] ** 2)


optimizer = optax.chain(optax.clip_by_global_norm(1.0), optax.adam(0.05))
step = jax.jit(jgd.make_step(loss, optimizer))

data = jgd.data.line(m=200, seed=1)
X, y = jnp.asarray(data.X[:, :1]), jnp.asarray(data.y)
state = jgd.TrainState.create({"w": jnp.zeros(1), "b": jnp.zeros(())}, optimizer, key=0)


def epoch(state, _):  # 10 mini-batches of 20, one compiled scan per epoch
    return jax.lax.scan(step, state, (X.reshape(10, 20, 1), y.reshape(10, 20)))


state, metrics = jax.lax.scan(epoch, state, None, length=100)
print(
    f"w = {float(state.params['w'][0]):.3f}, b = {float(state.params['b']):.3f} "
    f"(true 2, 1); final batch loss {float(metrics['loss'][-1, -1]):.4f}"
)
