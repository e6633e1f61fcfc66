"""Every script in examples/ runs and prints what it promises."""

import pathlib
import subprocess
import sys

import pytest

from tests.conftest import optimized_env

EXAMPLES = pathlib.Path(__file__).resolve().parents[1] / "examples"


def run(name, *args, env=None):
    out = subprocess.run(
        [sys.executable, str(EXAMPLES / name), *args],
        capture_output=True, text=True, timeout=300, env=env,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout


def test_jitted_step():
    out = run("jitted_step.py")
    w = float(out.split("w = ")[1].split(",")[0])
    assert abs(w - 2.0) < 0.15


def test_forward_vs_reverse():
    out = run("forward_vs_reverse.py")
    assert "fd_central" in out and "needed 1,151 passes for P = 1,150" in out


def test_replay_pytorch():
    pytest.importorskip("torch")
    out = run("replay_pytorch.py")
    assert float(out.split("PyTorch: ")[1]) < 1e-4


def test_lr_sweep():
    out = run("lr_sweep.py")
    assert "256 runs in one call" in out and "first diverging rate" in out


def test_own_loop():
    out = run("own_loop.py")
    assert "the three runs equal bitwise: True" in out
    assert "step 100: batch loss" in out and "epoch 8: test accuracy" in out
    assert float(out.split("final test accuracy ")[1].split(";")[0]) > 0.9


def test_several_processes():
    out = run("several_processes.py")
    lines = sorted(x for x in out.splitlines() if x.startswith("process "))
    assert len(lines) == 2 and "2 devices, 63 steps" in lines[0]
    assert lines[0].split(": ")[1] == lines[1].split(": ")[1]  # the same run in both


def test_batchnorm_mnist():
    shared = pathlib.Path(__file__).resolve().parents[2] / "shared" / "data" / "mnist"
    out = run("batchnorm_mnist.py", *([str(shared)] if shared.is_dir() else []))
    accuracy = float(out.split("no dropout): ")[1])
    assert accuracy > (0.9 if "MNIST" in out else 0.85), out
    assert "running variance moved from 1" in out


def test_torch_convnet():
    pytest.importorskip("torch")
    # the 8x8 digits: what a user's machine has; its time is running (at -O2: optimized_env)
    out = run("torch_convnet.py", env=optimized_env())
    first10 = float(out.split("first 10 steps ")[1].split(",")[0])
    overall = float(out.split(", all ")[1].split()[0])
    assert first10 <= 1e-4 and overall <= 1e-3, out
    found = __import__("re").search(r"eval mode\): jgd ([0-9.]+), torch ([0-9.]+)", out)
    jgd_acc, torch_acc = float(found[1]), float(found[2])
    assert abs(jgd_acc - torch_acc) <= 0.01 and jgd_acc > 0.8, out
