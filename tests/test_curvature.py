import jax
import jax.numpy as jnp
import numpy as np

import jgd


def test_hvp_matches_the_explicit_hessian(x64):
    rng = np.random.default_rng(0)
    A = rng.normal(size=(5, 5))

    def loss(w, batch):
        return jnp.sum(jnp.sin(w) * batch) + 0.5 * w @ (A @ A.T) @ w + jnp.sum(w**4)

    w, v, batch = jnp.asarray(rng.normal(size=5)), jnp.asarray(rng.normal(size=5)), jnp.arange(5.0)
    H = jax.hessian(loss)(w, batch)
    np.testing.assert_allclose(jgd.hvp(loss, w, batch, v), H @ v, rtol=1e-12)


def test_bowl_bound_is_two():
    bound = jgd.max_stable_learning_rate(lambda w, b: 0.5 * (w - 3.0) ** 2, jnp.array(-2.0), None)
    np.testing.assert_allclose(bound.learning_rate, 2.0, rtol=1e-6)
    np.testing.assert_allclose(bound.eigenvalue, 1.0, rtol=1e-6)


def test_line_fit_bound_matches_closed_form(line_data, x64):
    X, y, _ = line_data
    loss = jgd.per_example(lambda th, ex: jgd.losses.squared_error(ex[0] @ th, ex[1]))
    bound = jgd.max_stable_learning_rate(loss, jnp.array([-1.0, -1.0]), (X, y))
    lam = np.linalg.eigvalsh(2 * X.T @ X / len(X)).max()
    np.testing.assert_allclose(bound.eigenvalue, lam, rtol=1e-8)
    np.testing.assert_allclose(bound.learning_rate, 2 / lam, rtol=1e-8)


def test_bound_is_where_gd_starts_to_diverge(line_data):
    X, y, _ = line_data
    loss = jgd.per_example(lambda th, ex: jgd.losses.squared_error(ex[0] @ th, ex[1]))
    lr = float(jgd.max_stable_learning_rate(loss, jnp.array([-1.0, -1.0]), (X, y)).learning_rate)
    import optax

    result = jgd.sweep(
        loss,
        jnp.array([-1.0, -1.0]),
        (X, y),
        optimizer=optax.sgd,
        learning_rate=[0.95 * lr, 1.05 * lr],
        epochs=300,
    )
    assert result.diverged.tolist() == [False, True]


def test_bound_is_jittable_and_handles_concave_loss():
    f = jax.jit(lambda w: jgd.max_stable_learning_rate(lambda p, b: -jnp.sum(p**2), w, None))
    bound = f(jnp.ones(3))
    assert float(bound.eigenvalue) < 0 and np.isinf(bound.learning_rate)


def test_the_tools_called_eagerly_run_one_program_each_and_reuse_it():
    """Eagerly, each tool compiles one program (not one per small operation) and a second call
    with the same loss compiles nothing; inside a jit, or with a loss that reads its batch in
    Python (which jit cannot trace: hvp, eagerly, could take one), they run as traced code and
    give the same numbers."""
    X = jnp.asarray(np.random.default_rng(0).normal(size=(16, 3)))
    y = X @ jnp.array([1.0, -2.0, 0.5])
    loss = jgd.per_example(lambda w, ex: jgd.losses.squared_error(ex[0] @ w, ex[1]))
    w, v = jnp.array([0.1, 0.2, 0.3]), jnp.ones(3)
    with jgd.timing.backend_compiles() as first:
        tools = (
            jgd.hvp(loss, w, (X, y), v),
            jgd.max_stable_learning_rate(loss, w, (X, y)).eigenvalue,
            float(jgd.gradient_noise_scale(loss, w, (X, y))),
        )
    with jgd.timing.backend_compiles() as again:
        repeated = (
            jgd.hvp(loss, w + 1.0, (X, y), v),  # other values, the same program
            jgd.max_stable_learning_rate(loss, w, (X, y), max_iterations=50).eigenvalue,
            float(jgd.gradient_noise_scale(loss, w, (X, y))),
        )
    assert first["n"] <= 10 and again["n"] <= 1, (first, again)  # `w + 1.0` is eager
    # (before: 12, 17 and 15 compiles, the tools' small operations one by one)
    np.testing.assert_allclose(repeated[0], tools[0], rtol=1e-5)  # a quadratic: H constant
    np.testing.assert_allclose(repeated[1], tools[1], rtol=1e-4)
    assert repeated[2] == tools[2]
    traced = jax.jit(lambda w: jgd.hvp(loss, w, (X, y), v))(w)
    np.testing.assert_allclose(traced, tools[0], rtol=1e-6)
    traced = jax.jit(lambda w: jgd.max_stable_learning_rate(loss, w, (X, y)).eigenvalue)(w)
    np.testing.assert_allclose(traced, tools[1], rtol=1e-5)

    def reads_its_batch(w, batch):  # Python control flow on the batch's values
        scale = 2.0 if float(batch[1][0]) > 0 else 1.0
        return scale * loss(w, batch)

    doubled = 2.0 if float(y[0]) > 0 else 1.0
    np.testing.assert_allclose(jgd.hvp(reads_its_batch, w, (X, y), v), doubled * tools[0])

    def first_rows(w, batch):  # a Python int in the batch, used as a slice bound
        X, y, n = batch
        return loss(w, (X[:n], y[:n]))

    halves = [jgd.max_stable_learning_rate(first_rows, w, (X, y, n)).eigenvalue for n in (8, 16)]
    np.testing.assert_allclose(halves[1], tools[1], rtol=1e-5)  # all 16 rows: as before
    assert not np.isclose(halves[0], halves[1])  # the first 8 rows: their own curvature
