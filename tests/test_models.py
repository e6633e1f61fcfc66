"""The NNX port of the seeds' Net: PyTorch's init, weight round trips, step-for-step equality."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

import jgd

torch = pytest.importorskip("torch")
from jgd import torch_baseline  # noqa: E402


def test_init_bounds_and_moments_match_pytorch():
    model = jgd.models.MLP(rngs=nnx.Rngs(0))
    torch.manual_seed(0)
    net = torch_baseline.Net()
    for ours, theirs, fan_in in [(model.fc1, net.fc1, 784), (model.fc2, net.fc2, 128)]:
        bound = 1 / np.sqrt(fan_in)
        for a, b in [(ours.kernel[...], theirs.weight), (ours.bias[...], theirs.bias)]:
            a, b = np.asarray(a).ravel(), b.detach().numpy().ravel()
            assert np.abs(a).max() <= bound and np.abs(b).max() <= bound
            assert np.abs(a).max() > 0.95 * bound  # the whole interval is used
            # U(-c, c): mean 0 (sd c/sqrt(3n)), variance c²/3 (sd of the sample variance
            # c² sqrt(4/45/n)); both sides agree with theory within 5 standard deviations.
            for sample in (a, b):
                n = len(sample)
                assert abs(sample.mean()) < 5 * bound / np.sqrt(3 * n)
                assert abs(sample.var() - bound**2 / 3) < 5 * bound**2 * np.sqrt(4 / 45 / n)
    assert model.fc1.kernel[...].shape == (784, 128)  # (in, out): torch's weight transposed


@pytest.mark.parametrize("partitionable", [True, False])
def test_torch_uniform_is_jax_random_uniform_bit_for_bit(partitionable):
    # drawn as the prefix of a shared flat draw (one program for many shapes): the same values,
    # eager, traced and under the legacy threefry
    key = jax.random.key(5)
    init = jgd.models.torch_uniform(9)  # bound 1/3
    f32, bf16 = jnp.float32, jnp.bfloat16
    cases = [
        ((10,), f32),
        ((784, 128), f32),
        ((3, 3, 1, 8), bf16),
        ((5, 0), f32),
        (((1 << 17) + 3,), f32),
    ]
    with jax.threefry_partitionable(partitionable):
        for shape, dtype in cases:
            want = jax.random.uniform(key, shape, dtype, -1 / 3, 1 / 3)
            got = init(key, shape, dtype)
            assert got.shape == want.shape and got.dtype == want.dtype
            np.testing.assert_array_equal(np.float32(got), np.float32(want))
        traced = jax.jit(lambda k: init(k, (128, 10)))(key)
        np.testing.assert_array_equal(
            traced, jax.random.uniform(key, (128, 10), f32, -1 / 3, 1 / 3)
        )
        with jax.enable_x64(True):
            want = jax.random.uniform(key, (33, 10), jnp.float64, -1 / 3, 1 / 3)
            np.testing.assert_array_equal(init(key, (33, 10), jnp.float64), want)


def test_depth_and_widths_are_configurable():
    model = jgd.models.MLP(10, (32, 16), 3, rngs=nnx.Rngs(1))
    assert (
        model.sizes == (10, 32, 16, 3)
        and jgd.models.num_params(model) == 10 * 32 + 32 + 32 * 16 + 16 + 16 * 3 + 3
    )
    assert model(jnp.ones((4, 10))).shape == (4, 3)


def test_weights_round_trip_torch_jgd_torch():
    torch.manual_seed(3)
    net = torch_baseline.Net(20, (8, 6), 4)
    model = jgd.models.from_torch(net)
    back = jgd.models.to_torch(model)
    for key, value in net.state_dict().items():
        np.testing.assert_array_equal(back.state_dict()[key].numpy(), value.numpy())
    x = np.random.default_rng(0).normal(size=(5, 20)).astype(np.float32)
    np.testing.assert_allclose(
        model(jnp.asarray(x)), net(torch.tensor(x)).detach().numpy(), rtol=1e-5, atol=1e-6
    )


def test_from_torch_accepts_a_sequential():
    seq = torch.nn.Sequential(torch.nn.Linear(6, 5), torch.nn.ReLU(), torch.nn.Linear(5, 2))
    model = jgd.models.from_torch(seq)
    x = np.ones((3, 6), np.float32)
    np.testing.assert_allclose(
        model(jnp.asarray(x)), seq(torch.tensor(x)).detach().numpy(), rtol=1e-5
    )


def test_shapes_that_do_not_fit_name_the_layer_and_both_shapes():
    net = torch_baseline.Net(784, 64, 10)
    with pytest.raises(
        ValueError,
        match=r"layer fc1: torch weight has shape \(64, 784\), the MLP expects \(128, 784\)",
    ):
        jgd.models.from_torch(net, into=jgd.models.MLP(rngs=nnx.Rngs(0)))
    broken = torch.nn.Sequential(torch.nn.Linear(4, 5), torch.nn.Linear(6, 2))
    copy = jgd.models.from_torch(broken)  # read from the graph: it fails where torch fails
    with pytest.raises(RuntimeError):
        broken(torch.ones(1, 4))
    with pytest.raises(TypeError):
        copy(jnp.ones((1, 4)))
    with pytest.raises(TypeError, match="not a torch.nn.Module"):
        jgd.models.from_torch(object())


def _same_run(X, y, steps, batch, **sgd):
    torch.manual_seed(0)
    net = torch_baseline.Net(X.shape[1], 32, 10)
    apply, params = jgd.models.functional(jgd.models.from_torch(net))
    order = jgd.data.epoch_order(len(y), batch, steps=steps, seed=1)
    ours = jgd.fit(
        jgd.models.classification_loss(apply),
        params,
        (X, y),
        optimizer=functools.partial(optax.sgd, **{k: v for k, v in sgd.items() if k != "lr"}),
        learning_rate=sgd["lr"],
        order=order,
    )
    theirs = torch_baseline.train(
        net,
        X,
        y,
        order,
        lr=sgd["lr"],
        momentum=sgd.get("momentum", 0.0),
        nesterov=sgd.get("nesterov", False),
    )
    return ours, theirs, net, apply


@pytest.mark.parametrize(
    "sgd", [dict(lr=0.01), dict(lr=0.01, momentum=0.9), dict(lr=0.01, momentum=0.9, nesterov=True)]
)
def test_step_for_step_equal_to_pytorch_on_generated_data(sgd):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(640, 50)).astype(np.float32)
    y = (X[:, :10].argmax(1)).astype(np.int32)
    ours, theirs, _net, _ = _same_run(X, y, 500, 64, **sgd)
    rel = np.abs(ours.losses - theirs["losses"]) / np.abs(theirs["losses"])
    assert rel.max() < 1e-4, rel.max()
    assert np.abs(ours.losses[0] - ours.losses[-1]) > 0.1  # it really trained


def test_step_for_step_equal_to_pytorch_on_real_mnist(mnist_dir):
    train = jgd.data.mnist(mnist_dir, "train")
    ours, theirs, _, _ = _same_run(train.X, train.y, 500, 64, lr=0.01)
    rel = np.abs(ours.losses - theirs["losses"]) / np.abs(theirs["losses"])
    assert rel.max() < 1e-4, rel.max()


def test_short_shuffled_run_on_real_subset_beats_chance(mnist_dir):
    train, test = jgd.data.mnist(mnist_dir, "train"), jgd.data.mnist(mnist_dir, "test")
    apply, params = jgd.models.functional(jgd.models.MLP(rngs=nnx.Rngs(0)))
    result = jgd.fit(
        jgd.models.classification_loss(apply),
        params,
        tuple(train),
        optimizer=optax.sgd,
        learning_rate=0.1,
        batch_size=64,
        epochs=1,
        key=0,
    )
    assert jgd.models.accuracy(apply, result.params, test.X, test.y) > 0.5  # chance is 0.1


def test_baseline_without_torch_says_how_to_add_it(monkeypatch):
    import builtins

    real = builtins.__import__

    def fake(name, *args, **kwargs):
        if name == "torch":
            raise ImportError("no torch")
        return real(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", fake)
    with pytest.raises(ImportError, match=r"pip install 'jgd\[torch\]'"):
        torch_baseline.require_torch()


@pytest.mark.parametrize("nesterov", [False, True])
def test_momentum_is_the_same_rule_as_pytorch_in_float64(nesterov):
    """In float32, momentum 0.9 amplifies rounding (4e-4 relative after 500 MNIST steps); in
    float64 the two agree to 1e-10, so optax.sgd(momentum) and torch.optim.SGD(momentum,
    dampening=0) are the same rule, first step included."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(512, 30))
    y = (X[:, :10].argmax(1)).astype(np.int32)
    torch.manual_seed(0)
    net = torch_baseline.Net(30, 32, 10).double()
    order = np.concatenate([rng.permutation(512).reshape(8, 64) for _ in range(40)])
    with jax.enable_x64(True):
        apply, params = jgd.models.functional(jgd.models.from_torch(net))
        params = jax.tree_util.tree_map(lambda p: p.astype(jnp.float64), params)
        ours = jgd.fit(
            jgd.models.classification_loss(apply),
            params,
            (X, y),
            optimizer=functools.partial(optax.sgd, momentum=0.9, nesterov=nesterov),
            learning_rate=0.01,
            order=order,
        )
    theirs = torch_baseline.train(
        net, X, y, order, lr=0.01, momentum=0.9, nesterov=nesterov, dtype=np.float64
    )
    assert ours.losses.dtype == np.float64
    np.testing.assert_allclose(ours.losses, theirs["losses"], rtol=1e-10)
