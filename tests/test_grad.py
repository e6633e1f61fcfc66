"""The five gradient modes agree, keep structure and dtype, jit, and fail clearly on bad input."""

import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jgd
from tests.conftest import optimized_env

SHAPES = [
    {"w": (3,)},
    {"a": (2, 3), "b": (4,)},
    {"layers": [(5, 2), (2,)], "scale": ()},
    {"x": (1, 1, 7), "y": (6, 1)},
]


def random_tree(shapes, seed, dtype=jnp.float64):
    leaves, treedef = jax.tree_util.tree_flatten(shapes, is_leaf=lambda s: isinstance(s, tuple))
    rng = np.random.default_rng(seed)
    arrays = [jnp.asarray(rng.normal(size=s), dtype) for s in leaves]
    return jax.tree_util.tree_unflatten(treedef, arrays)


def smooth_loss(params, batch):
    """A non-separable smooth loss: every parameter interacts with every other."""
    a, b = batch
    leaves = jax.tree_util.tree_leaves(params)
    total = sum(jnp.sum(jnp.sin(a * x) + b * x**2) for x in leaves)
    coupling = sum(jnp.sum(jnp.tanh(x)) for x in leaves)
    return total + 0.5 * coupling**2


def rel_error(got, want):
    g = np.concatenate([np.ravel(x) for x in jax.tree_util.tree_leaves(got)])
    w = np.concatenate([np.ravel(x) for x in jax.tree_util.tree_leaves(want)])
    return np.linalg.norm(g - w) / np.linalg.norm(w)


@pytest.mark.parametrize("shapes", SHAPES)
@pytest.mark.parametrize(
    "mode,tol", [("forward", 1e-10), ("fd_central", 1e-6), ("fd_forward", 1e-4)]
)
def test_modes_match_reverse_in_float64(x64, shapes, mode, tol):
    params = random_tree(shapes, seed=len(str(shapes)))
    batch = (jnp.float64(1.3), jnp.float64(0.7))
    want = jax.grad(smooth_loss)(params, batch)
    value, got = jax.jit(jgd.value_and_grad(smooth_loss, mode))(params, batch)
    assert rel_error(got, want) < tol
    np.testing.assert_allclose(value, smooth_loss(params, batch), rtol=1e-14)


@pytest.mark.parametrize("chunk", [1, 3, 7, 17, 64])
@pytest.mark.parametrize("mode", ["forward", "fd_forward", "fd_central"])
def test_chunk_sizes_that_do_not_divide_p_give_the_same_gradient(x64, chunk, mode):
    params = random_tree({"a": (4, 5), "b": (3,)}, seed=1)  # P = 23: prime
    batch = (jnp.float64(0.9), jnp.float64(0.2))
    whole = jax.jit(jgd.grad(smooth_loss, mode, chunk_size=23))(params, batch)
    chunked = jax.jit(jgd.grad(smooth_loss, mode, chunk_size=chunk))(params, batch)
    # Finite differences carry rounding noise of eps*|f|/h (~1e-7 for fd_forward in float64) that
    # XLA's fusion choices move slightly; a wrong chunk (a missed or repeated index) would be O(1).
    rtol = {"forward": 1e-13, "fd_forward": 1e-9, "fd_central": 1e-11}[mode]
    for a, b in zip(
        jax.tree_util.tree_leaves(whole), jax.tree_util.tree_leaves(chunked), strict=True
    ):
        np.testing.assert_allclose(a, b, rtol=rtol, atol=rtol)


@pytest.mark.parametrize("mode", jgd.MODES)
def test_gradients_keep_tree_structure_and_dtypes(x64, strict_promotion, mode):
    params = {"f32": jnp.ones((2, 3), jnp.float32), "f64": [jnp.ones(4, jnp.float64)]}

    def loss(p, batch):
        return jnp.sum(jnp.sin(p["f32"])).astype(jnp.float64) + jnp.sum(p["f64"][0] ** 2) * batch

    grads = jax.jit(jgd.grad(loss, mode))(params, jnp.float64(2.0), key=jax.random.key(0))
    assert jax.tree_util.tree_structure(grads) == jax.tree_util.tree_structure(params)
    assert grads["f32"].dtype == jnp.float32 and grads["f64"][0].dtype == jnp.float64
    assert grads["f32"].shape == (2, 3) and grads["f64"][0].shape == (4,)


@pytest.mark.parametrize("mode", ["forward", "fd_central"])
def test_float32_modes_are_close_to_reverse(mode):
    params = random_tree({"a": (3, 4)}, seed=3, dtype=jnp.float32)
    batch = (jnp.float32(1.1), jnp.float32(0.3))
    tol = {"forward": 1e-6, "fd_central": 1e-3}[mode]
    assert (
        rel_error(jgd.grad(smooth_loss, mode)(params, batch), jax.grad(smooth_loss)(params, batch))
        < tol
    )


