"""A PyTorch conv net replayed in jgd step for step: from_torch copies it, to_optax its optimizer.

    python examples/torch_convnet.py [MNIST_DIR]

MNIST from MNIST_DIR (the IDX files) or jgd's download cache when present, else scikit-learn's
8x8 digits (no download). The net has BatchNorm, max pooling and its head declared before its
body; torch trains it with SGD over two param groups (weight decay on the conv and linear weights
only), Nesterov momentum and MultiStepLR. jgd.models.from_torch reads the net from its traced
graph (torch's BatchNorm statistics included), jgd.torch_baseline.to_optax(..., module=net) maps
the groups onto the copy's params, and jgd.fit runs the same batches.
"""

import copy
import sys

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812
from torch import nn

import jgd
from jgd.torch_baseline import to_optax


class ConvNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.head = nn.Linear(16 * 2 * 2, 10)  # declared first, runs last
        self.conv1 = nn.Conv2d(1, 8, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(8)
        self.conv2 = nn.Conv2d(8, 16, 3, padding=1)
        self.pool = nn.AdaptiveAvgPool2d(2)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.bn1(self.conv1(x))), 2)
        x = self.pool(F.relu(self.conv2(x)))
        return self.head(torch.flatten(x, 1))


splits = jgd.data.real_digits(sys.argv[1] if len(sys.argv) > 1 else None)
side = int(np.sqrt(splits.train.X.shape[1]))
X = splits.train.X.reshape(-1, 1, side, side).astype(np.float32)
y = splits.train.y.astype(np.int64)
X_test = splits.test.X.reshape(-1, 1, side, side).astype(np.float32)
steps, batch = 100, 64
order = np.random.default_rng(0).integers(0, len(y), size=(steps, batch))

torch.manual_seed(0)
net = ConvNet()
start = copy.deepcopy(net)  # the same init for jgd
decay = [p for n, p in net.named_parameters() if n.endswith("weight") and "bn" not in n]
rest = [p for n, p in net.named_parameters() if not (n.endswith("weight") and "bn" not in n)]
opt = torch.optim.SGD(
    [{"params": decay, "weight_decay": 5e-4}, {"params": rest}], lr=0.05, momentum=0.9,
    nesterov=True,
)  # fmt: skip
sched = torch.optim.lr_scheduler.MultiStepLR(opt, [50, 80], gamma=0.1)
tx = to_optax(opt, sched, steps=steps, module=net)  # before torch steps

torch_losses = []
for rows in order:
    opt.zero_grad()
    loss = F.cross_entropy(net(torch.from_numpy(X[rows])), torch.from_numpy(y[rows]))
    loss.backward()
    opt.step()
    sched.step()
    torch_losses.append(loss.item())

model = jgd.models.from_torch(start)
result = jgd.fit(
    lambda m, b: jgd.losses.cross_entropy(m(b[0]), b[1]), model, (X, y), optimizer=tx, order=order
)
rel = np.abs(np.asarray(result.losses) - torch_losses) / np.abs(torch_losses)
stats = jgd.models.state_dict(result.model)
bn = max(
    float(np.max(np.abs(stats[k] - net.state_dict()[k].numpy())) / np.max(np.abs(stats[k])))
    for k in ("bn1.running_mean", "bn1.running_var")
)
net.eval()
with torch.no_grad():
    torch_acc = float((net(torch.from_numpy(X_test)).argmax(1).numpy() == splits.test.y).mean())
print(f"data: {splits.name}, images {side}x{side}, {steps} steps of {batch}")
print(f"loss at step 0 and {steps - 1}: jgd {result.losses[0]:.4f} {result.losses[-1]:.4f}, "
      f"torch {torch_losses[0]:.4f} {torch_losses[-1]:.4f}")  # fmt: skip
print(f"max relative loss difference: first 10 steps {rel[:10].max():.1e}, all {rel.max():.1e}")
print(f"max BatchNorm running-statistics difference (relative): {bn:.1e}")
jgd_acc = jgd.models.accuracy(result.model, X_test, splits.test.y)
print(f"test accuracy (eval mode): jgd {jgd_acc:.4f}, torch {torch_acc:.4f}")
