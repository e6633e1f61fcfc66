"""NNX modules as the thing trained: batch statistics and dropout carried as the run's model state,
step for step equal to NNX's own loop."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

import jgd

rng = np.random.default_rng(5)
X = rng.normal(size=(96, 6)).astype(np.float32)
Y = rng.integers(0, 3, size=96)
ORDER = np.random.default_rng(6).integers(0, 96, size=(25, 16))


class Net(nnx.Module):
    """Linear, BatchNorm, ReLU, Dropout, Linear: batch statistics and an RNG stream."""

    def __init__(self, rngs: nnx.Rngs):
        self.hidden = nnx.Linear(6, 16, rngs=rngs)
        self.norm = nnx.BatchNorm(16, rngs=rngs)
        self.drop = nnx.Dropout(0.3, rngs=rngs)
        self.out = nnx.Linear(16, 3, rngs=rngs)

    def __call__(self, x):
        return self.out(self.drop(jax.nn.relu(self.norm(self.hidden(x)))))


def _values(tree):
    """Every leaf as a NumPy array (PRNG keys by their data)."""

    def one(x):
        if jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
            x = jax.random.key_data(x)
        return np.asarray(x)

    return jax.tree.map(one, tree)


def loss(model, batch):
    x, y = batch
    return jnp.mean(optax.softmax_cross_entropy_with_integer_labels(model(x), y))


def nnx_loop(model, tx):
    """NNX's own tutorial loop: nnx.Optimizer(wrt=nnx.Param), nnx.jit, nnx.value_and_grad."""
    optimizer = nnx.Optimizer(model, tx, wrt=nnx.Param)

    @nnx.jit
    def train_step(model, optimizer, batch):
        value, grads = nnx.value_and_grad(loss)(model, batch)
        optimizer.update(model, grads)
        return value

    return [float(train_step(model, optimizer, (X[r], Y[r]))) for r in ORDER]


def test_fit_on_a_module_equals_nnx_own_loop_step_for_step():
    model = Net(nnx.Rngs(0, dropout=1))
    reference = nnx.clone(model)
    before = _values(nnx.state(model))
    expected = nnx_loop(reference, optax.adamw(0.01, weight_decay=0.1))
    result = jgd.fit(
        loss, model, (X, Y), optimizer=optax.adamw(0.01, weight_decay=0.1), order=ORDER
    )
    np.testing.assert_array_equal(result.losses, np.float32(expected))
    trained = result.model
    for a, b in zip(
        jax.tree.leaves(nnx.state(trained, nnx.BatchStat)),
        jax.tree.leaves(nnx.state(reference, nnx.BatchStat)),
        strict=True,
    ):
        np.testing.assert_array_equal(a, b)  # the running mean and variance moved, as NNX's
    assert not np.allclose(nnx.state(trained, nnx.BatchStat)["norm"]["var"][...], 1.0)
    trained.eval()
    reference.eval()
    np.testing.assert_array_equal(trained(X), reference(X))  # eval mode: the running statistics
    # the module given is untouched, and the result is a new one
    after = _values(nnx.state(model))
    for a, b in zip(jax.tree.leaves(before), jax.tree.leaves(after), strict=True):
        np.testing.assert_array_equal(a, b)
    assert trained is not model


def test_weight_decay_touches_only_the_params():
    model = Net(nnx.Rngs(0, dropout=1))
    result = jgd.fit(
        loss, model, (X, Y), optimizer=optax.adamw(0.01, weight_decay=0.5), order=ORDER[:3]
    )
    params = jax.tree.leaves(result.state.params)
    assert len(params) == len(jax.tree.leaves(nnx.state(model, nnx.Param)))  # kernels, biases,
    # the norm's scale and bias: the optimizer sees nothing else
    stats = nnx.state(result.model, nnx.BatchStat)
    assert len(jax.tree.leaves(stats)) == 2  # the running mean and variance: model state


def test_a_make_step_loop_on_a_module_state_equals_fit():
    model = Net(nnx.Rngs(0, dropout=1))
    tx = optax.sgd(0.05, momentum=0.9)
    result = jgd.fit(loss, model, (X, Y), optimizer=tx, order=ORDER)
    state = jgd.TrainState.create(model, tx)
    losses = []
    with_data = jgd.with_data(jgd.make_step(loss, tx), (X, Y))
    for rows in ORDER:
        state, metrics = with_data(state, rows)
        losses.append(float(metrics["loss"]))
    np.testing.assert_array_equal(np.float32(losses), result.losses)
    steps = jgd.scan_steps(jgd.with_data(jgd.make_step(loss, tx), (X, Y)))
    _, metrics = steps(jgd.TrainState.create(model, tx), ORDER)
    np.testing.assert_array_equal(metrics["loss"], result.losses)


def test_every_mode_starts_each_evaluation_from_one_model_state():
    """Finite differences on a module with dropout: the same mask for every perturbation, so the
    gradient agrees with reverse mode."""
    model = Net(nnx.Rngs(0, dropout=1))
    step_rev = jgd.make_step(loss, optax.sgd(0.0))
    step_fd = jgd.make_step(loss, optax.sgd(0.0), "fd_central")
    state = jgd.TrainState.create(model, optax.sgd(0.0))
    batch = (X[:16], Y[:16])

    def advance(step):
        new, view = step.advance(state, batch)
        return new, view.grads

    new_r, grads_r = jax.jit(lambda: advance(step_rev))()
    new_fd, grads_f = jax.jit(lambda: advance(step_fd))()
    for a, b in zip(jax.tree.leaves(grads_r), jax.tree.leaves(grads_f), strict=True):
        np.testing.assert_allclose(a, b, atol=2e-2, rtol=2e-2)
    # the state carried on is the one written at the unperturbed params: reverse mode's
    written = zip(
        jax.tree.leaves(_values(new_r.model_state)),
        jax.tree.leaves(_values(new_fd.model_state)),
        strict=True,
    )
    for a, b in written:
        np.testing.assert_array_equal(a, b)


def test_a_key_folds_into_the_modules_streams():
    model = Net(nnx.Rngs(0, dropout=1))
    plain = jgd.fit(loss, model, (X, Y), optimizer=optax.sgd(0.05), order=ORDER[:5])
    keyed = jgd.fit(loss, model, (X, Y), optimizer=optax.sgd(0.05), order=ORDER[:5], key=3)
    again = jgd.fit(loss, model, (X, Y), optimizer=optax.sgd(0.05), order=ORDER[:5], key=3)
    assert not np.array_equal(plain.losses, keyed.losses)  # other dropout masks
    np.testing.assert_array_equal(keyed.losses, again.losses)


def test_bad_modules_are_named():
    class NoParams(nnx.Module):
        def __init__(self):
            self.scale = nnx.BatchStat(jnp.ones(3))

        def __call__(self, x):
            return x * self.scale[...]

    with pytest.raises(ValueError, match="no nnx.Param"):
        jgd.fit(loss, NoParams(), (X, Y), optimizer=optax.sgd(0.1), epochs=1)

    class Mutating(nnx.Module):
        def __init__(self, rngs):
            self.lin = nnx.Linear(6, 3, rngs=rngs)

        def __call__(self, x):
            self.lin.bias[...] = self.lin.bias[...] + 1.0
            return self.lin(x)

    with pytest.raises(ValueError, match="assigned to an nnx.Param"):
        jgd.fit(loss, Mutating(nnx.Rngs(0)), (X, Y), optimizer=optax.sgd(0.1), epochs=1)
