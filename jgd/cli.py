"""The ``jgd`` command: ``tour`` (the main job), ``train``, ``compare-torch``, ``bench``.

Bad flags (every number range-checked), missing, broken or unwritable files get one line on stderr
and exit code 2; a diverged ``jgd train`` says so and exits 1; Ctrl-C gets one line and exit code
130 (a training run keeps its checkpoints and resumes when run again).
"""

from __future__ import annotations

import argparse
import os
import pathlib
import sys
from collections.abc import Sequence

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
    tour.add_argument("--out", default="jgd-tour", help="folder for the plots (default ./jgd-tour)")
    tour.add_argument("--no-plots", action="store_true", help="print the numbers only")
    tour.add_argument(
        "--mnist",
        type=existing_dir,
        metavar="DIR",
        help="MNIST IDX files for sections 8-11 (default: the cache, else the 8x8 digits)",
    )

    train = sub.add_parser("train", help="the seeds' MLP on MNIST")
    train.add_argument("--data-dir", type=existing_dir, help="folder with the MNIST IDX files")
    train.add_argument("--download", action="store_true", help="download MNIST into the cache")
    train.add_argument("--epochs", type=positive_int, default=5)
    train.add_argument("--batch-size", type=positive_int, default=64)
    train.add_argument("--lr", type=positive_float, default=0.1)
    train.add_argument("--momentum", type=fraction, default=0.0)
    train.add_argument("--hidden", type=int_in(1, 100_000), default=128)
    train.add_argument("--seed", type=seed_type, default=0)
    train.add_argument("--out", default="jgd-train", help="checkpoints and model.npz go here")
    train.add_argument("--checkpoint-every", type=positive_int, help="steps (default: an epoch)")
    train.add_argument("--no-progress", action="store_true")
    train.add_argument(
        "--coordinator",
        type=host_port,
        metavar="HOST:PORT",
        help="run as one of several processes (with "
        "--num-processes and --process-id): jax.distributed's coordinator, process 0's address",
    )
    train.add_argument("--num-processes", type=int_in(1, 65_536))
    train.add_argument("--process-id", type=int_in(0, 65_535))
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
    cmp.add_argument("--optimizer", choices=OPTIMIZERS, default="sgd")
    cmp.add_argument(
        "--scheduler", choices=SCHEDULERS, default="none", help="stepped once per step"
    )
    cmp.add_argument("--steps", type=positive_int, default=500)
    cmp.add_argument("--batch-size", type=positive_int, default=64)
    cmp.add_argument("--lr", type=positive_float, default=0.01)
    cmp.add_argument("--momentum", type=fraction, default=0.0)
    cmp.add_argument("--nesterov", action="store_true")
    cmp.add_argument("--hidden", type=int_in(1, 100_000), default=128)
    cmp.add_argument("--seed", type=seed_type, default=0)
    cmp.add_argument("--sample", type=positive_int, default=10, help="steps shown side by side")
    cmp.add_argument(
        "--model",
        metavar="FILE.py:FACTORY",
        help="your torch module: FACTORY() returns it (default: the seeds' Net)",
    )
    cmp.add_argument(
        "--data", metavar="FILE.npz", type=existing_file, help="with --model: arrays X and y"
    )
    cmp.add_argument(
        "--loss",
        choices=("cross_entropy", "nll", "mse"),
        default="cross_entropy",
        help="with --model: the loss both sides train with (default cross_entropy)",
    )

    bench = sub.add_parser("bench", help="the benchmark suite (benchmarks/README.md)")
    bench.add_argument("name", choices=sorted(BENCHMARKS))
    bench.add_argument("--quick", action="store_true", help="a smaller run, under 2 minutes")
    bench.add_argument("--out", default="benchmarks/results", help="where results are written")
    bench.add_argument(
        "--function",
        metavar="MODULE:NAME",
        help="ad only: compare forward and reverse mode on your function (mypkg.mod:f or f.py:f)",
    )
    bench.add_argument(
        "--input-shape",
        type=shape_type,
        metavar="N[,M...]",
        help="with --function: its input's shape",
    )
    return p


def _writable(folder: str, flag: str) -> pathlib.Path:
    path = pathlib.Path(folder)
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / ".jgd-write-test"
        probe.write_text("")
        probe.unlink()
    except OSError as e:
        raise UsageError(f"{flag} {folder!r} is not writable: {e.strerror or e}") from None
    return path


def _flags(args: argparse.Namespace, *names: str) -> dict[str, object]:
    """The parsed flags ``names`` as keyword arguments (``--batch-size`` is ``batch_size``)."""
    return {name: getattr(args, name) for name in names}