def _flat(tree):
    return np.concatenate([np.ravel(x) for x in jax.tree_util.tree_leaves(tree)])


@pytest.mark.parametrize("tangent", jgd.TANGENTS)
def test_forward_gradient_is_unbiased_averaged_over_many_tangents(x64, tangent):
    """E[(∇f·v) v] = ∇f for every tangent kind; the average of n has variance / n."""
    params = random_tree({"a": (2, 3), "b": (2,)}, seed=5)
    batch = (jnp.float64(0.8), jnp.float64(0.4))
    true = _flat(jax.grad(smooth_loss)(params, batch))
    n = 40_000
    fn = jgd.grad(smooth_loss, "forward_gradient", num_tangents=n, chunk_size=4096, tangent=tangent)
    est = _flat(jax.jit(fn)(params, batch, key=jax.random.key(7)))
    # per-component variance: ||g||² + g_i² (normal), ||g||² - g_i² (±1 entries)
    sign = 1 if tangent == "normal" else -1
    std = np.sqrt((np.sum(true**2) + sign * true**2) / n)
    z = (est - true) / std
    assert np.all(np.abs(z) < 4.5), z  # P = 8 components: a false alarm has odds ~ 1e-4


@pytest.mark.parametrize("tangent", jgd.TANGENTS)
def test_forward_gradient_single_tangent_unbiased_with_its_variance(x64, tangent):
    """One tangent per call: the mean over keys converges to ∇f (z-score), and the total
    variance E||ĝ - g||² matches jgd.forward_gradient_variance: (P + 1)||g||² for normal
    tangents, (P - 1)||g||² for ±1 entries (Rademacher, rank-one)."""
    params = random_tree({"a": (2, 3), "b": (2,)}, seed=2)
    batch = (jnp.float64(1.0), jnp.float64(0.5))
    true = _flat(jax.grad(smooth_loss)(params, batch))
    one = jgd.grad(smooth_loss, "forward_gradient", tangent=tangent)
    fn = jax.jit(jax.vmap(lambda k: _flat_jnp(one(params, batch, key=k))))
    samples = np.asarray(fn(jax.random.split(jax.random.key(11), 20_000)))
    assert not np.allclose(samples[0], true)  # one sample is far from the gradient...
    z = (samples.mean(0) - true) / (samples.std(0, ddof=1) / np.sqrt(len(samples)))
    assert np.all(np.abs(z) < 4.5), z  # ...but the mean is unbiased
    total = np.sum(np.var(samples, axis=0, ddof=1))
    theory = jgd.forward_gradient_variance(tangent, true.size, float(np.sum(true**2)))
    assert abs(total / theory - 1) < 0.05, (total, theory)
    if tangent != "rank_one":  # i.i.d. entries: the whole covariance is known too
        g = true
        sign = 1 if tangent == "normal" else -1
        want = np.sum(g**2) * np.eye(g.size) + np.outer(g, g) + (sign - 1) * np.diag(g**2)
        np.testing.assert_allclose(np.cov(samples.T), want, atol=0.1 * np.sum(g**2))


def _flat_jnp(tree):
    return jnp.concatenate([jnp.ravel(x) for x in jax.tree_util.tree_leaves(tree)])


def test_tangent_kinds_draw_plus_minus_one_and_are_rank_one_per_matrix():
    params = {"w": jnp.zeros((5, 7)), "b": jnp.zeros(3), "k": jnp.zeros((2, 3, 4))}
    for kind in ("rademacher", "rank_one"):
        v = jgd._tangents.draw(kind, jax.random.key(0), params)
        for x in jax.tree_util.tree_leaves(v):
            assert set(np.unique(np.asarray(x)).tolist()) <= {-1.0, 1.0}
    v = jgd._tangents.draw("rank_one", jax.random.key(0), params)
    assert np.linalg.matrix_rank(np.asarray(v["w"])) == 1
    signs = np.asarray(
        jgd._tangents.draw("rademacher", jax.random.key(1), {"x": jnp.zeros(10_000)})["x"]
    )
    assert abs(signs.mean()) < 0.05  # the bit-packed signs are balanced


def test_unknown_tangent_is_named():
    with pytest.raises(ValueError, match="tangent"):
        jgd.value_and_grad(smooth_loss, "forward_gradient", tangent="uniform")
    with pytest.raises(ValueError, match="tangent"):
        jgd.fit(
            quadratic,
            jnp.ones(2),
            jnp.ones((4, 2)),
            optimizer=optax.sgd,
            learning_rate=0.1,
            mode="forward_gradient",
            key=0,
            tangent="gaussian",
        )


