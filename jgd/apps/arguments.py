"""The ``jgd`` command line's flags: every sub-command's arguments, each with its help, default
and range (``jgd.cli`` runs them). A bad flag is a ``UsageError``: one line, exit code 2."""

from __future__ import annotations

import argparse

from jgd.apps.flags import (
    existing_dir,
    existing_file,
    fraction,
    host_port,
    int_in,
    positive_float,
    positive_int,
)
from jgd.apps.flags import seed as seed_type
from jgd.apps.flags import shape as shape_type
from jgd.apps.torch_recipes import OPTIMIZERS, SCHEDULERS
from jgd.bench import BENCHMARKS

TOUR_SECTIONS = 11  # jgd.tour.SECTIONS (not imported here: the tour loads matplotlib)


class UsageError(Exception):
    """A bad flag or argument value: one line, exit code 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, not argparse's usage block
        raise UsageError(f"{self.prog}: {message} (see {self.prog} --help)")


def parser() -> argparse.ArgumentParser:
    """The command line, with one sub-command per job."""
    p = _Parser(prog="jgd", description="Gradient descent in JAX, run and measured.")
    p.add_argument("--version", action="version", version=f"jgd {_version()}")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)

    tour = sub.add_parser("tour", help="the seeds' whole lesson, in numbers and plots")
    tour.add_argument(
        "--section",
        type=int,
        action="append",
        choices=range(1, TOUR_SECTIONS + 1),
        metavar="N",
        help=f"run only section N (1-{TOUR_SECTIONS}); repeatable (default: all)",
    )
    tour.add_argument(
        "--out", default="jgd-tour", help="folder for the plots and index.html (default ./jgd-tour)"
    )
    tour.add_argument(
        "--no-plots",
        action="store_true",
        help="print the numbers only; no PNGs, no index.html (default: off)",
    )
    tour.add_argument(
        "--serial",
        action="store_true",
        help="compute every section in this process, in turn (default: sections 10 and 11 in a "
        "second process, stopped while the others measure)",
    )
    tour.add_argument(
        "--mnist",
        type=existing_dir,
        metavar="DIR",
        help=f"MNIST IDX files for sections 8-{TOUR_SECTIONS} (default: the cache, else the "
        "8x8 digits)",
    )

    train = sub.add_parser("train", help="the seeds' MLP on MNIST")
    train.add_argument(
        "--data-dir",
        type=existing_dir,
        help="folder with the MNIST IDX files (default: the download cache, ~/.cache/jgd/mnist)",
    )
    train.add_argument(
        "--download",
        action="store_true",
        help="download MNIST into ~/.cache/jgd/mnist first (default: off)",
    )
    train.add_argument(
        "--epochs",
        type=positive_int,
        default=5,
        help="passes over the data (>= 1, default 5); a finished run's --out is "
        "continued to this many epochs",
    )
    train.add_argument(
        "--batch-size",
        type=positive_int,
        default=64,
        help="examples per step (1 to the training set's size, default 64)",
    )
    train.add_argument(
        "--lr", type=positive_float, default=0.1, help="SGD's learning rate (> 0, default 0.1)"
    )
    train.add_argument(
        "--momentum", type=fraction, default=0.0, help="SGD's momentum (0 to 1, default 0)"
    )
    train.add_argument(
        "--hidden",
        type=int_in(1, 100_000),
        default=128,
        help="hidden units of the MLP (1-100000, default 128)",
    )
    train.add_argument(
        "--seed",
        type=seed_type,
        default=0,
        help="init and shuffle seed (0 to 2**31-1, default 0)",
    )
    train.add_argument(
        "--out", default="jgd-train", help="checkpoints and model.npz go here (default ./jgd-train)"
    )
    train.add_argument(
        "--checkpoint-every",
        type=positive_int,
        help="steps between checkpoints (>= 1, default: one epoch's steps)",
    )
    train.add_argument(
        "--no-progress", action="store_true", help="no progress bar (default: a bar)"
    )
    train.add_argument(
        "--coordinator",
        type=host_port,
        metavar="HOST:PORT",
        help="run as one of several processes (with "
        "--num-processes and --process-id): jax.distributed's coordinator, process 0's address "
        "(default: one process)",
    )
    train.add_argument(
        "--num-processes",
        type=int_in(1, 65_536),
        help="with --coordinator: how many processes (1-65536, no default)",
    )
    train.add_argument(
        "--process-id",
        type=int_in(0, 65_535),
        help="with --coordinator: this process's id (0 to --num-processes - 1, no default)",
    )
    train.add_argument(
        "--process-timeout",
        type=int_in(1, 86_400),
        default=120,
        metavar="SECONDS",
        help="how long a process waits for the others to join and to reach the run before it "
        "stops naming the missing one (1-86400, default 120)",
    )

    cmp = sub.add_parser("compare-torch", help="the same run in jgd and PyTorch, step for step")
    cmp.add_argument(
        "--data-dir",
        type=existing_dir,
        help="MNIST IDX files (default: scikit-learn's 8x8 digits)",
    )
    cmp.add_argument(
        "--optimizer",
        choices=OPTIMIZERS,
        default="sgd",
        help="the torch optimizer, replayed by to_optax (default sgd)",
    )
    cmp.add_argument(
        "--scheduler",
        choices=SCHEDULERS,
        default="none",
        help="a torch scheduler stepped once per step (default none)",
    )
    cmp.add_argument("--steps", type=positive_int, default=500, help="steps (>= 1, default 500)")
    cmp.add_argument(
        "--batch-size",
        type=positive_int,
        default=64,
        help="examples per step (1 to the data's size, default 64)",
    )
    cmp.add_argument(
        "--lr", type=positive_float, default=0.01, help="the learning rate (> 0, default 0.01)"
    )
    cmp.add_argument(
        "--momentum",
        type=fraction,
        default=0.0,
        help="SGD's or RMSprop's momentum (0 to 1, default 0)",
    )
    cmp.add_argument(
        "--nesterov", action="store_true", help="SGD with Nesterov momentum (default: off)"
    )
    cmp.add_argument(
        "--hidden",
        type=int_in(1, 100_000),
        default=128,
        help="hidden units of the seeds' Net (1-100000, default 128)",
    )
    cmp.add_argument(
        "--seed",
        type=seed_type,
        default=0,
        help="torch's init seed and the batches' (0 to 2**31-1, default 0)",
    )
    cmp.add_argument(
        "--sample",
        type=positive_int,
        default=10,
        help="steps shown side by side (>= 1, default 10)",
    )
    cmp.add_argument(
        "--model",
        metavar="FILE.py:FACTORY",
        help="your torch module: FACTORY() returns it (default: the seeds' Net)",
    )
    cmp.add_argument(
        "--data",
        metavar="FILE.npz",
        type=existing_file,
        help="with --model: arrays X and y (default: the 8x8 digits, or --data-dir's MNIST)",
    )
    cmp.add_argument(
        "--loss",
        choices=("cross_entropy", "nll", "mse"),
        default="cross_entropy",
        help="with --model: the loss both sides train with (default cross_entropy)",
    )

    bench = sub.add_parser("bench", help="the benchmark suite (benchmarks/README.md)")
    bench.add_argument(
        "name",
        choices=sorted(BENCHMARKS),
        help=f"which benchmark to run: one of {', '.join(sorted(BENCHMARKS))} (required)",
    )
    bench.add_argument(
        "--quick",
        action="store_true",
        help="a smaller run, under 2 minutes (default: the full run)",
    )
    bench.add_argument(
        "--out",
        default="benchmarks/results",
        help="where results are written (default benchmarks/results)",
    )
    bench.add_argument(
        "--function",
        metavar="MODULE:NAME",
        help="ad only: compare forward and reverse mode on your function (mypkg.mod:f or f.py:f; "
        "default: the built-in functions)",
    )
    bench.add_argument(
        "--input-shape",
        type=shape_type,
        metavar="N[,M...]",
        help="with --function: its input's shape, positive integers (required with --function)",
    )
    return p


def _version() -> str:
    from importlib import metadata

    try:
        return metadata.version("jgd")
    except metadata.PackageNotFoundError:  # run from a checkout without installing
        return "0.1.0"


__all__ = ["TOUR_SECTIONS", "UsageError", "parser"]
