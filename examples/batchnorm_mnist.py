"""Your own NNX model with BatchNorm and Dropout, trained by jgd.fit, then evaluated in eval mode.

    python examples/batchnorm_mnist.py [MNIST_DIR]

MNIST from MNIST_DIR (the IDX files) or jgd's download cache when present, else scikit-learn's
8x8 digits (no download). fit differentiates the module's nnx.Params only; the running mean and
variance and the dropout stream are its model state, updated by each step's forward pass, as
NNX's own loop updates them. The module passed in is not changed: result.model is the trained one.
"""

import sys

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

import jgd


class Net(nnx.Module):
    """The seeds' Net (inputs -> 128 -> 10) with BatchNorm after the hidden layer and Dropout."""

    def __init__(self, inputs: int, rngs: nnx.Rngs):
        self.hidden = nnx.Linear(inputs, 128, use_bias=False, rngs=rngs)  # BatchNorm's bias
        self.norm = nnx.BatchNorm(128, rngs=rngs)
        self.drop = nnx.Dropout(0.2, rngs=rngs)
        self.out = nnx.Linear(128, 10, rngs=rngs)

    def __call__(self, x):
        return self.out(self.drop(jax.nn.relu(self.norm(self.hidden(x)))))


def loss(model, batch):
    x, y = batch
    logits = model(x)
    value = jnp.mean(optax.softmax_cross_entropy_with_integer_labels(logits, y))
    return value, {"accuracy": jnp.mean(jnp.argmax(logits, -1) == y)}  # aux: per step


splits = jgd.data.real_digits(sys.argv[1] if len(sys.argv) > 1 else None)
train, test = splits.train, splits.test
model = Net(train.X.shape[1], nnx.Rngs(0, dropout=1))
result = jgd.fit(
    loss,
    model,
    (train.X, train.y),
    optimizer=optax.adamw(1e-3, weight_decay=1e-4),  # decays the nnx.Params only
    batch_size=64,
    epochs=5,
    key=0,
    has_aux=True,
)
trained = result.model
stats = nnx.state(trained, nnx.BatchStat)
print(f"data: {splits.name}, {len(train.y)} training images, {len(test.y)} test images")
print(f"{result.steps} steps in {result.run_time:.2f} s (compiling {result.compile_time:.2f} s)")
print(f"last epoch's batch accuracy (train mode): {np.mean(result.aux['accuracy'][-50:]):.4f}")
print(f"running variance moved from 1 to mean {float(jnp.mean(stats['norm']['var'][...])):.4f}")
print(f"test accuracy (eval mode: running statistics, no dropout): "
      f"{jgd.models.accuracy(trained, test.X, test.y):.4f}")  # fmt: skip
