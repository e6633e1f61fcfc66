"""jgd.torch_baseline.to_optax: torch optimizers and schedulers replayed step for step by fit."""

import jax
import numpy as np
import pytest

import jgd

torch = pytest.importorskip("torch")
from jgd import torch_baseline as tb  # noqa: E402

O, S = torch.optim, torch.optim.lr_scheduler
STEPS = 150


def _with(scheduler):
    return lambda opt: (opt, scheduler(opt))


CASES = {
    "sgd": (lambda p: O.SGD(p, lr=0.05), None),
    "sgd momentum dampening wd": (
        lambda p: O.SGD(p, lr=0.05, momentum=0.9, dampening=0.1, weight_decay=1e-3),
        None,
    ),
    "sgd nesterov": (lambda p: O.SGD(p, lr=0.05, momentum=0.9, nesterov=True), None),
    "adam wd": (lambda p: O.Adam(p, lr=1e-3, betas=(0.8, 0.99), weight_decay=1e-3), None),
    "adam amsgrad": (lambda p: O.Adam(p, lr=1e-3, amsgrad=True), None),
    "adamw": (lambda p: O.AdamW(p, lr=1e-3, weight_decay=0.05), None),
    "rmsprop": (lambda p: O.RMSprop(p, lr=1e-3, weight_decay=1e-4), None),
    "rmsprop centered momentum": (
        lambda p: O.RMSprop(p, lr=1e-3, alpha=0.9, centered=True, momentum=0.9),
        None,
    ),
    "adagrad": (
        lambda p: O.Adagrad(
            p, lr=0.05, lr_decay=0.01, initial_accumulator_value=0.1, weight_decay=1e-4
        ),
        None,
    ),
    "nadam": (lambda p: O.NAdam(p, lr=2e-3, weight_decay=1e-3), None),
    "nadam decoupled momentum_decay": (
        lambda p: O.NAdam(
            p, lr=2e-3, weight_decay=0.05, decoupled_weight_decay=True, momentum_decay=0.01
        ),
        None,
    ),
    "radam": (lambda p: O.RAdam(p, lr=1e-3, weight_decay=1e-3), None),
    "radam decoupled": (
        lambda p: O.RAdam(p, lr=1e-3, weight_decay=0.05, decoupled_weight_decay=True),
        None,
    ),
    "adamax": (lambda p: O.Adamax(p, lr=2e-3, betas=(0.8, 0.99), weight_decay=1e-3), None),
    "adadelta": (lambda p: O.Adadelta(p, lr=1.0, rho=0.8, weight_decay=1e-4), None),
    "nadam StepLR": (lambda p: O.NAdam(p, lr=2e-3), lambda o: S.StepLR(o, 30, 0.5)),
    "asgd": (lambda p: O.ASGD(p, lr=0.05, lambd=1e-3, alpha=0.75, weight_decay=1e-4), None),
    "asgd StepLR": (lambda p: O.ASGD(p, lr=0.05), lambda o: S.StepLR(o, 30, 0.5)),
    "sgd StepLR": (lambda p: O.SGD(p, lr=0.05, momentum=0.9), lambda o: S.StepLR(o, 30, 0.5)),
    "adam StepLR": (lambda p: O.Adam(p, lr=1e-3), lambda o: S.StepLR(o, 30, 0.5)),
    "sgd CosineAnnealingLR": (lambda p: O.SGD(p, lr=0.05), lambda o: S.CosineAnnealingLR(o, 150)),
    "sgd ExponentialLR": (lambda p: O.SGD(p, lr=0.05), lambda o: S.ExponentialLR(o, 0.99)),
    "sgd LambdaLR": (lambda p: O.SGD(p, lr=0.05), lambda o: S.LambdaLR(o, lambda t: 1 / (1 + t))),
    "adam OneCycleLR (cycles β1)": (
        lambda p: O.Adam(p, lr=1e-3),
        lambda o: S.OneCycleLR(o, max_lr=1e-2, total_steps=STEPS),
    ),
    "sgd OneCycleLR (cycles momentum)": (
        lambda p: O.SGD(p, lr=0.01, momentum=0.9),
        lambda o: S.OneCycleLR(o, max_lr=0.1, total_steps=STEPS),
    ),
}


def replay(make_opt, make_sched, mlp, dtype, steps):
    torch.manual_seed(0)
    hidden = mlp.params["fc1"]["kernel"].shape[1]
    net = tb.Net(mlp.data.X.shape[1], hidden, 10)
    net = net.double() if dtype == np.float64 else net
    opt = make_opt(net.parameters())
    sched = make_sched(opt) if make_sched else None
    params = jgd.models.functional(jgd.models.from_torch(net))[1]
    order = jgd.data.epoch_order(len(mlp.data.y), 64, steps=steps, seed=0)
    ours = mlp._replace(params=params).fit(
        optimizer=tb.to_optax(opt, sched, steps=steps), order=order
    )
    theirs = tb.train(net, *mlp.data, order, optimizer=opt, scheduler=sched, dtype=dtype)
    return np.max(np.abs(ours.losses - theirs["losses"]) / np.abs(theirs["losses"]))


