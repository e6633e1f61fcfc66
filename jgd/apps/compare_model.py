"""``jgd compare-torch --model FILE.py:FACTORY``: the user's own torch module, both sides.

``FACTORY()`` builds the ``nn.Module`` (torch's init, after ``torch.manual_seed(seed)``); jgd
trains its copy (``jgd.models.from_torch``) with the optimizer and scheduler replayed by
``to_optax(..., module=net)``, torch trains a deep copy of the same net, on one explicit
``order`` of batches. Data: ``--data FILE.npz`` (arrays ``X`` and ``y``, optionally ``X_test``
and ``y_test``), MNIST from ``--data-dir``, or scikit-learn's 8x8 digits. ``ModelRace`` has
``Race``'s interface, so ``compare`` times and compares it the same way.
"""

from __future__ import annotations

import copy
import os
from typing import Any, NamedTuple

import numpy as np

from jgd import losses, models
from jgd.apps.torch_recipes import Side

LOSSES = ("cross_entropy", "nll", "mse")
_JGD_LOSSES = {
    "cross_entropy": losses.cross_entropy,
    "nll": losses.nll_loss,
    "mse": losses.mse_loss,
}


class Data(NamedTuple):
    X: np.ndarray
    y: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    note: str


def load_data(data: str | None, data_dir: str | os.PathLike | None, loss: str) -> Data:
    """The arrays of ``--data FILE.npz``, else MNIST (``data_dir``) or the 8x8 digits."""
    if data is None:
        from jgd import data as datasets

        splits = datasets.real_digits(data_dir)
        train, test = splits.train, splits.test
        return Data(train.X, train.y, test.X, test.y, splits.name)
    try:
        with np.load(data) as f:
            arrays = {k: f[k] for k in f.files}
    except (OSError, ValueError) as e:
        raise ValueError(f"--data {data!r} cannot be read as an .npz file ({e}).") from None
    missing = [k for k in ("X", "y") if k not in arrays]
    if missing:
        raise ValueError(f"--data {data!r} has no array {missing[0]!r}; it needs X and y.")
    X, y = arrays["X"], arrays["y"]
    if len(X) != len(y):
        raise ValueError(f"--data {data!r}: X has {len(X)} rows but y has {len(y)}.")
    if loss != "mse" and not np.issubdtype(y.dtype, np.integer):
        raise ValueError(
            f"--data {data!r}: y has dtype {y.dtype}; --loss {loss} needs integer class labels "
            "(or use --loss mse)."
        )
    X = X.astype(np.float32)
    y = y.astype(np.float32) if loss == "mse" else y.astype(np.int64)
    test = (arrays.get("X_test", X), arrays.get("y_test", y))
    return Data(X, y, test[0].astype(X.dtype), test[1].astype(y.dtype), f"{data} ({len(y)} rows)")


def build(spec: str, seed: int) -> Any:
    """``FACTORY()`` of ``FILE.py:FACTORY`` after ``torch.manual_seed(seed)``: an ``nn.Module``."""
    from jgd.apps.user_code import load, where
    from jgd.torch_baseline import require_torch

    torch = require_torch()
    factory = load(spec, "--model")
    torch.manual_seed(seed)
    try:
        net = factory()
    except Exception as e:
        raise ValueError(f"--model {spec!r}: calling it raised {where(e)}") from None
    if not isinstance(net, torch.nn.Module):
        raise ValueError(
            f"--model {spec!r} returned {type(net).__name__}; FACTORY() must return a "
            "torch.nn.Module."
        )
    return net


class _Scored(NamedTuple):
    """What ``compare`` reads of a problem: its name and the test accuracy of trained params."""

    note: str
    data: Data
    loss: str

    def accuracy(self, trained: Any) -> float:
        if self.loss == "mse":
            return float("nan")  # no classes
        if isinstance(trained, models.TorchModule | models.MLP):
            return models.accuracy(trained, self.data.X_test, self.data.y_test)
        import torch

        trained.eval()
        with torch.no_grad():
            out = trained(torch.from_numpy(self.data.X_test)).argmax(1).numpy()
        return float(np.mean(out == self.data.y_test))


class ModelRace:
    """``Race`` for a user's module: jgd trains ``from_torch(net)``, torch a copy of ``net``."""

    def __init__(self, net: Any, data: Data, order: np.ndarray, *, loss: str = "cross_entropy",
                 optimizer: str = "sgd", scheduler: str = "none", lr: float = 0.01,
                 momentum: float = 0.0, nesterov: bool = False):  # fmt: skip
        from jgd.apps.torch_recipes import check_names

        check_names(optimizer, scheduler)
        self.net, self.order, self.loss = net, np.asarray(order), loss
        self.problem = _Scored(data.note, data, loss)
        self.names = (optimizer, scheduler)
        self.options = {"lr": lr, "momentum": momentum, "nesterov": nesterov}
        self.compile = False
        models.from_torch(net)  # refused here, naming the node, before anything runs

    def _torch_pair(self, net: Any) -> tuple[Any, Any]:
        from jgd.apps.torch_recipes import torch_optimizer, torch_scheduler

        opt = torch_optimizer(self.names[0], net.parameters(), **self.options)
        return opt, torch_scheduler(self.names[1], opt, len(self.order))

    def jgd(self) -> Any:
        import jgd
        from jgd.torch_baseline import to_optax

        net = copy.deepcopy(self.net)
        tx = to_optax(*self._torch_pair(net), steps=len(self.order), module=net)
        score = _JGD_LOSSES[self.loss]
        data = (self.problem.data.X, self.problem.data.y)
        r = jgd.fit(lambda m, b: score(m(b[0]), b[1]), models.from_torch(net), data,
                    optimizer=tx, order=self.order)  # fmt: skip
        return Side(np.asarray(r.losses), r.run_time, r.model, r.compile_time)

    def torch(self) -> Any:
        from jgd import torch_baseline

        net = copy.deepcopy(self.net)
        opt, sched = self._torch_pair(net)
        d = self.problem.data
        out = torch_baseline.train(net, d.X, d.y, self.order, optimizer=opt, scheduler=sched,
                                   loss=self.loss)  # fmt: skip
        return Side(out["losses"], out["seconds"], net, out["compile_seconds"])


__all__ = ["LOSSES", "ModelRace", "build", "load_data"]