def test_check_grads_reports_every_mode(x64):
    params = random_tree({"a": (3,), "b": (2, 2)}, seed=2)
    report = jgd.check_grads(smooth_loss, params, (jnp.float64(1.0), jnp.float64(0.1)))
    assert [r.mode for r in report.rows] == list(jgd.MODES)
    assert report["reverse"].relative_error == 0.0
    assert report["forward"].relative_error < 1e-12
    assert report["fd_central"].relative_error < 1e-7
    assert report["fd_forward"].relative_error < 1e-5
    assert report["forward_gradient"].relative_error > 1e-3  # one random tangent: an estimate
    assert report["fd_central"].loss_evaluations == 2 * 7
    assert report["fd_forward"].loss_evaluations == 7 + 1
    assert report.num_params == 7
    table = str(report)
    assert "fd_central" in table and "rel. error" in table and "P = 7" in table


def test_loss_evaluations_counts():
    assert jgd._grad.loss_evaluations("forward", 10) == 11
    assert jgd._grad.loss_evaluations("forward_gradient", 10, num_tangents=3) == 3


# --- bad input: clear errors at the call ------------------------------------------------------


def quadratic(w, batch):
    return jnp.sum(w**2)


def test_unknown_mode_lists_valid_ones():
    with pytest.raises(ValueError, match=r"mode='backprop'.*'reverse', 'forward'"):
        jgd.value_and_grad(quadratic, mode="backprop")


def test_forward_gradient_without_key():
    with pytest.raises(ValueError, match="needs key="):
        jgd.grad(quadratic, "forward_gradient")(jnp.ones(2), None)


def test_non_scalar_loss_names_the_shape():
    with pytest.raises(ValueError, match=r"shape \(3,\)"):
        jgd.grad(lambda w, b: w * 2, "forward")(jnp.ones(3), None)


def test_integer_params_are_rejected():
    with pytest.raises(TypeError, match=r"params\['n'\] has dtype int32"):
        jgd.grad(quadratic)({"n": jnp.arange(3)}, None)


@pytest.mark.parametrize("bad", [0, -3, 2.5, True])
def test_bad_chunk_size(bad):
    with pytest.raises(ValueError, match=r"chunk_size=.*expected an integer >= 1"):
        jgd.value_and_grad(quadratic, "forward", chunk_size=bad)


@pytest.mark.parametrize("bad", [0.0, -1e-3, float("nan")])
def test_bad_step_size(bad):
    with pytest.raises(ValueError, match="step_size"):
        jgd.value_and_grad(quadratic, "fd_central", step_size=bad)


def test_forward_mode_of_the_seeds_mlp_stays_within_4gb():
    """The exact forward-mode gradient of 784-128-10 (P = 101,770), in a fresh process whose peak
    RSS is measured. Its P tangents at once would be P x P floats (41 GB) whatever the batch, so
    a batch of 2 proves the chunking as well as a larger one, at a fraction of the work."""
    script = textwrap.dedent(
        """
        import resource, jax, jax.numpy as jnp, numpy as np, jgd
        k = jax.random.split(jax.random.key(0), 4)
        p = {"w1": jax.random.normal(k[0], (784, 128)) * 0.03, "b1": jnp.zeros(128),
             "w2": jax.random.normal(k[1], (128, 10)) * 0.1, "b2": jnp.zeros(10)}
        def loss(p, batch):
            x, y = batch
            logits = jax.nn.relu(x @ p["w1"] + p["b1"]) @ p["w2"] + p["b2"]
            return jnp.mean(jax.vmap(jgd.losses.softmax_cross_entropy)(logits, y))
        batch = (jax.random.uniform(k[2], (2, 784)), jax.random.randint(k[3], (2,), 0, 10))
        g = jax.jit(jgd.grad(loss, "forward"))(p, batch)
        ref = jax.grad(loss)(p, batch)
        err = max(float(jnp.max(jnp.abs(a - b))) for a, b in
                  zip(jax.tree.leaves(g), jax.tree.leaves(ref)))
        print(err, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
        """
    )
    # its P jvps are running, not compiling: at LLVM's default level (the suite's -O0 runs them
    # 3-4x slower; the peak memory is XLA's buffers, the same at every level)
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True,
        env=optimized_env(),
    )  # fmt: skip
    err, rss_kb = out.stdout.split()
    assert float(err) < 1e-6
    assert int(rss_kb) < 4 * 1024 * 1024, f"peak RSS {int(rss_kb) / 1024:.0f} MB"
