"""The one jgd-vs-PyTorch comparison: the same weights, the same batches, both sides warm.

``Race`` holds both sides of one run ready to go: the seeds' ``Net`` built by PyTorch (its init,
``torch.manual_seed(seed)``) and copied into jgd with ``from_torch``; one explicit ``order`` of
batches for both. ``race.jgd()`` runs ``jgd.fit``, ``race.torch()`` the seeds' PyTorch loop on a
fresh copy of the initial net, each returning a ``Side`` (losses, seconds, params). Every place
that puts jgd beside PyTorch goes through it: ``compare_torch`` (``jgd compare-torch``), the tour's
PyTorch section and ``jgd bench train``'s torch contenders.

``torch.optim.SGD(momentum=μ, dampening=0)`` and ``optax.sgd(momentum=μ)`` are the same rule:
optax's trace starts at zero, so its first step is ``g``, which is where PyTorch's buffer starts;
the tests check this step for step.
"""

from __future__ import annotations

import copy
import os
from typing import Any, NamedTuple

import numpy as np

from jgd import models, problems, timing
from jgd.apps.torch_recipes import (
    OPTIMIZERS,
    SCHEDULERS,
    Side,
    check_names,
    torch_optimizer,
    torch_scheduler,
)


class Race:
    """jgd and PyTorch ready to train ``problem``'s data on the batches ``order``, from one init.

    The torch side is the seeds' loop with a torch optimizer and scheduler; the jgd side replays
    the same optimizer and scheduler through ``jgd.torch_baseline.to_optax``.

    Args:
      problem: a classifier problem (``jgd.problems.mlp``): its data, test set and loss are used;
        its params are replaced by PyTorch's init of the same shape.
      order: (steps, batch) example indices, one row per step, for both sides.
      hidden, seed, activation: the net (``torch.manual_seed(seed)``, then ``Net``).
      optimizer, scheduler: one of ``OPTIMIZERS`` and of ``SCHEDULERS``.
      lr, momentum, nesterov: the optimizer's rate; momentum for SGD and RMSprop, Nesterov for SGD.
      compile: run PyTorch's side through ``torch.compile`` (compiled before its clock starts).
    """

    def __init__(
        self,
        problem: problems.Problem,
        order: np.ndarray,
        *,
        hidden: int = 128,
        seed: int = 0,
        activation: str = "relu",
        optimizer: str = "sgd",
        scheduler: str = "none",
        lr: float = 0.01,
        momentum: float = 0.0,
        nesterov: bool = False,
        compile: bool = False,
    ):
        from jgd import torch_baseline

        check_names(optimizer, scheduler)
        if (momentum and optimizer not in ("sgd", "rmsprop")) or (nesterov and optimizer != "sgd"):
            raise ValueError(
                f"momentum={momentum}, nesterov={nesterov} do not apply to "
                f"optimizer={optimizer!r}; momentum is SGD's and RMSprop's, nesterov SGD's."
            )
        torch = torch_baseline.require_torch()
        X = problem.data[0]
        torch.manual_seed(seed)
        self.net = torch_baseline.Net(X.shape[1], hidden, 10, activation)
        if np.asarray(X).dtype == np.float64:
            self.net = self.net.double()
        self.problem = problem._replace(params=models.functional(models.from_torch(self.net))[1])
        self.order = np.asarray(order)
        self.names = (optimizer, scheduler)
        self.options = {"lr": lr, "momentum": momentum, "nesterov": nesterov}
        self.compile = compile

    def _torch_pair(self, net: Any) -> tuple[Any, Any]:
        opt = torch_optimizer(self.names[0], net.parameters(), **self.options)
        return opt, torch_scheduler(self.names[1], opt, len(self.order))

    def jgd(self) -> Side:
        """``jgd.fit`` over ``order`` (its run time: compile excluded)."""
        from jgd import torch_baseline

        tx = torch_baseline.to_optax(*self._torch_pair(self.net), steps=len(self.order))
        r = self.problem.fit(optimizer=tx, order=self.order)
        return Side(np.asarray(r.losses), r.run_time, r.params, r.compile_time)

    def torch(self) -> Side:
        """The seeds' PyTorch loop over ``order``, on a fresh copy of the initial net."""
        from jgd import torch_baseline

        net = copy.deepcopy(self.net)
        opt, sched = self._torch_pair(net)
        X, y = self.problem.data
        out = torch_baseline.train(
            net,
            X,
            y,
            self.order,
            optimizer=opt,
            scheduler=sched,
            compile=self.compile,
            dtype=np.asarray(X).dtype,
        )
        params = models.functional(models.from_torch(net))[1]
        return Side(out["losses"], out["seconds"], params, out["compile_seconds"])


