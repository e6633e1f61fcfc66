"""``train_mnist``: the seeds' MLP on MNIST: progress, per-epoch accuracy, checkpoints, a model."""

from __future__ import annotations

import functools
import pathlib
import time
from collections.abc import Callable
from typing import Any

import jax
import numpy as np
import optax
from flax import nnx

from jgd import Progress, data, data_mesh, io, models, problems


def find_mnist(data_dir: str | None, download: bool) -> pathlib.Path:
    """The MNIST folder: ``data_dir``, else a download (when asked), else the download cache."""
    if data_dir is not None:
        folder = pathlib.Path(data_dir)
        if not folder.is_dir():
            raise FileNotFoundError(f"--data-dir {data_dir!r} does not exist or is not a folder.")
        return folder
    if download:
        return data.download_mnist()
    cache = data.default_dir()
    if not (cache / "train-images-idx3-ubyte.gz").exists():
        raise FileNotFoundError(
            f"no MNIST given and none cached in {cache}; pass --data-dir DIR (IDX files) or "
            "--download."
        )
    return cache


def _share(mlp: problems.Problem) -> tuple[problems.Problem, Any]:
    """The training rows as a global array of which this process holds its equal share (the
    last ``m % processes`` rows left out), and the mesh over every process's devices."""
    from jax.sharding import NamedSharding, PartitionSpec

    mesh = data_mesh()
    n, i = jax.process_count(), jax.process_index()
    per = len(mlp.data.y) // n
    mine = slice(i * per, (i + 1) * per)
    split = NamedSharding(mesh, PartitionSpec("data"))
    data = tuple(jax.make_array_from_process_local_data(split, a[mine]) for a in mlp.data)
    return mlp._replace(data=data), mesh


def train_mnist(
    folder: str | pathlib.Path,
    *,
    epochs: int = 5,
    batch_size: int = 64,
    lr: float = 0.1,
    momentum: float = 0.0,
    hidden: int = 128,
    seed: int = 0,
    out: str | pathlib.Path = "jgd-train",
    checkpoint_every: int | None = None,
    progress: bool = True,
    echo: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Trains ``MLP(784, hidden, 10)`` by shuffled mini-batch SGD; resumes from ``out``.

    Writes ``out/checkpoints`` (orbax, every ``checkpoint_every`` steps, default one epoch) and
    ``out/model.npz`` (the weights under PyTorch's names: ``fc1.weight``, ...). As one of several
    processes (after ``jax.distributed.initialize``), each holds its share of the examples, the
    run spans every process's devices, process 0 writes ``model.npz``, and no checkpoints are
    written (not supported across processes yet).

    Returns:
      ``{"epochs": [(epoch, mean train loss, test accuracy), ...], "accuracy", "seconds",
      "model"}``.
    """
    mlp = problems.mlp("mnist", mnist_dir=folder, hidden=hidden, seed=seed)
    width = mlp.data.X.shape[1]
    if batch_size > len(mlp.data.y):  # said before a checkpoint interval is derived from it
        raise ValueError(
            f"--batch-size {batch_size} is larger than the {len(mlp.data.y)} training examples; "
            f"give at most {len(mlp.data.y)}"
        )
    mesh, several = None, jax.process_count() > 1
    if several:  # one of several processes: this process's share of the examples
        mlp, mesh = _share(mlp)
    out = pathlib.Path(out)
    history: list[tuple[int, float, float]] = []

    def report(p: Progress) -> None:
        mean = float(np.nanmean(p.losses))  # the epoch's batch losses
        acc = mlp.accuracy(p.state.params)
        history.append((p.epoch, mean, acc))
        echo(f"epoch {p.epoch}/{epochs}: train loss {mean:.4f}, test accuracy {acc:.4f}")

    opt = functools.partial(optax.sgd, momentum=momentum) if momentum else optax.sgd
    start = time.perf_counter()
    result = mlp.fit(
        optimizer=opt,
        learning_rate=lr,
        batch_size=batch_size,
        epochs=epochs,
        key=seed,
        progress=progress,
        checkpoint_dir=None if several else out / "checkpoints",
        checkpoint_every=None if several else checkpoint_every or len(mlp.data.y) // batch_size,
        mesh=mesh,
        report_every="epoch",
        callback=report,
    )
    accuracy = mlp.accuracy(result.params)
    model = nnx.merge(nnx.graphdef(models.MLP(width, hidden, 10, rngs=nnx.Rngs(0))), result.params)
    path = out / "model.npz"
    if jax.process_index() == 0:  # one writer; every process holds the same (replicated) weights
        with io.atomic(path) as f:  # a kill or a full disk leaves the previous model whole
            np.savez(f, **models.state_dict(model))
    return {
        "epochs": history,
        "accuracy": accuracy,
        "seconds": time.perf_counter() - start,
        "model": path,
        "diverged": result.diverged,
        "diverged_at": result.diverged_at,
        "divergence": result.divergence,
    }


__all__ = ["find_mnist", "train_mnist"]
