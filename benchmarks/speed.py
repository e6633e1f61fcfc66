"""Speed everywhere a user touches: fit's fixed cost, recompiles, per-call dispatch, instruments.

Each measurement is judged as ``../shared/SPEED.md`` says (``benchmarks/_paired.py``): fresh
processes pinned to the same cores before jax is imported, contenders interleaved round by
round after a warm-up, a contender's twin beside it (the A/A noise floor), per-process ratios
reported as median [min-max] over processes. The model is the seeds' MLP (784-128-10,
cross-entropy) on 10,000 MNIST-shaped rows.

- ``fixed``: a ``jgd.fit`` call of 1,000 SGD steps against the same steps as a hand-written
  jitted optax ``lax.scan`` (gather inside, compile excluded), B=1 and B=64; the fixed cost in
  ms is the difference of the two medians (data on the device; and NumPy data, whose copy to
  the device each call is in the figure: a NumPy array can change between calls).
- ``recompile``: ``fit`` twice with an equal optimizer built afresh (and a fresh loss closure):
  backend compiles counted with ``jax.monitoring``, and the second call's time.
- ``dispatch``: a loop of one ``jgd.with_data`` step per call against a hand-written
  ``jax.jit`` step with the gather inside: pure against pure, donated against donated.
- ``instruments``: a step between ``sharpness_every`` / ``noise_scale_every`` records against a
  plain step, each the slope between runs of E + 1 and 2E steps (the same two records), on 512
  rows (the probe the records take is all of them: their noise stays under the slope's).
- ``sweep``: end to end, compile included (every cache cleared first), a ``jgd.sweep`` of R
  learning rates, all vmapped and in turn, against a loop of R ``fit`` calls; the MLP and a
  small conv net, R = 4, 8, 16, 64, 1,024 rows, B=32, one epoch; the verdict on what
  ``batch_runs="auto"`` picks.
- ``stream``: ``fit(stream=True)`` from a memmap (in the page cache, and evicted before each
  run) against the same run in memory, B=256, steps per second.

Usage::

    python benchmarks/speed.py NAME [--processes 5] [--rounds 30] [--cores 0,1] [--quick]

Results: ``benchmarks/results/speed_<name>.md`` and ``.json``.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _paired

RESULTS = Path(__file__).resolve().parent / "results"
EXAMPLES = 10_000


def _setup():
    import jax.numpy as jnp
    import numpy as np

    from jgd.bench import _loops

    loss, params = _loops.model()
    rng = np.random.default_rng(0)
    X = rng.normal(size=(EXAMPLES, 784)).astype(np.float32)
    y = rng.integers(0, 10, EXAMPLES).astype(np.int32)
    return loss, params, (X, y), (jnp.asarray(X), jnp.asarray(y)), rng


def _clock(fn):
    import jax

    def once():
        start = time.perf_counter()
        jax.block_until_ready(fn())
        return time.perf_counter() - start

    return once


def hand_scan(loss, tx):
    """The loop written by hand: ``jax.jit`` of a ``lax.scan`` of optax steps, the batch
    gathered inside, the losses returned."""
    import jax
    import optax

    @jax.jit
    def scan(params, data, rows):
        def step(carry, r):
            p, s = carry
            value, g = jax.value_and_grad(loss)(p, jax.tree.map(lambda a: a[r], data))
            u, s = tx.update(g, s, p)
            return (optax.apply_updates(p, u), s), value

        return jax.lax.scan(step, (params, tx.init(params)), rows)

    return scan


CASES = ((1, 1000), (64, 1000))


def fixed_worker(args) -> dict:
    import jax.numpy as jnp
    import optax

    import jgd

    loss, params, host, device, rng = _setup()
    out = {}
    for batch, steps in CASES:
        order = rng.integers(0, EXAMPLES, (steps, batch)).astype("int32")
        rows = jnp.asarray(order)
        scan = hand_scan(loss, optax.sgd(0.01))

        def fit(data, order=order):
            return jgd.fit(
                loss, params, data, optimizer=optax.sgd, learning_rate=0.01, order=order
            ).params

        hand = _clock(lambda scan=scan, rows=rows: scan(params, device, rows))
        out[f"B={batch}"] = _paired.interleaved(
            {
                "jgd.fit": _clock(lambda: fit(device)),
                "hand scan": hand,
                "hand scan (A/A)": hand,
                "jgd.fit, NumPy data": _clock(lambda: fit(host)),
            },
            args.rounds,
        )
    return out


def fixed_report(records: list[dict]) -> tuple[list[str], dict]:
    lines = [
        "| case | hand scan ms | jgd.fit / hand scan | A/A | verdict (<= 1.25) | fixed cost ms "
        "| fixed cost ms, NumPy data |",
        "|---|---|---|---|---|---|---|",
    ]
    record = {}
    for case in records[0]:
        per = [r[case] for r in records]
        ratio = _paired.ratios(per, "jgd.fit", "hand scan")
        aa = _paired.ratios(per, "hand scan (A/A)", "hand scan")
        fixed = [(p["jgd.fit"] - p["hand scan"]) * 1e3 for p in per]
        fixed_np = [(p["jgd.fit, NumPy data"] - p["hand scan"]) * 1e3 for p in per]
        base = statistics.median(p["hand scan"] for p in per) * 1e3
        verdict = _paired.verdict(ratio, aa, 1.25)
        lines.append(
            f"| {case} | {base:.1f} | {_paired.spread(ratio)} | {_paired.spread(aa)} | {verdict} "
            f"| {_ms(fixed)} | {_ms(fixed_np)} |"
        )
        record[case] = {"ratio": ratio, "aa": aa, "fixed_ms": fixed, "fixed_numpy_ms": fixed_np}
    return lines, record


def _ms(values: list[float]) -> str:
    return f"{statistics.median(values):.1f} [{min(values):.1f}-{max(values):.1f}]"


CALLS = 200  # steps per timed loop of one call per step


def hand_step(loss, tx, donate: bool):
    """The step written by hand: ``jax.jit`` of one optax step, the batch gathered inside."""
    import jax
    import optax

    def step(params, opt_state, data, rows):
        value, g = jax.value_and_grad(loss)(params, jax.tree.map(lambda a: a[rows], data))
        u, opt_state = tx.update(g, opt_state, params)
        return optax.apply_updates(params, u), opt_state, value

    return jax.jit(step, donate_argnums=(0, 1) if donate else ())


def hand_state_step(loss, tx, donate: bool):
    """The same hand step over a ``jgd.TrainState`` (its step counter and key carried, a metrics
    dict out): what the state's layout costs, apart from ``with_data``'s own call."""
    import jax
    import optax

    def step(state, data, rows):
        value, g = jax.value_and_grad(loss)(state.params, jax.tree.map(lambda a: a[rows], data))
        u, opt_state = tx.update(g, state.opt_state, state.params)
        new = state._replace(
            params=optax.apply_updates(state.params, u), opt_state=opt_state, step=state.step + 1
        )
        return new, {"loss": value}

    return jax.jit(step, donate_argnums=(0,) if donate else ())


def dispatch_worker(args) -> dict:
    import jax
    import optax

    import jgd

    loss, params, _, device, rng = _setup()
    tx = optax.sgd(0.01)
    out = {}
    for batch in (1, 64):
        rows = [r for r in rng.integers(0, EXAMPLES, (CALLS, batch)).astype("int32")]
        contenders = {}
        for donate in (False, True):
            mine = jgd.with_data(jgd.make_step(loss, tx), device, donate=donate)
            hand = hand_step(loss, tx, donate)

            def ours(mine=mine, rows=rows):
                state = jgd.TrainState.create(jax.tree.map(jax.numpy.copy, params), tx)
                start = time.perf_counter()
                for r in rows:
                    state, _ = mine(state, r)
                jax.block_until_ready(state)
                return time.perf_counter() - start

            def theirs(hand=hand, rows=rows):
                p = jax.tree.map(jax.numpy.copy, params)
                s = tx.init(p)
                start = time.perf_counter()
                for r in rows:
                    p, s, _ = hand(p, s, device, r)
                jax.block_until_ready(p)
                return time.perf_counter() - start

            layout = hand_state_step(loss, tx, donate)

            def same_state(layout=layout, rows=rows):
                state = jgd.TrainState.create(jax.tree.map(jax.numpy.copy, params), tx)
                start = time.perf_counter()
                for r in rows:
                    state, _ = layout(state, device, r)
                jax.block_until_ready(state)
                return time.perf_counter() - start

            tag = ", donated" if donate else ""
            contenders[f"hand jit, TrainState{tag}"] = same_state
            contenders[f"with_data{tag}"] = ours
            contenders[f"hand jit{tag}"] = theirs
            contenders[f"hand jit{tag} (A/A)"] = theirs
        out[f"B={batch}"] = _paired.interleaved(contenders, args.rounds)
    return out


def dispatch_report(records: list[dict]) -> tuple[list[str], dict]:
    lines = [
        "| case | hand jit µs/step | with_data / hand jit | A/A | verdict (<= 1.15) "
        "| with_data / hand jit of a TrainState "
        "| donated: hand µs/step | with_data / hand, donated | A/A | verdict (<= 1.15) "
        "| donated, / hand jit of a TrainState |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    record = {}
    for case in records[0]:
        per = [r[case] for r in records]
        cells = [case]
        for tag in ("", ", donated"):
            ratio = _paired.ratios(per, f"with_data{tag}", f"hand jit{tag}")
            aa = _paired.ratios(per, f"hand jit{tag} (A/A)", f"hand jit{tag}")
            base = statistics.median(p[f"hand jit{tag}"] for p in per) / CALLS * 1e6
            cells += [f"{base:.1f}", _paired.spread(ratio), _paired.spread(aa)]
            cells.append(_paired.verdict(ratio, aa, 1.15))
            layout = _paired.ratios(per, f"with_data{tag}", f"hand jit, TrainState{tag}")
            cells.append(_paired.spread(layout))
            record[f"{case}{tag}"] = {"ratio": ratio, "aa": aa, "vs_train_state": layout}
        lines.append("| " + " | ".join(cells) + " |")
    return lines, record


def recompile_worker(args) -> dict:
    """Each call builds its optimizer (and a loss closure) afresh, as a notebook cell does."""
    import jax
    import optax

    import jgd

    loss, params, _, device, rng = _setup()
    out = {}
    cases = {
        "fit, optax.adam(1e-3)": lambda: jgd.fit(
            lambda p, b: loss(p, b), params, device, optimizer=optax.adam(1e-3),
            batch_size=64, key=0,
        ).params,
        "fit, optax.chain(clip, sgd + cosine schedule)": lambda: jgd.fit(
            lambda p, b: loss(p, b), params, device,
            optimizer=optax.chain(
                optax.clip_by_global_norm(1.0),
                optax.sgd(optax.cosine_decay_schedule(0.1, 156)),
            ),
            batch_size=64, key=0,
        ).params,
        "sweep, optax.adam factory + fresh loss": lambda: jgd.sweep(
            lambda p, b: loss(p, b), params, device, optimizer=optax.adam,
            learning_rate=[1e-3, 3e-3], batch_size=256, key=0,
        ).params,
    }  # fmt: skip
    for name, call in cases.items():
        with jgd.timing.backend_compiles() as counted:
            first = _clock(call)()
        compiled_first = counted["n"]
        seconds = []
        news = []
        for _ in range(args.rounds):
            with jgd.timing.backend_compiles() as counted:
                seconds.append(_clock(call)())
            news.append(counted["n"])
        out[name] = {
            "first_s": first,
            "first_compiles": compiled_first,
            "again_s": statistics.median(seconds),
            "again_compiles_max": max(news),
        }
        jax.clear_caches()  # the next case starts cold too
    del rng
    return out


def recompile_report(records: list[dict]) -> tuple[list[str], dict]:
    lines = [
        "| case | first call s (compiles) | again, built afresh: s | backend compiles again "
        "(max over calls and processes) |",
        "|---|---|---|---|",
    ]
    record = {}
    for case in records[0]:
        per = [r[case] for r in records]
        first = statistics.median(p["first_s"] for p in per)
        again = statistics.median(p["again_s"] for p in per)
        compiles = max(p["again_compiles_max"] for p in per)
        lines.append(
            f"| {case} | {first:.2f} ({per[0]['first_compiles']}) | {again:.3f} | {compiles} |"
        )
        record[case] = per
    return lines, record


SLOPES = {1: 4000, 64: 1000}  # batch size: E, records at steps 0 and E of runs of E + 1 and 2E
PROBED = 512  # rows: the probe is all of them, so that a record's noise stays under the slope's


def instruments_worker(args) -> dict:
    """Runs of E + 1 and 2E steps record at the same steps (0 and E): the slope between their
    ``run_time``s is a step between records; the same slope without the instrument is a plain
    step (and its twin, the A/A pair)."""
    import optax

    import jgd

    loss, params, _, device, rng = _setup()
    device = tuple(a[:PROBED] for a in device)
    out = {}
    for batch, every in SLOPES.items():
        order = rng.integers(0, PROBED, (2 * every, batch)).astype("int32")

        def runner(n, extra, order=order):
            def once():
                return jgd.fit(
                    loss, params, device, optimizer=optax.sgd, learning_rate=0.01,
                    order=order[:n], **extra,
                ).run_time  # fmt: skip

            return once

        contenders = {}
        for name, extra in (
            ("plain", {}),
            ("plain (A/A)", {}),
            ("sharpness_every", {"sharpness_every": every}),
            ("noise_scale_every", {"noise_scale_every": every}),
        ):
            contenders[(name, "short")] = runner(every + 1, extra)
            contenders[(name, "long")] = runner(2 * every, extra)
        keyed = {f"{k[0]}|{k[1]}": v for k, v in contenders.items()}
        t = _paired.interleaved(keyed, args.rounds)
        out[f"B={batch}"] = {
            name: (t[f"{name}|long"] - t[f"{name}|short"]) / (every - 1)
            for name in ("plain", "plain (A/A)", "sharpness_every", "noise_scale_every")
        }
    return out


def instruments_report(records: list[dict]) -> tuple[list[str], dict]:
    lines = [
        "| case | plain step µs | instrument | between records / plain | A/A | verdict (<= 1.05) |",
        "|---|---|---|---|---|---|",
    ]
    record = {}
    for case in records[0]:
        per = [r[case] for r in records]
        aa = _paired.ratios(per, "plain (A/A)", "plain")
        base = statistics.median(p["plain"] for p in per) * 1e6
        for name in ("sharpness_every", "noise_scale_every"):
            ratio = _paired.ratios(per, name, "plain")
            lines.append(
                f"| {case} | {base:.1f} | {name} | {_paired.spread(ratio)} | "
                f"{_paired.spread(aa)} | {_paired.verdict(ratio, aa, 1.05)} |"
            )
            record[f"{case} {name}"] = {"ratio": ratio, "aa": aa}
    return lines, record


def conv_model():
    """A small conv net: 3x3 conv (8 channels, SAME) -> ReLU -> 2x2 mean pool -> dense 10."""
    import jax
    import numpy as np
    import optax

    rng = np.random.default_rng(1)
    params = {
        "k": (rng.normal(size=(3, 3, 1, 8)) / 3).astype("float32"),
        "b": np.zeros(8, "float32"),
        "w": (rng.normal(size=(14 * 14 * 8, 10)) / 40).astype("float32"),
        "c": np.zeros(10, "float32"),
    }

    def loss(p, batch):
        x, y = batch
        x = x.reshape(-1, 28, 28, 1)
        h = jax.lax.conv_general_dilated(
            x, p["k"], (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC")
        )
        h = jax.nn.relu(h + p["b"])
        h = h.reshape(-1, 14, 2, 14, 2, 8).mean((2, 4)).reshape(x.shape[0], -1)
        return optax.softmax_cross_entropy_with_integer_labels(h @ p["w"] + p["c"], y).mean()

    return loss, params


SWEEP_RUNS = (4, 8, 16, 64)
SWEEP_EXAMPLES = 1024


def _cold():
    """Every compiled program forgotten: the next call compiles as in a fresh process."""
    import jax

    from jgd import _compile

    _compile._CACHE.clear()
    _compile._BY_DIGEST.clear()
    jax.clear_caches()


def sweep_worker(args) -> dict:
    """End to end, compile included: a sweep of R rates against a loop of R fits."""
    import jax
    import numpy as np
    import optax

    import jgd
    from jgd.bench import _loops

    rng = np.random.default_rng(0)
    X = rng.normal(size=(SWEEP_EXAMPLES, 784)).astype("float32")
    y = rng.integers(0, 10, SWEEP_EXAMPLES).astype("int32")
    models = {"MLP 784-128-10": _loops.model(), "conv 3x3x8 + dense": conv_model()}
    out = {}
    for model, (loss, params) in models.items():
        for runs in SWEEP_RUNS:
            rates = list(np.geomspace(1e-3, 1e-1, runs))
            kw = {"optimizer": optax.sgd, "batch_size": 32, "key": 0}

            def swept(together, rates=rates, loss=loss, params=params, kw=kw):
                def once():
                    _cold()
                    start = time.perf_counter()
                    r = jgd.sweep(loss, params, (X, y), learning_rate=rates,
                                  batch_runs=together, **kw)  # fmt: skip
                    jax.block_until_ready(r.params)
                    return time.perf_counter() - start

                return once

            def loop(rates=rates, loss=loss, params=params, kw=kw):
                _cold()
                start = time.perf_counter()
                for rate in rates:
                    r = jgd.fit(loss, params, (X, y), learning_rate=rate, **kw)
                jax.block_until_ready(r.params)
                return time.perf_counter() - start

            contenders = {
                "sweep, all vmapped": swept("all"),
                "sweep, in turn": swept(1),
                "loop of fits": loop,
                "loop of fits (A/A)": loop,
            }
            times = _paired.interleaved(contenders, args.rounds)
            times["auto"] = _auto_choice(loss, params, (X, y), runs)
            out[f"{model}, R={runs}"] = times
    return out


def _auto_choice(loss, params, data, runs) -> str:
    """What ``batch_runs="auto"`` picks for this sweep."""
    import optax

    from jgd import _batch_runs, _config
    from jgd._options import RunOptions

    config = _config.configure(
        loss, params, data, optimizer=optax.sgd, learning_rate=0.1, key=0, mesh=None,
        options=RunOptions(batch_size=32),
    )  # fmt: skip
    return "in turn" if _batch_runs.together("auto", config, runs, ()) == 1 else "all vmapped"


def sweep_report(records: list[dict]) -> tuple[list[str], dict]:
    lines = [
        "| case | loop of fits s | all vmapped / loop | in turn / loop | A/A | "
        "auto picks | verdict of auto (<= 1.05) |",
        "|---|---|---|---|---|---|---|",
    ]
    record = {}
    for case in records[0]:
        per = [r[case] for r in records]
        aa = _paired.ratios(per, "loop of fits (A/A)", "loop of fits")
        vm = _paired.ratios(per, "sweep, all vmapped", "loop of fits")
        turn = _paired.ratios(per, "sweep, in turn", "loop of fits")
        auto = per[0]["auto"]
        verdict = _paired.verdict(turn if auto == "in turn" else vm, aa, 1.05)
        base = statistics.median(p["loop of fits"] for p in per)
        lines.append(
            f"| {case} | {base:.2f} | {_paired.spread(vm)} | {_paired.spread(turn)} | "
            f"{_paired.spread(aa)} | {auto} | {verdict} |"
        )
        record[case] = {"vmapped": vm, "in_turn": turn, "aa": aa}
    return lines, record


STREAM_EXAMPLES = 50_000  # 157 MB of float32 rows: a memmap the page cache holds here
STREAM_EPOCHS = 2


def _evict(path) -> None:
    """Drops a file's pages from the page cache (``POSIX_FADV_DONTNEED``: no root needed)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def stream_worker(args) -> dict:
    """Steps per second of ``fit(stream=True)`` from a memmap against the same run in memory,
    at B=256 (``run_time``: compile and the in-memory data's one copy to the device apart)."""
    import tempfile

    import numpy as np
    import optax

    import jgd
    from jgd.bench import _loops

    loss, params = _loops.model()
    rng = np.random.default_rng(0)
    folder = tempfile.mkdtemp(prefix="jgd-stream-")
    paths = [os.path.join(folder, name) for name in ("x.f32", "y.i32")]
    X = np.memmap(paths[0], "float32", "w+", shape=(STREAM_EXAMPLES, 784))
    y = np.memmap(paths[1], "int32", "w+", shape=(STREAM_EXAMPLES,))
    for start in range(0, STREAM_EXAMPLES, 10_000):
        X[start : start + 10_000] = rng.normal(size=(10_000, 784))
        y[start : start + 10_000] = rng.integers(0, 10, 10_000)
    X.flush()
    y.flush()
    in_memory = (np.array(X), np.array(y))
    kw = {"optimizer": optax.sgd, "learning_rate": 0.01, "batch_size": 256, "key": 0}
    kw["epochs"] = STREAM_EPOCHS

    def run(data, stream, cold=False):
        def once():
            if cold:
                for path in paths:
                    _evict(path)
            r = jgd.fit(loss, params, data, stream=stream, **kw)
            return r.run_time / r.steps

        return once

    try:
        times = _paired.interleaved(
            {
                "in memory": run(in_memory, False),
                "in memory (A/A)": run(in_memory, False),
                "stream, page cache": run((X, y), True),
                "stream, evicted": run((X, y), True, cold=True),
            },
            args.rounds,
        )
    finally:
        for path in paths:
            os.remove(path)
        os.rmdir(folder)
    return {"B=256": times}