class Comparison(NamedTuple):
    """What ``compare_torch`` measured, in one run."""

    data_name: str
    steps: int
    jgd_losses: np.ndarray
    torch_losses: np.ndarray
    max_abs_diff: float
    max_rel_diff: float
    jgd_accuracy: float
    torch_accuracy: float
    jgd_steps_per_second: float
    torch_steps_per_second: float
    jgd_compile_seconds: float
    rule: str = ""  # the optimizer and scheduler, as torch names them
    speed: Any = None  # timing.Ratio: jgd's speed over PyTorch's, per interleaved round
    threads: int = 0  # PyTorch's threads = XLA's CPU cores, set for the timing


def compare(race: Race, *, rounds: int = 1) -> Comparison:
    """Runs both sides of ``race``, warm, interleaved over ``rounds``; compares losses and speed.

    A first, untimed round warms both up (jgd compiles, PyTorch's allocator and thread pool
    settle); the speeds are medians over ``rounds``, their ratio the median of the per-round
    ratios with its spread (``timing.Ratio``); PyTorch runs on as many threads as XLA has cores
    (``torch_baseline.set_threads``). The losses and accuracies are the last run's (every run of
    a side is the same run).
    """
    from jgd import torch_baseline

    threads = torch_baseline.set_threads()
    last: dict[str, Side] = {}
    compiled: dict[str, float] = {}

    def timed(name: str, run) -> float:
        last[name] = run()
        compiled.setdefault(name, last[name].compile_seconds)  # the warm-up's
        return last[name].seconds

    times = timing.interleaved(
        {"jgd": lambda: timed("jgd", race.jgd), "torch": lambda: timed("torch", race.torch)},
        rounds=rounds,
    )
    ours, theirs = last["jgd"], last["torch"]
    diff = np.abs(ours.losses - theirs.losses)
    steps = len(race.order)
    return Comparison(
        data_name=race.problem.note,
        steps=steps,
        jgd_losses=ours.losses,
        torch_losses=theirs.losses,
        max_abs_diff=float(diff.max()),
        max_rel_diff=float((diff / np.abs(theirs.losses)).max()),
        jgd_accuracy=race.problem.accuracy(ours.params),
        torch_accuracy=race.problem.accuracy(theirs.params),
        jgd_steps_per_second=times["jgd"].rate(steps),
        torch_steps_per_second=times["torch"].rate(steps),
        jgd_compile_seconds=compiled["jgd"],
        rule=_rule(race),
        speed=timing.ratio(times["jgd"], times["torch"]),
        threads=threads,
    )


def _rule(race: Race) -> str:
    opt, sched = race._torch_pair(copy.deepcopy(race.net))
    text = (
        type(opt).__name__
        + "("
        + ", ".join(f"{k}={v}" for k, v in race.options.items() if v and k in opt.defaults)
        + ")"
    )
    return text + (f" + {type(sched).__name__}" if sched is not None else "")


