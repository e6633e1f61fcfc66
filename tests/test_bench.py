"""The benchmark harness: every benchmark runs (at its tiny size) and writes well-formed results.

No timing is asserted here; speed claims live in benchmarks/README.md.
"""

import json

import jax.numpy as jnp
import numpy as np
import pytest

import jgd
from jgd import bench, cli
from jgd.bench import _harness


@pytest.mark.parametrize("name", sorted(bench.BENCHMARKS))
def test_each_benchmark_writes_json_markdown_and_plots(name, tmp_path):
    if name == "train":
        pytest.importorskip("torch")
    results = bench.run(name, out=str(tmp_path), tiny=True)
    if name == "ad":
        modes = {r["mode"] for r in results["gradient_costs"]}
        assert modes == {"reverse", "forward", "forward_gradient", "fd_forward", "fd_central"}
        assert set(results["slopes"]) == modes
        assert all(r["cost_in_forward_passes"] > 0 for r in results["gradient_costs"])
    payload = json.loads((tmp_path / f"{name}.json").read_text())
    assert payload["benchmark"] == name
    assert {"date", "jax", "cpu_count", "platform"} <= set(payload["machine"])
    table = (tmp_path / f"{name}.md").read_text()
    assert table.startswith(f"# jgd bench {name}") and "|---|" in table
    pngs = sorted(tmp_path.glob(f"{name}_*.png"))
    assert pngs and all(p.read_bytes()[:4] == b"\x89PNG" for p in pngs)


def test_timeit_blocks_and_reports_a_median():
    calls = []

    def fn():
        calls.append(1)
        return jnp.ones(3) * 2

    t = jgd.timing.timeit(fn, repeats=4, warmup=2)
    assert len(calls) == 6 and t.min <= t.median <= t.max and t.repeats == 4


def test_interleaved_takes_turns_and_drops_the_warm_up_rounds():
    calls = []
    runs = {name: (lambda name=name: calls.append(name) or len(calls)) for name in "ab"}
    t = jgd.timing.interleaved(runs, rounds=2, warmup=1)
    assert calls == list("ababab")
    assert t["a"].samples == (3.0, 5.0) and t["b"].samples == (4.0, 6.0)


def test_slope_and_markdown():
    assert abs(_harness.slope([1, 10, 100], [3, 30, 300]) - 1) < 1e-9
    table = _harness.markdown(["a", "b"], [[1, 2]])
    assert table.splitlines() == ["| a | b |", "|---|---|", "| 1 | 2 |"]
    assert _harness.peak_rss_mb() is None or _harness.peak_rss_mb() > 0
    assert np.isfinite(_harness.matmul_gflops(128, repeats=2))


def test_cli_bench_bad_name_exits_2(capsys):
    assert cli.main(["bench", "nope"]) == 2
    assert "invalid choice" in capsys.readouterr().err
