import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jgd


def test_per_example_is_the_batch_mean_of_the_example_loss():
    X = jnp.arange(12.0).reshape(4, 3)
    y = jnp.array([1.0, -1.0, 2.0, 0.5])
    w = jnp.array([0.1, -0.2, 0.3])
    loss = jgd.per_example(lambda w, ex: jgd.losses.squared_error(ex[0] @ w, ex[1]))
    np.testing.assert_allclose(loss(w, (X, y)), np.mean((np.asarray(X) @ w - y) ** 2), rtol=1e-6)


def test_squared_error_sums_over_outputs():
    assert float(jgd.losses.squared_error(jnp.array([1.0, 2.0]), jnp.array([0.0, 0.0]))) == 5.0


def test_softmax_cross_entropy_matches_log_softmax():
    logits = jnp.array([2.0, -1.0, 0.5, 3.0])
    for label in range(4):
        expected = -jax.nn.log_softmax(logits)[label]
        np.testing.assert_allclose(
            jgd.losses.softmax_cross_entropy(logits, label), expected, rtol=1e-6
        )


@pytest.mark.parametrize("logit,label", [(0.3, 1.0), (-2.0, 0.0), (5.0, 0.0), (-30.0, 1.0)])
def test_sigmoid_cross_entropy_matches_formula(logit, label):
    p = 1 / (1 + np.exp(-np.float64(logit)))
    expected = -(label * np.log(p) + (1 - label) * np.log1p(-p))
    np.testing.assert_allclose(jgd.losses.sigmoid_cross_entropy(logit, label), expected, rtol=1e-5)


def test_softmax_cross_entropy_equals_torch_cross_entropy():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    logits, labels = rng.normal(size=(16, 10)).astype(np.float32), rng.integers(0, 10, 16)
    loss = jgd.per_example(lambda _, ex: jgd.losses.softmax_cross_entropy(ex[0], ex[1]))
    ours = loss(None, (jnp.asarray(logits), jnp.asarray(labels)))
    theirs = torch.nn.CrossEntropyLoss()(torch.tensor(logits), torch.tensor(labels))
    np.testing.assert_allclose(ours, theirs.item(), rtol=1e-6)


@pytest.mark.parametrize("smoothing", [0.0, 0.1])
@pytest.mark.parametrize("shape", [(6, 5), (4, 5, 3)])
def test_torch_batch_losses_equal_torchs(smoothing, shape):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    rng = np.random.default_rng(0)
    logits = rng.normal(size=shape)
    labels = rng.integers(0, shape[1], size=(shape[0], *shape[2:]))
    labels.flat[1] = -100  # ignored, as torch ignores it
    t_logits, t_labels = torch.from_numpy(logits), torch.from_numpy(labels)
    with jax.enable_x64(True):
        got = jgd.losses.cross_entropy(logits, labels, label_smoothing=smoothing)
        want = F.cross_entropy(t_logits, t_labels, label_smoothing=smoothing).item()
        np.testing.assert_allclose(float(got), want, rtol=1e-12)
        logp = F.log_softmax(t_logits, dim=1)
        got = jgd.losses.nll_loss(logp.numpy(), labels)
        np.testing.assert_allclose(float(got), F.nll_loss(logp, t_labels).item(), rtol=1e-12)
        target = rng.normal(size=shape)
        got = jgd.losses.mse_loss(logits, target)
        want = F.mse_loss(t_logits, torch.from_numpy(target)).item()
        np.testing.assert_allclose(float(got), want, rtol=1e-12)


def test_mse_loss_refuses_shapes_torch_would_broadcast():
    with pytest.raises(ValueError, match=r"prediction has shape \(4, 1\) and target \(4,\)"):
        jgd.losses.mse_loss(jnp.ones((4, 1)), jnp.ones(4))