def compare_torch(
    data_dir: str | os.PathLike | None = None,
    *,
    steps: int = 500,
    batch_size: int = 64,
    optimizer: str = "sgd",
    scheduler: str = "none",
    lr: float = 0.01,
    momentum: float = 0.0,
    nesterov: bool = False,
    hidden: int = 128,
    seed: int = 0,
    rounds: int = 3,
    model: str | None = None,
    data: str | None = None,
    loss: str = "cross_entropy",
) -> Comparison:
    """Trains the seeds' Net (or ``model``) in PyTorch and its copy in jgd, step for step.

    Data: MNIST from ``data_dir``, else scikit-learn's 8x8 digits (input width 64); batches: one
    ``jgd.data.epoch_order(seed=seed)`` for both sides. See ``Race`` and ``compare``. With
    ``model="FILE.py:FACTORY"``, ``FACTORY()`` builds the torch module (``compare_model``),
    trained with ``loss`` on ``data`` (an .npz of ``X``, ``y``) or the data above.
    """
    if model is not None:
        from jgd.apps import compare_model
        from jgd.data import epoch_order

        arrays = compare_model.load_data(data, data_dir, loss)
        if batch_size > len(arrays.y):
            raise ValueError(f"--batch-size {batch_size} is larger than the {len(arrays.y)} rows.")
        order = epoch_order(len(arrays.y), batch_size, steps=steps, seed=seed)
        net = compare_model.build(model, seed)
        race = compare_model.ModelRace(net, arrays, order, loss=loss, optimizer=optimizer,
                                       scheduler=scheduler, lr=lr, momentum=momentum,
                                       nesterov=nesterov)  # fmt: skip
        return compare(race, rounds=rounds)
    if data is not None or loss != "cross_entropy":
        raise ValueError("--data and --loss go with --model FILE.py:FACTORY (the seeds' Net "
                         "trains on --data-dir or the digits, with cross-entropy).")  # fmt: skip
    problem = problems.mlp("digits" if data_dir is None else "mnist", mnist_dir=data_dir)
    m = len(problem.data.y)
    if batch_size > m:
        raise ValueError(f"batch_size={batch_size} is larger than the {m} training examples.")
    from jgd.data import epoch_order

    order = epoch_order(m, batch_size, steps=steps, seed=seed)
    race = Race(
        problem,
        order,
        hidden=hidden,
        seed=seed,
        optimizer=optimizer,
        scheduler=scheduler,
        lr=lr,
        momentum=momentum,
        nesterov=nesterov,
    )
    return compare(race, rounds=rounds)


def format_comparison(c: Comparison, sample: int = 10) -> str:
    """The comparison as text: sampled steps side by side, differences, accuracy and speed."""
    picks = np.unique(np.linspace(0, c.steps - 1, min(sample, c.steps)).astype(int))
    lines = [
        f"data: {c.data_name}; {c.steps} steps; {c.rule}",
        f"{'step':>6} {'jgd loss':>12} {'torch loss':>12} {'|diff|':>10}",
    ]
    for t in picks:
        lines.append(
            f"{t:>6} {c.jgd_losses[t]:>12.6f} {c.torch_losses[t]:>12.6f} "
            f"{abs(c.jgd_losses[t] - c.torch_losses[t]):>10.2e}"
        )
    lines += [
        f"max |diff| {c.max_abs_diff:.2e}, max relative diff {c.max_rel_diff:.2e} over all steps",
        (
            f"test accuracy: jgd {c.jgd_accuracy:.4f}, PyTorch {c.torch_accuracy:.4f}"
            if np.isfinite(c.jgd_accuracy)
            else "test accuracy: none (a regression loss)"
        ),
        f"steps/s, median of {c.speed.rounds} interleaved rounds after a warm-up: jgd "
        f"{c.jgd_steps_per_second:,.0f} (compile {c.jgd_compile_seconds:.2f}s, not included), "
        f"PyTorch {c.torch_steps_per_second:,.0f} ({c.threads} threads, XLA {c.threads} cores)",
        f"jgd / PyTorch speed: {c.speed}",
    ]
    return "\n".join(lines)


__all__ = [
    "OPTIMIZERS",
    "SCHEDULERS",
    "Comparison",
    "Race",
    "Side",
    "compare",
    "compare_torch",
    "format_comparison",
    "torch_optimizer",
    "torch_scheduler",
]