def stream_report(records: list[dict]) -> tuple[list[str], dict]:
    lines = [
        "| case | in memory steps/s | page cache / in memory (throughput) | A/A | verdict (>= 0.8) "
        "| evicted / in memory |",
        "|---|---|---|---|---|---|",
    ]
    record = {}
    for case in records[0]:
        per = [r[case] for r in records]
        warm = _paired.ratios(per, "in memory", "stream, page cache")  # time ratio inverted
        cold = _paired.ratios(per, "in memory", "stream, evicted")
        aa = _paired.ratios(per, "in memory", "in memory (A/A)")
        rate = 1 / statistics.median(p["in memory"] for p in per)
        ok = "holds" if statistics.median(warm) >= 0.8 else "missed"
        lines.append(
            f"| {case} | {rate:.0f} | {_paired.spread(warm)} | {_paired.spread(aa)} | {ok} "
            f"| {_paired.spread(cold)} |"
        )
        record[case] = {"page_cache": warm, "evicted": cold, "aa": aa}
    return lines, record


MEASURES = {
    "fixed": (fixed_worker, fixed_report),
    "stream": (stream_worker, stream_report),
    "dispatch": (dispatch_worker, dispatch_report),
    "recompile": (recompile_worker, recompile_report),
    "instruments": (instruments_worker, instruments_report),
    "sweep": (sweep_worker, sweep_report),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("name", choices=sorted(MEASURES))
    parser.add_argument("--processes", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--cores", default=",".join(map(str, sorted(os.sched_getaffinity(0)))))
    parser.add_argument("--quick", action="store_true", help="2 processes x 5 rounds")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    cores = [int(c) for c in args.cores.split(",")]
    if args.quick:
        args.processes, args.rounds = 2, 5
    worker, report = MEASURES[args.name]
    if args.worker:
        _paired.pin(cores)
        print(json.dumps(worker(args)))
        return
    argv = [args.name, "--rounds", str(args.rounds), "--cores", args.cores]
    records = _paired.spawn(__file__, argv, args.processes)
    lines, record = report(records)
    head = [
        f"# benchmarks/speed.py {args.name}",
        "",
        f"{datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC, {platform.machine()}, "
        f"{os.cpu_count()} CPUs, pinned to cores {cores}; {args.processes} processes x "
        f"{args.rounds} rounds; {_paired.versions()}.",
        f"Reproduce: `python benchmarks/speed.py {args.name} --processes {args.processes} "
        f"--rounds {args.rounds}`. Ratios: median [min-max] over processes.",
        "",
    ]
    text = "\n".join(head + lines) + "\n"
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"speed_{args.name}.md").write_text(text)
    payload = {"args": vars(args), "records": records, "summary": record}
    (RESULTS / f"speed_{args.name}.json").write_text(json.dumps(payload, indent=1))
    print(text)


if __name__ == "__main__":
    main()
