"""from_torch reads any module of the common layers from its traced graph: equal outputs in train
and eval mode, torch's BatchNorm statistics, the state dict back, training, and what it refuses."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jgd

torch = pytest.importorskip("torch")
nn, F = torch.nn, torch.nn.functional


class HeadFirst(nn.Module):
    """A conv net whose head is declared before its body (declaration order is not run order)."""

    def __init__(self):
        super().__init__()
        self.head = nn.Linear(8 * 7 * 7, 10)
        self.conv1 = nn.Conv2d(1, 4, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(4)
        self.conv2 = nn.Conv2d(4, 8, 3, padding=1)
        self.ln = nn.LayerNorm([8, 7, 7])

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.bn1(self.conv1(x))), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        return self.head(torch.flatten(self.ln(x), 1))


def _images(n=6, seed=0):
    return torch.from_numpy(np.random.default_rng(seed).normal(size=(n, 1, 28, 28)).astype("f4"))


def _close(model, net, *inputs, rtol=1e-5, atol=1e-5):
    want = net(*inputs).detach().numpy()
    got = model(*(jnp.asarray(x.numpy()) for x in inputs))
    np.testing.assert_allclose(got, want, rtol=rtol, atol=atol)


def test_a_conv_net_with_its_head_declared_first_computes_what_torch_does():
    torch.manual_seed(0)
    net = HeadFirst()
    model = jgd.models.from_torch(net)
    assert type(model).__name__ == "TorchModule"
    x = _images()
    _close(model, net, x)  # train mode: batch statistics, and both update theirs
    stats = jgd.models.state_dict(model)
    for key, value in net.state_dict().items():
        np.testing.assert_allclose(stats[key], value.numpy(), rtol=1e-6, atol=1e-7, err_msg=key)
    net.eval()
    model.eval()
    _close(model, net, _images(seed=1))  # eval mode: the running statistics


def test_the_state_dict_goes_back_into_a_fresh_torch_module():
    torch.manual_seed(0)
    net = HeadFirst()
    model = jgd.models.from_torch(net)
    model(jnp.asarray(_images().numpy()))  # moves the running statistics
    torch.manual_seed(1)
    fresh = jgd.models.to_torch(model, into=HeadFirst())
    fresh.eval()
    model.eval()
    _close(model, fresh, _images(seed=2))
    with pytest.raises(ValueError, match="to_torch of a TorchModule needs into="):
        jgd.models.to_torch(model)


class Residual(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Sequential(nn.Linear(6, 6), nn.GELU(approximate="tanh")))
        self.emb = nn.Embedding(10, 6, padding_idx=0)
        self.out = nn.Linear(12, 3)

    def forward(self, x, tokens):
        h = x + self.body(x)  # a residual
        e = self.emb(tokens).mean(1)
        h = torch.cat([h, e], dim=1)
        return F.log_softmax(self.out(h.view(h.size(0), -1)), dim=-1)


def test_nesting_functions_methods_and_two_inputs():
    torch.manual_seed(0)
    net = Residual()
    model = jgd.models.from_torch(net)
    x = torch.randn(4, 6)
    tokens = torch.tensor([[0, 1, 2], [3, 0, 0], [9, 8, 7], [1, 1, 1]])
    want = net(x, tokens).detach().numpy()
    np.testing.assert_allclose(model(x.numpy(), tokens.numpy()), want, rtol=1e-5, atol=1e-6)


LAYERS = {
    "conv1d": (lambda: nn.Conv1d(4, 6, 3, stride=2, padding=2, dilation=2, bias=False), (3, 4, 17)),
    "conv2d_groups": (lambda: nn.Conv2d(4, 6, 3, padding="same", groups=2), (2, 4, 9, 9)),
    "conv2d_stride": (lambda: nn.Conv2d(3, 5, (3, 2), stride=(2, 1), padding=(1, 0)), (2, 3, 9, 8)),
    "bn1d_2d_input": (lambda: nn.BatchNorm1d(5), (7, 5)),
    "bn1d_3d_input": (lambda: nn.BatchNorm1d(5, momentum=None), (7, 5, 4)),
    "bn2d_no_affine": (lambda: nn.BatchNorm2d(3, affine=False, eps=1e-3), (4, 3, 5, 5)),
    "bn2d_no_stats": (lambda: nn.BatchNorm2d(3, track_running_stats=False), (4, 3, 5, 5)),
    "layernorm": (lambda: nn.LayerNorm(6, elementwise_affine=False), (3, 4, 6)),
    "maxpool": (lambda: nn.MaxPool2d(3, stride=2, padding=1, dilation=1), (2, 3, 9, 9)),
    "avgpool": (
        lambda: nn.AvgPool2d(3, stride=2, padding=1, count_include_pad=False),
        (2, 3, 9, 9),
    ),
    "avgpool_incl": (lambda: nn.AvgPool2d(2), (2, 3, 8, 8)),
    "adaptive_3": (lambda: nn.AdaptiveAvgPool2d((3, 3)), (2, 3, 7, 7)),
    "adaptive_1": (lambda: nn.AdaptiveAvgPool2d(1), (2, 3, 7, 5)),
    "maxpool1d": (lambda: nn.MaxPool1d(2), (2, 3, 9)),
    "flatten": (lambda: nn.Flatten(), (2, 3, 4, 5)),
    "silu": (lambda: nn.SiLU(), (3, 5)),
    "leaky": (lambda: nn.LeakyReLU(0.2), (3, 5)),
    "elu": (lambda: nn.ELU(0.5), (3, 5)),
    "softmax": (lambda: nn.Softmax(dim=1), (3, 5)),
    "logsoftmax": (lambda: nn.LogSoftmax(dim=-1), (3, 5)),
    "gelu": (lambda: nn.GELU(), (3, 5)),
}


@pytest.mark.parametrize("name", sorted(LAYERS))
def test_each_common_layer_in_train_and_eval_mode(name):
    torch.manual_seed(0)
    make, shape = LAYERS[name]
    net = nn.Sequential(make(), nn.Identity())
    model = jgd.models.from_torch(net)
    x = torch.from_numpy(np.random.default_rng(1).normal(size=shape).astype("f4"))
    _close(model, net, x)
    for key, value in net.state_dict().items():  # batch statistics moved alike
        got = jgd.models.state_dict(model)[key]
        np.testing.assert_allclose(got, value.numpy(), rtol=1e-5, atol=1e-6, err_msg=key)
    net.eval()
    model.eval()
    _close(model, net, x * 2)


def test_dropout_follows_train_and_eval_mode():
    class Drop(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc, self.drop = nn.Linear(50, 50), nn.Dropout(0.5)

        def forward(self, x):
            return F.dropout(self.drop(self.fc(x)), 0.5, training=self.training)

    net = Drop()
    model = jgd.models.from_torch(net)
    x = torch.randn(8, 50)
    zeros = float(np.mean(np.asarray(model(x.numpy())) == 0))
    assert 0.6 < zeros < 0.9  # two dropouts of 0.5 in train mode: about 3/4 zeros
    net.eval()
    model.eval()
    _close(model, net, x)


def test_float64_half_and_frozen_and_shared_parameters(x64):
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(4, 4), nn.Tanh(), nn.Linear(4, 4), nn.LayerNorm(4)).double()
    model = jgd.models.from_torch(net)
    x = torch.randn(3, 4, dtype=torch.float64)
    assert model(x.numpy()).dtype == jnp.float64
    _close(model, net, x, rtol=1e-12, atol=1e-12)

    half = jgd.models.from_torch(nn.Sequential(nn.Linear(4, 2), nn.LayerNorm(2)).half())
    assert half(np.ones((1, 4), np.float16)).dtype == jnp.float16

    class Tied(nn.Module):
        def __init__(self):
            super().__init__()
            self.a = nn.Linear(4, 4)
            self.b = nn.Linear(4, 4)
            self.b.weight = self.a.weight  # one parameter in two layers
            self.a.bias.requires_grad_(False)  # frozen

        def forward(self, x):
            return self.b(torch.tanh(self.a(self.a(x))))

    tied = Tied().double()
    copy = jgd.models.from_torch(tied)
    params = jax.tree.leaves(jgd.models.functional(copy)[1])
    assert sorted(p.size for p in params) == [4, 16]  # a.weight (= b.weight) and b.bias
    X = np.random.default_rng(0).normal(size=(16, 4))
    loss = lambda m, b: jnp.mean((m(b[0]) - b[1]) ** 2)  # noqa: E731
    run = jgd.fit(loss, copy, (X, X[:, ::-1].copy()), optimizer=optax.sgd(0.1), epochs=3)
    after = jgd.models.state_dict(run.model)
    np.testing.assert_array_equal(after["a.bias"], tied.a.bias.detach().numpy())  # frozen
    np.testing.assert_array_equal(after["a.weight"], after["b.weight"])  # still one
    assert not np.array_equal(after["a.weight"], tied.a.weight.detach().numpy())  # trained


def test_training_a_copied_conv_net_equals_torch_step_for_step():
    torch.manual_seed(0)
    net = HeadFirst()
    model = jgd.models.from_torch(net)
    rng = np.random.default_rng(0)
    X = rng.normal(size=(64, 1, 28, 28)).astype("f4")
    y = rng.integers(0, 10, size=64)
    order = np.arange(64).reshape(8, 8)
    opt = torch.optim.SGD(net.parameters(), lr=0.05, momentum=0.9)
    losses = []
    for rows in order:
        opt.zero_grad()
        value = F.cross_entropy(net(torch.from_numpy(X[rows])), torch.from_numpy(y[rows]))
        value.backward()
        opt.step()
        losses.append(value.item())

    def loss(m, b):
        return optax.softmax_cross_entropy_with_integer_labels(m(b[0]), b[1]).mean()

    run = jgd.fit(loss, model, (X, y), optimizer=optax.sgd(0.05, momentum=0.9), order=order)
    np.testing.assert_allclose(run.losses, losses, rtol=1e-4)
    stats = jgd.models.state_dict(run.model)
    for key in ("bn1.running_mean", "bn1.running_var", "bn1.num_batches_tracked"):
        np.testing.assert_allclose(stats[key], net.state_dict()[key].numpy(), rtol=1e-4)


class Branchy(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(3, 3)

    def forward(self, x):
        if x.sum() > 0:  # data-dependent control flow
            return self.fc(x)
        return x


class InPlace(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(3, 3)

    def forward(self, x):
        h = self.fc(x)
        y = h.relu_()  # changes h in place
        return y + h  # and h is read afterwards


class Unknown(nn.Module):
    def __init__(self):
        super().__init__()
        self.rnn = nn.GRU(3, 3)

    def forward(self, x):
        return self.rnn(x)[0]


def _hooked():
    net = nn.Sequential(nn.Linear(3, 3))
    net[0].register_forward_hook(lambda *a: None)
    return net


def _meta():
    with torch.device("meta"):
        return nn.Sequential(nn.Linear(3, 3))


@pytest.mark.parametrize(
    "make, error, match",
    [
        (Branchy, ValueError, r"Branchy.forward cannot be traced by torch.fx .*data-dependent"),
        (InPlace, ValueError, r"node 'relu_' changes 'fc' in place, and 'add' reads 'fc'"),
        (Unknown, ValueError, r"layer 'rnn' is a GRU \(node 'rnn'\), which from_torch does not"),
        (_hooked, ValueError, r"module '0' \(Linear\) has forward hooks"),
        (_meta, ValueError, r"0.weight is on the meta device"),
        (lambda: nn.Sequential(nn.Linear(3, 3)).double(), ValueError, r"0.weight is float64"),
        (
            lambda: nn.Conv2d(1, 1, 3, padding=1, padding_mode="reflect"),
            ValueError,
            r"pads with 'reflect'",
        ),
        (lambda: nn.Sequential(nn.MaxPool2d(2, ceil_mode=True)), ValueError, r"ceil_mode=True"),
        (lambda: "not a module", TypeError, r"module=str is not a torch.nn.Module"),
    ],
    ids=["branch", "in-place", "gru", "hook", "meta", "float64", "reflect", "ceil", "str"],
)
def test_what_cannot_be_copied_exactly_is_refused_by_name(make, error, match):
    with pytest.raises(error, match=match):
        jgd.models.from_torch(make())


def _groups_run(dtype):
    """The real-model replay: two param groups (weight decay on conv and linear weights only),
    Nesterov momentum, MultiStepLR; 60 steps of 32, lr 0.05."""
    torch.manual_seed(0)
    net = HeadFirst().to(getattr(torch, dtype))
    rng = np.random.default_rng(0)
    X = rng.normal(size=(320, 1, 28, 28)).astype(dtype)
    y = rng.integers(0, 10, 320)
    order = np.stack([rng.permutation(320)[:32] for _ in range(60)])
    named = list(net.named_parameters())
    decays = [n.endswith("weight") and n.startswith(("conv", "head")) for n, _ in named]
    decayed = [p for (_, p), d in zip(named, decays, strict=True) if d]
    others = [p for (_, p), d in zip(named, decays, strict=True) if not d]
    assert len(decayed) == 3 and len(others) == 7
    opt = torch.optim.SGD(
        [{"params": decayed, "weight_decay": 5e-4}, {"params": others}],
        lr=0.05, momentum=0.9, nesterov=True,
    )  # fmt: skip
    sched = torch.optim.lr_scheduler.MultiStepLR(opt, [20, 40], gamma=0.1)
    model = jgd.models.from_torch(net)
    tx = jgd.torch_baseline.to_optax(opt, sched, steps=60, module=net)
    losses = []
    for rows in order:
        opt.zero_grad()
        value = F.cross_entropy(net(torch.from_numpy(X[rows])), torch.from_numpy(y[rows]))
        value.backward()
        opt.step()
        sched.step()
        losses.append(value.item())
    run = jgd.fit(lambda m, b: jgd.losses.cross_entropy(m(b[0]), b[1]), model, (X, y),
                  optimizer=tx, order=order)  # fmt: skip
    return net, np.asarray(losses), run


def test_param_groups_replayed_step_for_step_in_float64(x64):
    net, losses, run = _groups_run("float64")
    np.testing.assert_allclose(run.losses, losses, rtol=1e-10)  # measured: 1.6e-12
    stats = jgd.models.state_dict(run.model)
    for key, value in net.state_dict().items():
        np.testing.assert_allclose(stats[key], value.numpy(), rtol=1e-10, atol=1e-12, err_msg=key)


def test_param_groups_replayed_in_float32():
    net, losses, run = _groups_run("float32")
    np.testing.assert_allclose(run.losses[:10], losses[:10], rtol=1e-4)  # measured: 3.0e-7
    np.testing.assert_allclose(run.losses, losses, rtol=1e-3)  # 60 steps: 2.4e-5 measured
    stats = jgd.models.state_dict(run.model)
    for key in ("bn1.running_mean", "bn1.running_var"):
        np.testing.assert_allclose(stats[key], net.state_dict()[key].numpy(), rtol=1e-3)


def test_param_groups_need_the_module_and_its_own_parameters():
    net = HeadFirst()
    groups = [{"params": [net.head.weight]}, {"params": [net.conv1.weight]}]
    opt = torch.optim.SGD(groups, lr=0.1)
    with pytest.raises(ValueError, match="SGD has 2 param groups; pass module="):
        jgd.torch_baseline.to_optax(opt, steps=5)
    with pytest.raises(ValueError, match=r"param group 0 holds a parameter of shape \(10, 392\)"):
        jgd.torch_baseline.to_optax(opt, steps=5, module=nn.Sequential(nn.Linear(2, 2)))
    # parameters in no group are not trained, as in torch
    model = jgd.models.from_torch(net)
    tx = jgd.torch_baseline.to_optax(opt, steps=3, module=net)
    X = np.random.default_rng(0).normal(size=(8, 1, 28, 28)).astype("f4")
    y = np.arange(8) % 10
    run = jgd.fit(lambda m, b: jgd.losses.cross_entropy(m(b[0]), b[1]), model, (X, y),
                  optimizer=tx, epochs=3)  # fmt: skip
    after, before = jgd.models.state_dict(run.model), net.state_dict()
    np.testing.assert_array_equal(after["conv2.weight"], before["conv2.weight"].numpy())
    assert not np.array_equal(after["head.weight"], before["head.weight"].numpy())