def _tour(args: argparse.Namespace) -> int:
    from jgd import tour

    out = args.out if args.no_plots else _writable(args.out, "--out")
    result = tour.run(args.section, out=out, plots=not args.no_plots, mnist_dir=args.mnist)
    return 0 if result.all_agree else 1


def _train(args: argparse.Namespace) -> int:
    from jgd.apps.train import find_mnist, train_mnist

    if args.data_dir and args.download:
        raise UsageError("jgd train: give --data-dir or --download, not both")
    out = _writable(args.out, "--out")
    folder = find_mnist(args.data_dir, args.download)
    _join(args)
    summary = train_mnist(
        folder,
        **_flags(args, "epochs", "batch_size", "lr", "momentum", "hidden", "seed"),
        out=out,
        checkpoint_every=args.checkpoint_every,
        progress=not args.no_progress,
    )
    print(
        f"test accuracy {summary['accuracy']:.4f} after {args.epochs} epochs "
        f"({summary['seconds']:.1f}s); model saved to {summary['model']}"
    )
    if summary["diverged"]:
        why = {
            "rose": "the loss ended above twice its start",
            "non-finite": "a non-finite loss, gradient or update",
            "max_loss": "a loss above max_loss",
        }[summary["divergence"]]
        rose = summary["divergence"] == "rose"
        held = "the weights it ended with" if rose else "the last finite weights"
        print(
            f"jgd train: the run diverged at step {summary['diverged_at']} ({why}); "
            f"{summary['model']} holds {held}. Try a smaller --lr.",
            file=sys.stderr,
        )
        return 1
    return 0


def _join(args: argparse.Namespace) -> None:
    """``jax.distributed.initialize`` from the flags, when this is one of several processes."""
    given = [args.coordinator, args.num_processes, args.process_id]
    if all(g is None for g in given):
        return
    if any(g is None for g in given):
        raise UsageError("jgd train: give --coordinator, --num-processes and --process-id together")
    if args.process_id >= args.num_processes:
        raise UsageError(
            f"jgd train: --process-id {args.process_id} is not below --num-processes "
            f"{args.num_processes}"
        )
    from jgd.apps.processes import join

    join(args.coordinator, args.num_processes, args.process_id, args.process_timeout)


def _compare(args: argparse.Namespace) -> int:
    import numpy as np

    from jgd.apps.compare import compare_torch, format_comparison

    names = ("optimizer", "scheduler", "steps", "batch_size", "lr", "momentum", "nesterov")
    names += ("hidden", "seed", "model", "data", "loss")
    result = compare_torch(args.data_dir, **_flags(args, *names))
    print(format_comparison(result, args.sample))
    broken = {
        side: int(np.flatnonzero(~np.isfinite(losses))[0])
        for side, losses in (("jgd", result.jgd_losses), ("PyTorch", result.torch_losses))
        if not np.isfinite(losses).all()
    }
    if broken:  # a NaN difference is no agreement: say so, and fail
        where = ", ".join(f"{side} from step {step}" for side, step in broken.items())
        print(
            f"jgd compare-torch: the losses are not finite ({where}): the run diverged and the "
            f"two sides cannot be compared; lower --lr (it is {args.lr:g}).",
            file=sys.stderr,
        )
        return 1
    return 0


def _bench(args: argparse.Namespace) -> int:
    from jgd import bench

    if (args.function or args.input_shape) and args.name != "ad":
        raise UsageError(f"jgd bench: --function and --input-shape go with ad, not {args.name}")
    if args.input_shape and not args.function:
        raise UsageError("jgd bench: --input-shape needs --function MODULE:NAME")
    options = {}
    if args.function:
        options = {"function": args.function, "input_shape": args.input_shape}
    bench.run(args.name, quick=args.quick, out=str(_writable(args.out, "--out")), **options)
    return 0


COMMANDS = {"tour": _tour, "train": _train, "compare-torch": _compare, "bench": _bench}


def main(argv: Sequence[str] | None = None) -> int:
    """Runs ``jgd``; returns the exit code (0 ok, 1 failed check, 2 bad input, 130 Ctrl-C)."""
    os.environ.setdefault("MPLBACKEND", "Agg")
    try:
        args = parser().parse_args(argv)
        return COMMANDS[args.command](args)
    except UsageError as e:
        print(str(e), file=sys.stderr)
        return 2
    except (FileNotFoundError, ValueError, ImportError, ConnectionError) as e:
        print(f"jgd: {e}", file=sys.stderr)
        return 2
    except OSError as e:  # a full disk, a folder that vanished: one line naming the file
        where = f"{e.filename}: " if e.filename else ""
        print(f"jgd: could not write or read {where}{e.strerror or e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(
            "jgd: interrupted; checkpoints written so far are kept, run the same command to resume",
            file=sys.stderr,
        )
        return 130


if __name__ == "__main__":
    sys.exit(main())
