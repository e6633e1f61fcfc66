"""The pure route to state and randomness: ``jgd.Stateful`` and ``loss(params, batch, state, key)``,
equal to the loop written by hand, and reproduced by every way of running it."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jgd

rng = np.random.default_rng(3)
X = rng.normal(size=(64, 5)).astype(np.float32)
Y = rng.normal(size=64).astype(np.float32)
W = {"a": jnp.asarray(rng.normal(size=(5, 4)), jnp.float32), "b": jnp.zeros(4)}
ORDER = np.random.default_rng(4).integers(0, 64, size=(20, 8))


def loss(w, batch, running, key):
    """Centre the hidden layer by its batch mean (kept as a running mean), then dropout."""
    x, y = batch
    h = x @ w["a"]
    mean = jnp.mean(h, 0)
    keep = jax.random.bernoulli(key, 0.8, h.shape)
    h = jnp.where(keep, (h - mean) / 0.8, 0.0)
    return jnp.mean((h @ w["b"] - y) ** 2), 0.9 * running + 0.1 * mean


def model(key=0):
    return jgd.Stateful(W, state=jnp.zeros(4), key=key)


def hand_loop(tx, key):
    """The loop written by hand: the step's key is fold_in(key, step), the state threaded."""
    stream = jax.random.PRNGKey(key)

    @jax.jit
    def step(w, opt, running, i, rows):
        k = jax.random.fold_in(stream, i)
        (value, running), g = jax.value_and_grad(loss, has_aux=True)(
            w, (jnp.asarray(X)[rows], jnp.asarray(Y)[rows]), running, k
        )
        updates, opt = tx.update(g, opt, w)
        return optax.apply_updates(w, updates), opt, running, value

    w, opt, running, losses = W, tx.init(W), jnp.zeros(4), []
    for i, rows in enumerate(ORDER):
        w, opt, running, value = step(w, opt, running, i, rows)
        losses.append(value)
    return w, running, np.array(losses)


def test_fit_equals_the_hand_written_loop():
    tx = optax.adam(0.02)
    w, running, losses = hand_loop(tx, key=0)
    result = jgd.fit(loss, model(), (X, Y), optimizer=tx, order=ORDER)
    np.testing.assert_array_equal(result.losses, losses)
    np.testing.assert_array_equal(result.model.state, running)
    for a, b in zip(jax.tree.leaves(result.model.params), jax.tree.leaves(w), strict=True):
        np.testing.assert_array_equal(a, b)
    assert int(result.model.count) == len(ORDER)


def test_continued_resumed_swept_and_hand_stepped_runs_reproduce_one_run(tmp_path):
    tx = optax.adam(0.02)
    whole = jgd.fit(loss, model(), (X, Y), optimizer=tx, order=ORDER)
    first = jgd.fit(loss, model(), (X, Y), optimizer=tx, order=ORDER[:7])
    rest = jgd.fit(loss, first.state, (X, Y), optimizer=tx, order=ORDER[7:])
    np.testing.assert_array_equal(np.concatenate([first.losses, rest.losses]), whole.losses)
    again = jgd.fit(loss, first.model, (X, Y), optimizer=tx, order=ORDER[7:])
    # a fresh optimizer state on the trained model: other steps, but the stream goes on
    assert int(again.model.count) == len(ORDER)

    class StopError(Exception):
        pass

    def stop(progress):
        if progress.step >= 10:
            raise StopError

    with pytest.raises(StopError):
        jgd.fit(
            loss, model(), (X, Y), optimizer=tx, order=ORDER, checkpoint_dir=tmp_path,
            checkpoint_every=5, report_every=5, callback=stop,
        )  # fmt: skip
    resumed = jgd.fit(
        loss, model(), (X, Y), optimizer=tx, order=ORDER, checkpoint_dir=tmp_path,
        checkpoint_every=5,
    )  # fmt: skip
    np.testing.assert_array_equal(resumed.losses, whole.losses)
    np.testing.assert_array_equal(resumed.model.state, whole.model.state)

    state = jgd.TrainState.create(model(), tx)
    stepped = jgd.scan_steps(jgd.with_data(jgd.make_step(loss, tx), (X, Y)))
    state, metrics = stepped(state, ORDER)
    np.testing.assert_array_equal(metrics["loss"], whole.losses)

    swept = jgd.sweep(
        loss, model(), (X, Y), optimizer=optax.adam, learning_rate=[0.02, 0.05], seeds=[0, 1],
        order=ORDER,
    )  # fmt: skip
    for i in range(len(swept)):
        alone = jgd.fit(
            loss, model(), (X, Y), optimizer=optax.adam(swept.learning_rate[i]),
            key=swept.seed[i], order=ORDER,
        )  # fmt: skip
        np.testing.assert_allclose(swept[i].losses, alone.losses, rtol=1e-6)
        np.testing.assert_allclose(swept[i].model.state, alone.model.state, rtol=1e-5, atol=1e-7)
    assert not np.array_equal(swept.losses[0], swept.losses[1])  # each seed its own masks


def test_every_mode_sees_one_key_per_step():
    tx = optax.sgd(0.05)
    reverse = jgd.fit(loss, model(), (X, Y), optimizer=tx, order=ORDER[:5])
    central = jgd.fit(loss, model(), (X, Y), optimizer=tx, order=ORDER[:5], mode="fd_central")
    np.testing.assert_allclose(central.losses, reverse.losses, rtol=1e-3)
    np.testing.assert_allclose(central.model.state, reverse.model.state, rtol=1e-3, atol=1e-5)


def test_aux_with_state():
    def with_aux(w, batch, running, key):
        value, running = loss(w, batch, running, key)
        return value, ({"scale": jnp.linalg.norm(running)}, running)

    result = jgd.fit(with_aux, model(), (X, Y), optimizer=optax.sgd(0.05), order=ORDER[:6],
                     has_aux=True)  # fmt: skip
    plain = jgd.fit(loss, model(), (X, Y), optimizer=optax.sgd(0.05), order=ORDER[:6])
    np.testing.assert_array_equal(result.losses, plain.losses)
    assert result.aux["scale"].shape == (6,)


def test_bad_stateful_losses_are_named():
    tx = optax.sgd(0.1)
    with pytest.raises(ValueError, match=r"must return \(value, new_state\).*one array of shape"):
        jgd.fit(lambda w, b, s, k: loss(w, b, s, k)[0], model(), (X, Y), optimizer=tx)
    with pytest.raises(ValueError, match="changed state at the root from .4,. float32 to .4,. "):
        jgd.fit(
            lambda w, b, s, k: (loss(w, b, s, k)[0], s.astype(jnp.float16)), model(), (X, Y),
            optimizer=tx,
        )  # fmt: skip
    with pytest.raises(ValueError, match="changed the structure of state"):
        jgd.fit(lambda w, b, s, k: (loss(w, b, s, k)[0], (s, s)), model(), (X, Y), optimizer=tx)
    with pytest.raises(ValueError, match=r"has_aux=True, .* returns \(value, \(aux, new_state\)\)"):
        jgd.fit(loss, model(), (X, Y), optimizer=tx, has_aux=True)
