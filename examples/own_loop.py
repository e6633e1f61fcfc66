"""Your own training loop from jgd's blocks, the same loop in blocks of an epoch, and fit.

Adam with a cosine schedule on scikit-learn's 8x8 digits (no download): a log line every 100
steps, the test accuracy after every epoch. The three runs see the same batches and end on the
same weights, bit for bit: fit is built from the blocks the first two use.
"""

import jax
import numpy as np
import optax

import jgd

mlp = jgd.problems.mlp("digits")  # the seeds' Net (64-128-10) and its loss on the 8x8 digits
loss, params, train = mlp.loss, mlp.params, mlp.data
epochs, batch = 8, 32
order = jgd.shuffled_order(len(train.y), batch, epochs, key=0)  # fit's plan for key=0
per_epoch = len(order) // epochs
schedule = optax.cosine_decay_schedule(3e-3, decay_steps=len(order))


accuracy = mlp.accuracy  # on the held-out digits


# 1. A loop of your own: one compiled step per call, the batch gathered on the device by index.
step = jgd.with_data(jgd.make_step(loss, optax.adam(schedule)), (train.X, train.y))
state = jgd.TrainState.create(params, optax.adam(schedule), key=0)
for epoch, rows_of_epoch in enumerate(order.reshape(epochs, per_epoch, batch)):
    for rows in rows_of_epoch:
        state, metrics = step(state, rows)
        if int(state.step) % 100 == 0:  # reading a number waits for the device: only now
            print(f"step {int(state.step)}: batch loss {float(metrics['loss']):.4f}")
    print(f"epoch {epoch + 1}: test accuracy {accuracy(state.params):.4f}")
own = state

# 2. The same, an epoch per call: scan_steps runs the epoch's steps as one compiled loop.
steps = jgd.scan_steps(step)
state = jgd.TrainState.create(params, optax.adam(schedule), key=0)
for epoch, rows_of_epoch in enumerate(order.reshape(epochs, per_epoch, batch)):
    state, metrics = steps(state, rows_of_epoch)
    mean = float(np.mean(metrics["loss"]))
    print(f"epoch {epoch + 1}: mean loss {mean:.4f}, test accuracy {accuracy(state.params):.4f}")
scanned = state


# 3. fit: the same run (the same plan for key=0), a report after every epoch.
def report(progress):
    print(
        f"epoch {progress.epoch}: mean loss {np.mean(progress.losses):.4f}, "
        f"test accuracy {accuracy(progress.state.params):.4f}"
    )


result = jgd.fit(
    loss,
    params,
    (train.X, train.y),
    optimizer=optax.adam,
    learning_rate=schedule,
    batch_size=batch,
    epochs=epochs,
    key=0,
    report_every="epoch",
    callback=report,
)

leaves = [jax.tree.leaves(s) for s in (own.params, scanned.params, result.params)]
same = all(np.array_equal(a, b) and np.array_equal(a, c) for a, b, c in zip(*leaves, strict=True))
print(f"final test accuracy {accuracy(result.params):.4f}; the three runs equal bitwise: {same}")
