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

from jgd.apps.arguments import TOUR_SECTIONS, UsageError, parser


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
    result = tour.run(
        args.section,
        out=out,
        plots=not args.no_plots,
        mnist_dir=args.mnist,
        processes=1 if args.serial else 2,
    )
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


__all__ = ["TOUR_SECTIONS", "UsageError", "main", "parser"]


if __name__ == "__main__":
    sys.exit(main())
