"""Replay a PyTorch run step for step: same weights, same batches, same losses.

Needs PyTorch (`pip install 'jgd[torch]'`).
"""

import numpy as np
import optax
import torch

import jgd
from jgd import torch_baseline

train = jgd.data.digits("train")  # real 8x8 digits shipped with scikit-learn
torch.manual_seed(0)
net = torch_baseline.Net(64, 128, 10)  # the seeds' Net, 64 inputs
apply, params = jgd.models.functional(jgd.models.from_torch(net))  # the same weights in JAX

# one explicit order of batches drives both: 5 epochs of NumPy default_rng(0) permutations
order = jgd.data.epoch_order(len(train.y), 64, epochs=5, seed=0)

ours = jgd.fit(
    jgd.models.classification_loss(apply),
    params,
    tuple(train),
    optimizer=optax.sgd,
    learning_rate=0.01,
    order=order,
)
theirs = torch_baseline.train(net, train.X, train.y, order, lr=0.01)
gap = np.max(np.abs(ours.losses - theirs["losses"]) / theirs["losses"])
print(f"{len(order)} steps; max relative loss difference jgd vs PyTorch: {gap:.1e}")