@pytest.fixture(scope="module")
def rows():
    """The seeds' Net on real MNIST rows where this checkout has them (CI), else on the 8x8
    digits: the same rules are checked either way, MNIST when it can be."""
    from tests.conftest import SHARED_MNIST

    if (SHARED_MNIST / "train-images-idx3-ubyte.gz").exists():
        return {"source": "mnist", "mnist_dir": SHARED_MNIST, "hidden": 128}
    return {"source": "digits", "hidden": 32}


@pytest.mark.parametrize("case", list(CASES))
def test_float64_replay_of_each_rule_and_schedule_within_1e_8(rows, case):
    with jax.enable_x64(True):
        mlp = jgd.problems.mlp(**rows, dtype=np.float64)
        assert replay(*CASES[case], mlp, np.float64, STEPS) <= 1e-8


RPROP = {
    "rprop": (lambda p: O.Rprop(p, lr=1e-3, etas=(0.4, 1.3), step_sizes=(1e-7, 1.0)), None),
    "rprop StepLR (no effect)": (lambda p: O.Rprop(p, lr=1e-3), lambda o: S.StepLR(o, 30, 0.5)),
}


@pytest.mark.parametrize("case", list(RPROP))
def test_rprop_replays_until_a_gradient_within_rounding_of_zero_flips(rows, case):
    # Rprop's step depends on the sign of g * g_prev: where a gradient element is within rounding
    # of 0, XLA's and torch's last bits can give it opposite signs (on MNIST near step 105), and
    # the runs part by ~1e-6 from there; until then they agree to rounding.
    with jax.enable_x64(True):
        mlp = jgd.problems.mlp(**rows, dtype=np.float64)
        assert replay(*RPROP[case], mlp, np.float64, 40) <= 1e-12  # measured: 4.3e-16


@pytest.mark.parametrize("case", ["sgd", "adam wd"])
def test_float32_replay_within_1e_4_over_300_steps(rows, case):
    mlp = jgd.problems.mlp(**rows)
    assert replay(*CASES[case], mlp, np.float32, 300) <= 1e-4


def _net_and_sgd(**options):
    net = tb.Net(4, 3, 2)
    return net, O.SGD(net.parameters(), lr=0.1, **options)


def test_bad_optimizers_and_schedulers_are_named():
    net, sgd = _net_and_sgd()
    with pytest.raises(ValueError, match="steps=0 is not valid"):
        tb.to_optax(sgd, steps=0)
    with pytest.raises(ValueError, match=r"SGD\(maximize=True\) is not supported"):
        tb.to_optax(_net_and_sgd(maximize=True)[1], steps=5)
    groups = O.SGD([{"params": [net.fc1.weight]}, {"params": [net.fc1.bias], "lr": 1.0}], lr=0.1)
    with pytest.raises(ValueError, match="2 param groups"):
        tb.to_optax(groups, steps=5)
    with pytest.raises(TypeError, match="optimizer=LBFGS is not replayed by to_optax: .*closure"):
        tb.to_optax(O.LBFGS(net.parameters()), steps=5)
    with pytest.raises(ValueError, match="ReduceLROnPlateau needs a metric"):
        tb.to_optax(sgd, S.ReduceLROnPlateau(sgd), steps=5)
    with pytest.raises(ValueError, match="belongs to another optimizer"):
        tb.to_optax(sgd, S.StepLR(_net_and_sgd()[1], 2), steps=5)
    adam = O.Adam(net.parameters())
    net(torch.ones(1, 4)).sum().backward()
    adam.step()
    with pytest.raises(ValueError, match="already taken steps"):
        tb.to_optax(adam, steps=5)


def test_reading_the_rates_leaves_the_scheduler_where_it_was():
    _, sgd = _net_and_sgd()
    sched = S.StepLR(sgd, 2, 0.5)
    tb.to_optax(sgd, sched, steps=10)
    assert sched.last_epoch == 0 and sgd.param_groups[0]["lr"] == 0.1


def test_a_float32_schedule_in_a_float64_run_warns():
    import optax

    with jax.enable_x64(True):
        line = jgd.problems.line()
        params = np.array([-1.0, -1.0])
        with pytest.warns(UserWarning, match="returns float32 rates for float64 params"):
            line._replace(params=params).fit(learning_rate=optax.exponential_decay(0.1, 1, 0.9))
