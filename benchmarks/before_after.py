"""Before and after: is the working tree's ``jgd bench train`` no slower than a base commit's?

The base commit (``--base``, default ``HEAD``) is checked out in a ``git worktree`` at
``/tmp/jgd-base-<sha>`` and installed there in its own virtual environment; the new code is the
working tree this script lives in, run by the current interpreter. Each side is timed in fresh
processes, alternated process by process: for each of ``--processes`` iterations, one base
process, one new process and one more new process (the A/A partner), in the order base, new, A/A
and then A/A, new, base, so that no side always runs first. Every process pins itself to the
same cores (``--cores``) before jax is imported, and measures every (optimizer, batch) case with
``jgd.bench._train.measure`` (``--rounds`` interleaved rounds after a warm-up round) for the jgd
contenders.

For each case and contender, a process's ratio is new/base time per step (> 1: slower); the A/A
ratio is A/A-partner/new time per step, the same measurement with no change in the code: its
spread is the noise floor. Which of two equal sides is the numerator is arbitrary, so the floor
is folded around 1: ``floor = max(A/A max, 1 / A/A min)``. The verdict on the median ratio over
processes:

- ``no slower``: median ratio <= 1.0;
- ``unresolved``: above 1.0 but within the A/A spread (<= floor);
- ``slower``: above the floor.

The table and the record (machine, versions, date, both commits, the command that reproduces it)
are written to ``benchmarks/results/before_after.md`` and ``.json``.

Usage::

    python benchmarks/before_after.py [--base COMMIT] [--processes 5] [--rounds 30]
        [--batches 1:1000,64:300] [--optimizers sgd,adam] [--cores 0,1] [--quick]
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shlex
import statistics
import subprocess
import sys
from pathlib import Path

NEW_TREE = Path(__file__).resolve().parents[1]
RESULTS = NEW_TREE / "benchmarks" / "results"
CONTENDERS = ["jgd.fit", "jgd scan_steps x100", "jgd with_data loop"]
SIDES = ("base", "new", "A/A")


def worker(args: argparse.Namespace) -> None:
    """Pins the cores, imports jgd from ``args.tree``, and prints one JSON line of rates.

    Args:
      args: the parsed flags (``tree``, ``cores``, ``batches``, ``optimizers``, ``rounds``,
        ``hidden``).

    Raises:
      SystemExit: when the imported jgd does not lie in ``args.tree``.
    """
    os.sched_setaffinity(0, args.cores)  # before jax starts its threads
    from importlib import metadata

    import jgd
    from jgd.bench import _train

    tree = Path(args.tree).resolve()
    if not Path(jgd.__file__).resolve().is_relative_to(tree):
        sys.exit(f"before_after worker: jgd imported from {jgd.__file__}, expected under {tree}")
    rates = {
        f"{name} B={batch}": _train.measure(
            batch, steps, name, args.rounds, args.hidden, CONTENDERS
        )
        for name in args.optimizers
        for batch, steps in args.batches.items()
    }
    versions = {p: metadata.version(p) for p in ("jax", "optax", "flax")}
    print(json.dumps({"jgd": jgd.__file__, "versions": versions, "rates": rates}))


def git(*argv: str, cwd: Path = NEW_TREE) -> str:
    """The stripped stdout of ``git argv`` run in ``cwd``; raises if git fails."""
    done = subprocess.run(["git", *argv], cwd=cwd, check=True, capture_output=True, text=True)
    return done.stdout.strip()


def imports_jgd_from(python: Path, tree: Path) -> bool:
    """Whether ``python`` exists and imports jgd from under ``tree``."""
    if not python.exists():
        return False
    probe = [str(python), "-P", "-c", "import jgd; print(jgd.__file__)"]  # -P: not cwd
    done = subprocess.run(probe, cwd=tree, capture_output=True, text=True)
    return done.returncode == 0 and Path(done.stdout.strip()).resolve().is_relative_to(tree)


def base_side(commit: str) -> tuple[str, Path, Path]:
    """The base commit's worktree and venv python, made if missing.

    Args:
      commit: any commit-ish.

    Returns:
      ``(sha, worktree, python)``.
    """
    sha = git("rev-parse", "--verify", f"{commit}^{{commit}}")
    tree = Path(f"/tmp/jgd-base-{sha[:7]}").resolve()
    if not tree.exists():
        git("worktree", "add", "--detach", str(tree), sha)
    if git("rev-parse", "HEAD", cwd=tree) != sha:
        sys.exit(f"{tree} is not at {sha}: remove it (git worktree remove {tree}) and rerun")
    python = tree / ".venv" / "bin" / "python"
    if not imports_jgd_from(python, tree):
        print(f"installing {sha[:7]} into {tree}/.venv", file=sys.stderr)
        # from the interpreter the current venv was made from: both sides run the same Python
        venv = [Path(sys.base_prefix) / "bin" / "python3", "-m", "venv", tree / ".venv"]
        subprocess.run(venv, check=True)
        subprocess.run([python, "-m", "pip", "install", "-q", "-e", tree], check=True)
        if not imports_jgd_from(python, tree):
            sys.exit(f"{python} does not import jgd from {tree}")
    return sha, tree, python


def run_worker(python: Path, tree: Path, args: argparse.Namespace) -> dict:
    """One fresh worker process of one side; its parsed JSON line.

    Args:
      python: the side's interpreter.
      tree: the side's source tree (cwd, and where its jgd must come from).
      args: the parent's flags, passed on.

    Returns:
      The worker's record: ``{"jgd", "versions", "rates": {case: {contender: steps/s}}}``.
    """
    argv = [str(python), str(Path(__file__).resolve()), "--worker", "--tree", str(tree)]
    argv += ["--rounds", str(args.rounds), "--hidden", str(args.hidden)]
    argv += ["--cores", ",".join(map(str, sorted(args.cores)))]
    argv += ["--batches", ",".join(f"{b}:{s}" for b, s in args.batches.items())]
    argv += ["--optimizers", ",".join(args.optimizers)]
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    done = subprocess.run(argv, cwd=tree, env=env, capture_output=True, text=True)
    if done.returncode:
        sys.exit(f"worker failed ({done.returncode}) in {tree}:\n{done.stderr[-4000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def judge(runs: dict[str, list[dict]]) -> list[dict]:
    """Per case and contender: the ratios over processes and the verdict (module docstring).

    Args:
      runs: each side's worker records, one per process, in process order.

    Returns:
      One row per (case, contender).
    """
    rows = []
    for case in runs["new"][0]["rates"]:
        for c in CONTENDERS:
            rate = {s: [r["rates"][case][c] for r in runs[s]] for s in SIDES}
            ratio = [b / n for b, n in zip(rate["base"], rate["new"], strict=True)]
            aa = [n / a for n, a in zip(rate["new"], rate["A/A"], strict=True)]
            median = statistics.median(ratio)
            floor = max(max(aa), 1 / min(aa))
            verdict = "no slower" if median <= 1 else "unresolved" if median <= floor else "slower"
            rows.append(
                {
                    "case": case,
                    "contender": c,
                    "base_steps_per_s": statistics.median(rate["base"]),
                    "new_steps_per_s": statistics.median(rate["new"]),
                    "ratio_median": median,
                    "ratio_min": min(ratio),
                    "ratio_max": max(ratio),
                    "aa_min": min(aa),
                    "aa_max": max(aa),
                    "verdict": verdict,
                }
            )
    return rows


def overall(rows: list[dict]) -> str:
    """The worst verdict of all rows."""
    for verdict in ("slower", "unresolved"):
        if any(r["verdict"] == verdict for r in rows):
            return verdict
    return "no slower"


def table(rows: list[dict]) -> str:
    """The rows as a Markdown table."""
    head = ["case", "contender", "base steps/s", "new steps/s", "new/base time", "min–max"]
    head += ["A/A min–max", "verdict"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        cells = [r["case"], r["contender"], f"{r['base_steps_per_s']:,.0f}"]
        cells += [f"{r['new_steps_per_s']:,.0f}", f"{r['ratio_median']:.3f}"]
        cells += [f"{r['ratio_min']:.3f}–{r['ratio_max']:.3f}"]
        cells += [f"{r['aa_min']:.3f}–{r['aa_max']:.3f}", r["verdict"]]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    """The flags, ``--quick``'s defaults filled in where not given."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--base", default="HEAD", help="the commit to compare against (HEAD)")
    p.add_argument("--processes", type=int, help="fresh processes per side (5; quick 2)")
    p.add_argument("--rounds", type=int, help="interleaved rounds per process (30; quick 3)")
    p.add_argument("--batches", help="batch:steps,... (1:1000,64:300; quick 1:200,64:60)")
    p.add_argument("--optimizers", default="sgd,adam", help="comma-separated (sgd,adam)")
    p.add_argument("--hidden", type=int, default=128, help="the MLP's hidden width (128)")
    p.add_argument("--cores", default="0,1", help="the cores every process is pinned to (0,1)")
    p.add_argument("--quick", action="store_true", help="a smoke run: 2 processes x 3 rounds")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--tree", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    quick = args.quick
    args.processes = args.processes or (2 if quick else 5)
    args.rounds = args.rounds or (3 if quick else 30)
    args.batches = args.batches or ("1:200,64:60" if quick else "1:1000,64:300")
    args.batches = {int(b): int(s) for b, s in (x.split(":") for x in args.batches.split(","))}
    args.optimizers = args.optimizers.split(",")
    args.cores = {int(c) for c in args.cores.split(",")}
    return args


