"""A learning-rate sweep in one compiled call: 32 rates x 8 seeds of mini-batch SGD."""

import numpy as np

import jgd

line = jgd.problems.line()  # seed 003's line fit: loss, start (-1, -1), data, SGD
rates = np.geomspace(0.01, 3.0, 32)
result = line.sweep(learning_rate=rates, seeds=range(8), batch_size=10, epochs=20)

final = result.losses[:, -10:].mean(axis=1).reshape(32, 8)  # last-epoch loss, per rate and seed
diverged = result.diverged.reshape(32, 8).any(axis=1)
best = rates[np.nanargmin(np.where(diverged, np.inf, final.mean(axis=1)))]
print(
    f"{len(result)} runs in one call (compile {result.compile_time:.2f}s, "
    f"run {result.run_time:.2f}s); best rate {best:.3f}; "
    f"first diverging rate {rates[diverged][0]:.3f}"
)
