"""jgd.fit against the seeds' PyTorch loop, interleaved: the ratio least affected by machine noise.

Alternates the two on the same batches (5 rounds, the first dropped as warm-up) and prints the
median steps per second of each and their ratio, for batch sizes 1, 64 and 1024.

    python benchmarks/head_to_head.py
"""

import numpy as np
import optax
import torch
from flax import nnx

import jgd
from jgd import torch_baseline


def main(rounds: int = 5) -> None:
    rng = np.random.default_rng(0)
    X = rng.uniform(size=(8192, 784)).astype(np.float32)
    y = rng.integers(0, 10, 8192).astype(np.int32)
    apply, params = jgd.models.functional(jgd.models.MLP(rngs=nnx.Rngs(0)))
    loss = jgd.models.classification_loss(apply)
    for batch, steps in [(1, 3000), (64, 1000), (1024, 150)]:
        order = rng.integers(0, 8192, size=(steps, batch))
        rates = {"jgd.fit": [], "jgd.fit guard=loss": [], "torch eager": []}
        for _ in range(rounds):
            for guard, name in [("full", "jgd.fit"), ("loss", "jgd.fit guard=loss")]:
                r = jgd.fit(
                    loss,
                    params,
                    (X, y),
                    optimizer=optax.sgd,
                    learning_rate=0.01,
                    order=order,
                    guard=guard,
                )
                rates[name].append(steps / r.run_time)
            torch.manual_seed(0)
            net = torch_baseline.Net()
            rates["torch eager"].append(steps / torch_baseline.train(net, X, y, order)["seconds"])
        med = {k: float(np.median(v[1:])) for k, v in rates.items()}
        print(
            f"B={batch:>5}: "
            + ", ".join(f"{k} {v:,.0f}/s" for k, v in med.items())
            + f"; jgd.fit / torch {med['jgd.fit'] / med['torch eager']:.2f}x, "
            f"guard=loss / torch {med['jgd.fit guard=loss'] / med['torch eager']:.2f}x"
        )


if __name__ == "__main__":
    main()