def main() -> None:
    """Runs the alternated processes, prints the table and the verdict, writes the record."""
    args = parse()
    if args.worker:
        return worker(args)
    sha, base_tree, base_python = base_side(args.base)
    sides = {"base": (base_python, base_tree), "new": (Path(sys.executable), NEW_TREE)}
    sides["A/A"] = sides["new"]
    runs: dict[str, list[dict]] = {s: [] for s in SIDES}
    for i in range(args.processes):
        for side in SIDES if i % 2 == 0 else SIDES[::-1]:
            print(f"process {i + 1}/{args.processes}: {side}", file=sys.stderr, flush=True)
            runs[side].append(run_worker(*sides[side], args))
    rows = judge(runs)
    verdict = overall(rows)
    new_sha = git("rev-parse", "HEAD")
    dirty = bool(git("status", "--porcelain", "--untracked-files=no"))
    new = f"{new_sha} + working tree" if dirty else new_sha
    command = ["python", "benchmarks/before_after.py", "--base", sha]
    command += ["--processes", str(args.processes), "--rounds", str(args.rounds)]
    command += ["--batches", ",".join(f"{b}:{s}" for b, s in args.batches.items())]
    command += ["--optimizers", ",".join(args.optimizers), "--hidden", str(args.hidden)]
    command += ["--cores", ",".join(map(str, sorted(args.cores)))]
    record = {
        "machine": {"platform": platform.platform(), "nproc": os.cpu_count()},
        "cores": sorted(args.cores),
        "versions": {s: runs[s][0]["versions"] for s in ("base", "new")},
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "base": sha,
        "new": new,
        "command": shlex.join(command),
        "processes": args.processes,
        "rounds": args.rounds,
        "batches": args.batches,
        "verdict": verdict,
        "rows": rows,
        "raw": runs,
    }
    text = (
        f"Before and after: {new} against base {sha}, {args.processes} fresh processes per "
        f"side x {args.rounds} interleaved rounds, pinned to cores {sorted(args.cores)}; "
        "new/base time per step (> 1: slower), median and min–max over processes; A/A: the new "
        "code against itself, the noise floor.\n\n"
        f"{table(rows)}\n\nVerdict: **{verdict}**.\n\n"
        f"Machine: {record['machine']['platform']}, nproc {record['machine']['nproc']}; "
        f"versions {record['versions']}; {record['date']}.\n\n"
        f"Reproduce: `{record['command']}`\n"
    )
    print(text)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "before_after.md").write_text(text)
    (RESULTS / "before_after.json").write_text(json.dumps(record, indent=1) + "\n")
    print(f"written: {RESULTS}/before_after.md, .json")


if __name__ == "__main__":
    main()
