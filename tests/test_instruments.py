"""Instruments inside the compiled run: sharpness and gradient noise scale records (issue 18)."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jgd
from jgd import _instruments

EIGENVALUES = np.array([5.0, 2.0, 1.0, 0.5, 0.1])


def quadratic():
    """0.5 wᵀAw with a known spectrum (λmax = 5) in a rotated basis: the Hessian everywhere."""
    q, _ = np.linalg.qr(np.random.default_rng(0).normal(size=(5, 5)))
    a = jnp.asarray(q @ np.diag(EIGENVALUES) @ q.T)
    return lambda w, batch: 0.5 * w @ (a @ w)


def line_problem(m=40, seed=0):
    rng = np.random.default_rng(seed)
    X = np.c_[rng.normal(size=(m, 2)), np.ones(m)]
    y = X @ np.array([1.0, -2.0, 0.5]) + 0.3 * rng.normal(size=m)
    loss = jgd.per_example(lambda w, ex: (ex[0] @ w - ex[1]) ** 2)
    return loss, (X, y)


def test_sharpness_of_a_quadratic_is_its_top_eigenvalue_at_every_record(x64):
    result = jgd.fit(
        quadratic(),
        jnp.ones(5),
        np.zeros((1, 1)),
        optimizer=optax.sgd,
        learning_rate=0.1,
        epochs=60,
        sharpness_every=7,
    )
    sharp = result.sharpness
    np.testing.assert_array_equal(sharp.steps, np.arange(0, 60, 7))
    np.testing.assert_allclose(sharp.values, 5.0, rtol=1e-5)
    assert sharp.iterations[0] > sharp.iterations[1:].max()  # cold once, then warm
    assert sharp.iterations[1:].max() <= _instruments.WARM_ITERATIONS
    assert result.noise_scale is None


def test_sharpness_matches_max_stable_learning_rate_on_a_network():
    mlp = jgd.problems.edge_of_stability(examples=200, hidden=16)
    result = mlp.fit(learning_rate=0.05, epochs=30, sharpness_every=10)
    for step, value in zip(result.sharpness.steps, result.sharpness.values, strict=True):
        again = mlp.fit(learning_rate=0.05, epochs=int(step)) if step else None
        params = mlp.params if again is None else again.params
        bound = jgd.max_stable_learning_rate(mlp.loss, params, mlp.data, tolerance=1e-6)
        np.testing.assert_allclose(value, bound.eigenvalue, rtol=2e-3)


def test_edge_of_stability_on_a_small_net():
    """Full-batch GD with 2/η above the starting sharpness: the sharpness rises to 2/η and hovers
    there while the loss keeps falling (Cohen et al. 2021), on a net small enough for CI."""
    eos = jgd.problems.edge_of_stability(examples=500, hidden=64)
    lr = 0.111  # 2/η = 18, the start is about 10
    result = eos.fit(learning_rate=lr, epochs=2000, sharpness_every=25)
    values, edge = result.sharpness.values, 2 / lr
    assert values[0] < 0.65 * edge
    late = values[len(values) // 2 :]
    assert np.all(np.abs(late - edge) <= 0.1 * edge), (late.min(), late.max())
    losses = result.losses
    assert losses[-1] < 0.9 * losses[1000]  # still descending at the edge


def test_sweep_records_sharpness_per_run_equal_to_fit():
    eos = jgd.problems.edge_of_stability(examples=200, hidden=16)
    rates = [0.05, 0.2]
    swept = eos.sweep(learning_rate=rates, epochs=40, sharpness_every=10)
    assert swept.sharpness.values.shape == (2, 4)
    for i, lr in enumerate(rates):
        alone = eos.fit(learning_rate=lr, epochs=40, sharpness_every=10)
        np.testing.assert_array_equal(swept[i].sharpness.steps, alone.sharpness.steps)
        np.testing.assert_allclose(swept[i].sharpness.values, alone.sharpness.values, rtol=1e-4)


def _step_counter(every):
    """A recorder with ``every`` that tells the host each global step it runs at."""
    seen = []

    def update(state, view):
        jax.debug.callback(lambda t: seen.append(int(t)), view.step)
        return state, {"seen": view.step}

    return jgd.Recorder(lambda params, context: (), update, every=every), seen


def test_a_periodic_recorder_runs_only_on_its_steps_in_fit_and_under_sweeps_vmap():
    """The loop jumps from one record step to the next: the recorder's code runs at steps 0, 5,
    10, 15 only (a conditional that vmap turned into a select would run it at every step)."""
    eos = jgd.problems.edge_of_stability(examples=50, hidden=8)
    recorder, seen = _step_counter(5)
    result = eos.fit(learning_rate=0.1, epochs=20, recorders=[recorder], sharpness_every=10)
    assert seen == [0, 5, 10, 15]
    assert result.columns["seen"][[0, 5, 10, 15]].tolist() == [0, 5, 10, 15]
    assert (result.columns["seen"][[1, 2, 3, 4, 19]] == 0).all()  # ints: 0 between records
    seen.clear()
    swept = jgd.sweep(
        eos.loss, eos.params, eos.data, optimizer=optax.sgd, learning_rate=[0.1, 0.2],
        epochs=20, recorders=[recorder], sharpness_every=10,
    )  # fmt: skip
    assert sorted(set(seen)) == [0, 5, 10, 15] and len(seen) in (4, 8)  # per record, not step
    assert swept.columns["seen"].shape == (2, 20)


def test_records_land_on_global_steps_with_chunks_checkpoints_and_resume(tmp_path):
    eos = jgd.problems.edge_of_stability(examples=100, hidden=8)
    run = functools.partial(
        eos.fit, learning_rate=0.1, epochs=50, sharpness_every=6, noise_scale_every=4
    )
    whole = run()
    np.testing.assert_array_equal(whole.sharpness.steps, np.arange(0, 50, 6))
    np.testing.assert_array_equal(whole.noise_scale.steps, np.arange(0, 50, 4))

    chunked = run(report_every=7, callback=lambda p: None)
    for name in ("sharpness", "noise_scale"):
        a, b = getattr(whole, name), getattr(chunked, name)
        np.testing.assert_array_equal(a.steps, b.steps)
        np.testing.assert_allclose(a.values, b.values, rtol=1e-5)

    def interrupt(progress):
        if progress.step >= 20:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run(checkpoint_dir=tmp_path, checkpoint_every=10, callback=interrupt)
    resumed = run(checkpoint_dir=tmp_path, checkpoint_every=10)
    np.testing.assert_array_equal(resumed.sharpness.steps, whole.sharpness.steps)
    np.testing.assert_allclose(resumed.sharpness.values, whole.sharpness.values, rtol=1e-5)
    np.testing.assert_array_equal(resumed.sharpness.iterations, chunked.sharpness.iterations)
    np.testing.assert_allclose(resumed.noise_scale.values, whole.noise_scale.values, rtol=1e-5)

    # continuing from a state: records stay on the global multiples of 6 and 4
    first = eos.fit(learning_rate=0.1, epochs=23)
    rest = jgd.fit(eos.loss, first.state, eos.data, optimizer=optax.sgd, learning_rate=0.1,
                   epochs=27, sharpness_every=6)  # fmt: skip
    np.testing.assert_array_equal(rest.sharpness.steps, [24, 30, 36, 42, 48])
    np.testing.assert_allclose(rest.sharpness.values, whole.sharpness.values[4:], rtol=1e-3)


def test_noise_scale_records_equal_the_formula_on_linear_regression(x64):
    loss, (X, y) = line_problem()
    result = jgd.fit(
        loss,
        jnp.zeros(3),
        (X, y),
        optimizer=optax.sgd,
        learning_rate=0.05,
        epochs=30,
        noise_scale_every=10,
        record_params=True,
    )
    np.testing.assert_array_equal(result.noise_scale.steps, [0, 10, 20])
    for step, value in zip(result.noise_scale.steps, result.noise_scale.values, strict=True):
        w = np.asarray(result.params_history[step])
        g = 2 * (X @ w - y)[:, None] * X  # per-example gradients
        G = g.mean(0)
        trace = np.mean(np.sum(g**2, 1)) - G @ G
        np.testing.assert_allclose(value, trace / (G @ G), rtol=1e-9)


def test_instruments_do_not_change_the_run():
    eos = jgd.problems.edge_of_stability(examples=100, hidden=8)
    plain = eos.fit(learning_rate=0.1, epochs=30)
    watched = eos.fit(learning_rate=0.1, epochs=30, sharpness_every=5, noise_scale_every=5)
    np.testing.assert_array_equal(plain.losses, watched.losses)
    for a, b in zip(jax.tree.leaves(plain.params), jax.tree.leaves(watched.params), strict=True):
        np.testing.assert_array_equal(a, b)


def test_minibatch_run_measures_on_fixed_examples():
    loss, (X, y) = line_problem(m=64)
    result = jgd.fit(
        loss,
        jnp.zeros(3),
        (X.astype(np.float32), y.astype(np.float32)),
        optimizer=optax.sgd,
        learning_rate=0.05,
        batch_size=8,
        epochs=4,
        key=0,
        sharpness_every=8,
    )
    # the Hessian of the mean squared error is 2 XᵀX / m, whatever the params
    top = np.linalg.eigvalsh(2 * X.T @ X / len(y))[-1]
    np.testing.assert_allclose(result.sharpness.values, top, rtol=1e-3)


def test_after_a_blow_up_the_records_are_nan():
    result = jgd.fit(
        lambda w, b: jnp.sum(w**4),
        jnp.array([1.0]),
        np.zeros((1, 1)),
        optimizer=optax.sgd,
        learning_rate=1.0,
        epochs=20,
        sharpness_every=2,
    )
    assert result.diverged
    ran = result.sharpness.steps < result.diverged_at
    assert np.isfinite(result.sharpness.values[ran]).all()
    assert np.isnan(result.sharpness.values[result.sharpness.steps > result.diverged_at]).all()


@pytest.mark.parametrize("name", ["sharpness_every", "noise_scale_every"])
@pytest.mark.parametrize(
    ("value", "error", "words"),
    [
        (0, ValueError, "integer >= 1"),
        (-3, ValueError, "integer >= 1"),
        (2.5, ValueError, "integer >= 1"),
        ("10", ValueError, "integer >= 1"),
        (True, ValueError, "integer >= 1"),
        (11, ValueError, "longer than the run (10 steps)"),
    ],
)
def test_bad_every_is_refused_naming_the_argument(name, value, error, words):
    loss, data = line_problem()
    with pytest.raises(error, match=name) as info:
        jgd.fit(loss, jnp.zeros(3), data, optimizer=optax.sgd, learning_rate=0.1, epochs=10,
                **{name: value})  # fmt: skip
    assert words in str(info.value)
    with pytest.raises(error, match=name):
        jgd.sweep(loss, jnp.zeros(3), data, optimizer=optax.sgd, learning_rate=[0.1], epochs=10,
                  **{name: value})  # fmt: skip


def test_noise_scale_over_one_example_is_refused():
    loss, (X, y) = line_problem()
    with pytest.raises(ValueError, match="noise_scale_every=1 needs at least 2 examples"):
        jgd.fit(loss, jnp.zeros(3), (X[:1], y[:1]), optimizer=optax.sgd, learning_rate=0.1,
                epochs=3, noise_scale_every=1)  # fmt: skip
