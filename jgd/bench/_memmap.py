"""``jgd bench stream``: ``fit(stream=True)`` on a float32 memmap larger than a GPU's or a laptop's
memory budget: peak anonymous memory, and throughput against the in-memory run on a subset.

The data is one file of ``rows x 1,025`` float32 (1,024 features and the label, 1.2 GB at
300,000 rows), trained for 200 steps of batch 256 by the seeds' MLP (1024-128-10). Each
measurement runs in a fresh process that samples its ``RssAnon`` (``/proc/self/status``) every
5 ms: the memmap's file pages, which the kernel caches and can drop, are not anonymous memory;
what jgd copies (blocks of examples, the device's copies) is.
"""

from __future__ import annotations

import json
import pathlib
import sys
import tempfile
import threading
import time
from typing import Any

import numpy as np

from jgd.bench import _harness as hn
from jgd.bench._worker import run_in_fresh_process

FEATURES = 1024


def _rss_anon_mb() -> float:
    text = pathlib.Path("/proc/self/status").read_text()
    return int(text.split("RssAnon:")[1].split()[0]) / 1024


class _Peak:
    """The highest RssAnon seen by a thread sampling every 5 ms."""

    def __init__(self):
        self.peak, self.running = _rss_anon_mb(), True
        self.thread = threading.Thread(target=self._watch, daemon=True)
        self.thread.start()

    def _watch(self):
        while self.running:
            self.peak = max(self.peak, _rss_anon_mb())
            time.sleep(0.005)

    def stop(self) -> float:
        self.running = False
        self.thread.join()
        return max(self.peak, _rss_anon_mb())


def measure(path: str, rows: int, steps: int, batch: int, in_memory: bool) -> dict[str, Any]:
    """Trains on the file at ``path`` (streamed, or its first rows in memory) in this process."""
    import jax.numpy as jnp
    import optax

    import jgd

    before = _rss_anon_mb()
    table = np.memmap(path, np.float32, "r", shape=(rows, FEATURES + 1))
    X, y = table[:, :FEATURES], table[:, FEATURES]
    if in_memory:
        X, y = np.array(X), np.array(y)
    mlp = jgd.problems.mlp("synthetic", width=FEATURES, examples=1)

    def loss(params, batch):
        features, labels = batch
        return mlp.loss(params, (features, labels.astype(jnp.int32)))

    order = np.random.default_rng(0).integers(0, rows, size=(steps, batch))
    peak = _Peak()
    kw = dict(optimizer=optax.sgd, learning_rate=0.01, order=order, stream=not in_memory)
    jgd.fit(loss, mlp.params, (X, y), **kw)  # compiles
    result = jgd.fit(loss, mlp.params, (X, y), **kw)
    return {
        "rows": rows,
        "in_memory": in_memory,
        "steps_per_second": steps / result.run_time,
        "peak_rss_anon_mb": peak.stop(),
        "rss_anon_before_mb": before,
        "final_loss": float(result.losses[-1]),
    }


def _write(path: pathlib.Path, rows: int) -> None:
    """``rows`` random examples (features in [0, 1), labels 0-9) written 10,000 rows at a time."""
    rng = np.random.default_rng(0)
    with open(path, "wb") as f:
        for start in range(0, rows, 10_000):
            n = min(10_000, rows - start)
            block = rng.random((n, FEATURES + 1), dtype=np.float32)
            block[:, FEATURES] = rng.integers(0, 10, n)
            f.write(block.tobytes())


def run(quick: bool, out: str, tiny: bool = False) -> dict[str, Any]:
    rows = 2_000 if tiny else 60_000 if quick else 300_000
    subset = min(rows, 30_000)
    steps, batch = (20, 64) if tiny else (200, 256)
    results = []
    with tempfile.TemporaryDirectory() as folder:
        path = pathlib.Path(folder) / "examples.f32"
        _write(path, rows)
        size_gb = path.stat().st_size / 1e9
        hn.say(f"  wrote {rows:,} x {FEATURES + 1} float32: {size_gb:.2f} GB")
        runs = [(rows, False)] if tiny else [(rows, False), (subset, False), (subset, True)]
        for n, in_memory in runs:
            job = {"path": str(path), "rows": n, "steps": steps, "batch": batch}
            r = run_in_fresh_process({**job, "in_memory": in_memory}, module=__name__)
            results.append(r)
            hn.say(f"  {n:,} rows, {'in memory' if in_memory else 'streamed'}: {r}")
    table = hn.markdown(
        ["rows", "data", "run", "steps/s", "peak RssAnon (MB)", "RssAnon before (MB)"],
        [
            [
                f"{r['rows']:,}",
                f"{r['rows'] * (FEATURES + 1) * 4 / 1e9:.2f} GB",
                "in memory" if r["in_memory"] else "stream=True",
                f"{r['steps_per_second']:,.0f}",
                f"{r['peak_rss_anon_mb']:,.0f}",
                f"{r['rss_anon_before_mb']:,.0f}",
            ]
            for r in results
        ],
    )
    text = (
        f"fit of the seeds' MLP ({FEATURES}-128-10), {steps} steps of batch {batch} over a float32 "
        "memmap, each run in a fresh process (compile run first, then the timed one).\n\n" + table
    )
    hn.say(text)
    files = hn.write(out, "stream", {"quick": quick, "rows": results}, text, [_figure(results)])
    hn.say("written:", ", ".join(str(f) for f in files))
    return {"quick": quick, "rows": results}


def _figure(results):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 4), layout="constrained")
    names = [
        f"{r['rows']:,} rows\n{'in memory' if r['in_memory'] else 'stream=True'}" for r in results
    ]
    a1.bar(names, [r["peak_rss_anon_mb"] for r in results])
    a1.set(ylabel="peak RssAnon (MB)", title="Anonymous memory of the process")
    a2.bar(names, [r["steps_per_second"] for r in results])
    a2.set(ylabel="steps per second", title="Throughput")
    return fig


if __name__ == "__main__":
    print(json.dumps(measure(**json.loads(sys.argv[1]))))
