"""The benchmark harness: every benchmark runs (at its tiny size) and writes well-formed results.

No timing is asserted here; speed claims live in benchmarks/README.md.
"""

import json
import sys

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
        assert set(jgd.MODES) <= modes
        assert set(results["slopes"]) == set(jgd.MODES)
        assert all(r["cost_in_forward_passes"] > 0 for r in results["gradient_costs"])
        # the FLOP slopes are deterministic (XLA's count): theory within 0.15 even at tiny sizes
        for mode, s in results["slopes"].items():
            assert abs(s["flops"] - s["theory"]) < 0.15, (mode, s)
        if jgd.problems is not None and _has_torch():
            assert {"torch.func.grad", "torch.func.jvp forward gradient"} <= modes
            assert {"torch jacfwd", "torch jacrev"} <= set(results["jacobian"][0])
    if name == "fwdgrad":
        kinds = {r["gradient"] for r in results["step_costs"]}
        assert kinds == {"reverse", *(f"forward_gradient ({k})" for k in jgd.TANGENTS)}
    payload = json.loads((tmp_path / f"{name}.json").read_text())
    assert payload["benchmark"] == name
    assert {"date", "jax", "cpu_count", "platform"} <= set(payload["machine"])
    table = (tmp_path / f"{name}.md").read_text()
    assert table.startswith(f"# jgd bench {name}") and "|---|" in table
    pngs = sorted(tmp_path.glob(f"{name}_*.png"))
    assert pngs and all(p.read_bytes()[:4] == b"\x89PNG" for p in pngs)


def _has_torch():
    import importlib.util

    return importlib.util.find_spec("torch") is not None


def test_bench_ad_takes_a_users_function(tmp_path):
    source = tmp_path / "mine.py"
    source.write_text(
        "import jax.numpy as jnp\n\ndef f(x):\n    return jnp.tanh(jnp.outer(x, x)).ravel()\n"
    )
    out = tmp_path / "out"
    code = cli.main(
        ["bench", "ad", "--function", f"{source}:f", "--input-shape", "6", "--out", str(out)]
    )
    assert code == 0
    payload = json.loads((out / "ad_function.json").read_text())
    assert payload["what"] == "Jacobian of f: R^6 -> R^36"
    assert {r["mode"] for r in payload["rows"]} == {"forward", "reverse"}
    assert "is the cheapest here" in payload["verdict"]


@pytest.mark.parametrize(
    "argv, match",
    [
        (["bench", "ad", "--function", "no_such_module:f", "--input-shape", "3"], "cannot import"),
        (["bench", "ad", "--function", "jgd:nothing", "--input-shape", "3"], "has no function"),
        (["bench", "ad", "--function", "jgd:fit"], "needs --input-shape"),
        (["bench", "ad", "--function", "f", "--input-shape", "3"], "MODULE:NAME"),
        (["bench", "sweep", "--function", "a:b"], "go with ad"),
        (["bench", "ad", "--input-shape", "3"], "needs --function"),
        (["bench", "ad", "--function", "a:b", "--input-shape", "3,x"], "not an integer"),
    ],
)
def test_bench_ad_function_misuse_is_one_line_and_exit_2(argv, match, capsys, tmp_path):
    assert cli.main([*argv, "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and __import__("re").search(match, err), err


_USER_FUNCTIONS = {
    "raises": (
        'raise RuntimeError("boom")\n',
        r"cannot import .*RuntimeError: boom \(.*raises.py:1\)",
    ),
    "syntax": ("def f(x:\n", r"cannot import .*SyntaxError: .*syntax.py:1"),
    "exits": ("import sys\nsys.exit(3)\n", r"cannot import .*SystemExit: 3"),
    "arity": (
        "import jax.numpy as jnp\ndef f(x, y):\n    return jnp.sum(x)\n",
        r"calling it on one float32 array of shape \(3,\) raised TypeError: .*missing",
    ),
    "string": ('def f(x):\n    return "hello"\n', r"raised TypeError: .*str"),
    "empty": ("def f(x):\n    return {}\n", r"returned dict with no arrays; it must return"),
    "ints": (
        "import jax.numpy as jnp\ndef f(x):\n    return jnp.round(x).astype(int)\n",
        r"returned int32 array; it must return an array of floats",
    ),
    "numpy": (
        "import numpy as np\ndef f(x):\n    return np.sum(np.asarray(x) ** 2)\n",
        r"converts its input to a NumPy array; .*jax.numpy",
    ),
}


@pytest.mark.parametrize("name", sorted(_USER_FUNCTIONS))
def test_bench_ad_a_broken_user_function_is_one_line_and_exit_2(name, tmp_path, capsys):
    source, match = _USER_FUNCTIONS[name]
    path = tmp_path / f"{name}.py"
    path.write_text(source)
    argv = ["bench", "ad", "--function", f"{path}:f", "--input-shape", "3"]
    code = cli.main([*argv, "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert __import__("re").search(match, err), err


def test_bench_ad_a_shape_that_exhausts_memory_is_refused_before_running(tmp_path, capsys):
    path = tmp_path / "big.py"
    path.write_text("import jax.numpy as jnp\ndef f(x):\n    return jnp.tile(x, 100000)\n")
    for shape, match in [
        ("100000,100000,1000", r"--input-shape 100000,100000,1000: 10,000,000,000,000 float32"),
        ("100000", r"--input-shape 100000: the Jacobian R\^100000 -> R\^10000000000 holds"),
    ]:
        argv = ["bench", "ad", "--function", f"{path}:f", "--input-shape", shape]
        assert cli.main([*argv, "--out", str(tmp_path / "out")]) == 2
        err = capsys.readouterr().err
        assert len(err.strip().splitlines()) == 1 and __import__("re").search(match, err), err


def test_bench_ad_a_file_named_like_a_standard_module_does_not_replace_it(tmp_path, capsys):
    # json.py must not become `json` for the rest of the run: the results are written with json.
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "json.py").write_text("import jax.numpy as jnp\ndef f(x):\n    return x**2\n")
    out = tmp_path / "out"
    argv = ["bench", "ad", "--function", f"{folder / 'json.py'}:f", "--input-shape", "4"]
    assert cli.main([*argv, "--out", str(out)]) == 0, capsys.readouterr().err
    assert sys.modules["json"] is json and hasattr(json, "JSONEncoder")
    assert json.loads((out / "ad_function.json").read_text())["what"] == "Jacobian of f: R^4 -> R^4"


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
    assert np.isfinite(_harness.matmul_gflops(128, repeats=2))


def test_cli_bench_bad_name_exits_2(capsys):
    assert cli.main(["bench", "nope"]) == 2
    assert "invalid choice" in capsys.readouterr().err
