"""Forward vs reverse mode (and finite differences) on your own function, checked and timed."""

import jax
import jax.numpy as jnp

import jgd


def loss(params, batch):  # any scalar function of a pytree
    h = jnp.tanh(batch @ params["W1"])
    return jnp.mean((h @ params["W2"]) ** 2)


key1, key2, key3 = jax.random.split(jax.random.key(0), 3)
params = {"W1": jax.random.normal(key1, (20, 50)) * 0.1, "W2": jax.random.normal(key2, (50, 3))}
batch = jax.random.normal(key3, (32, 20))

report = jgd.check_grads(loss, params, batch, timing=True)
print(report)  # relative error, loss evaluations and time of each mode vs reverse mode
forward = report["forward"]
print(
    f"forward mode needed {forward.loss_evaluations:,} passes for P = {report.num_params:,}; "
    f"reverse mode 1 forward + 1 backward"
)
