"""The train and compare-torch commands: happy paths and bad input, one line and exit code 2."""

import subprocess
import sys

import numpy as np
import pytest

from jgd import cli


def test_train_writes_a_model_and_checkpoints(tiny_mnist, tmp_path, capsys):
    out = tmp_path / "run"
    code = cli.main(
        [
            "train",
            "--data-dir",
            str(tiny_mnist),
            "--epochs",
            "3",
            "--out",
            str(out),
            "--hidden",
            "32",
            "--no-progress",
        ]
    )
    assert code == 0
    text = capsys.readouterr().out
    assert "epoch 3/3" in text and "test accuracy" in text
    accuracy = float(text.rsplit("test accuracy ", 1)[1].split()[0])
    assert accuracy > 0.9
    weights = np.load(out / "model.npz")
    assert weights["fc1.weight"].shape == (32, 784) and weights["fc2.bias"].shape == (10,)
    assert any((out / "checkpoints").iterdir())


def test_train_resumes_from_its_checkpoints(tiny_mnist, tmp_path, capsys):
    args = [
        "train",
        "--data-dir",
        str(tiny_mnist),
        "--epochs",
        "2",
        "--out",
        str(tmp_path / "r"),
        "--hidden",
        "16",
        "--no-progress",
    ]
    assert cli.main(args) == 0
    first = np.load(tmp_path / "r" / "model.npz")["fc1.weight"]
    capsys.readouterr()
    assert cli.main(args) == 0  # everything is checkpointed: nothing left to run
    np.testing.assert_array_equal(np.load(tmp_path / "r" / "model.npz")["fc1.weight"], first)


def test_every_section_of_the_tour_can_be_chosen():
    from jgd import tour

    assert cli.TOUR_SECTIONS == len(tour.SECTIONS) == max(tour.SECTIONS)
    args = cli.parser().parse_args(["tour", "--section", "10", "--section", "11"])
    assert args.section == [10, 11]


@pytest.mark.parametrize(
    "argv,match",
    [
        (["train", "--data-dir", "/no/such/dir"], "does not exist"),
        (["train", "--epochs", "0"], "--epochs: 0 is not >= 1"),
        (["train", "--lr", "-1"], "--lr"),
        (["train", "--lr", "nan"], "--lr"),
        (["train", "--momentum", "1.5"], "--momentum"),
        (["compare-torch", "--data-dir", "/no/such/dir"], "does not exist"),
        (["compare-torch", "--steps", "abc"], "--steps"),
        (["tour", "--section", "12"], "--section"),
    ],
)
def test_bad_flags_exit_2_with_one_line(argv, match, capsys):
    assert cli.main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert match in err and "\n" not in err and "Traceback" not in err


def test_train_on_a_folder_without_mnist_names_the_files(tmp_path, capsys):
    assert cli.main(["train", "--data-dir", str(tmp_path), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert "train-images-idx3-ubyte" in err and "\n" not in err


def test_train_without_data_or_cache(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("JGD_DATA", str(tmp_path / "empty"))
    assert cli.main(["train", "--out", str(tmp_path / "o")]) == 2
    assert "--data-dir DIR" in capsys.readouterr().err


def test_compare_torch_on_digits(capsys):
    pytest.importorskip("torch")
    assert cli.main(["compare-torch", "--steps", "60", "--sample", "4"]) == 0
    out = capsys.readouterr().out
    assert (
        "scikit-learn 8x8 digits" in out
        and "jgd / PyTorch speed: " in out
        and " threads, XLA " in out
    )
    rel = float(out.split("max relative diff ")[1].split()[0])
    assert rel < 1e-4


def test_compare_torch_of_a_diverged_run_fails_saying_so(capsys):
    pytest.importorskip("torch")
    assert cli.main(["compare-torch", "--steps", "20", "--sample", "2", "--lr", "1e38"]) == 1
    err = capsys.readouterr().err.strip()
    assert "the losses are not finite (jgd from step" in err and "lower --lr" in err
    assert "\n" not in err


@pytest.mark.parametrize(
    "optimizer,scheduler", [("adam", "step"), ("rmsprop", "cosine"), ("adagrad", "inverse-time")]
)
def test_compare_torch_any_optimizer_and_scheduler(capsys, optimizer, scheduler):
    pytest.importorskip("torch")
    argv = ["compare-torch", "--optimizer", optimizer, "--scheduler", scheduler, "--steps", "40"]
    assert cli.main([*argv, "--lr", "0.001", "--sample", "2"]) == 0
    out = capsys.readouterr().out
    rel = float(out.split("max relative diff ")[1].split()[0])
    assert rel < 1e-4 and "jgd / PyTorch speed: " in out and " threads, XLA " in out


def test_compare_torch_refuses_options_that_do_not_apply(capsys):
    pytest.importorskip("torch")
    assert cli.main(["compare-torch", "--optimizer", "adam", "--momentum", "0.9"]) == 2
    err = capsys.readouterr().err.strip()
    assert "momentum=0.9" in err and "optimizer='adam'" in err and "\n" not in err
    assert cli.main(["compare-torch", "--scheduler", "plateau"]) == 2


def test_console_script_help():
    out = subprocess.run(
        [sys.executable, "-m", "jgd.cli", "--help"], capture_output=True, text=True
    )
    assert out.returncode == 0 and "tour" in out.stdout and "compare-torch" in out.stdout


MY_NET = """
import torch
from torch import nn
import torch.nn.functional as F

class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.out = nn.Linear(8 * 2 * 2, 10)  # declared first
        self.conv = nn.Conv2d(1, 8, 3, padding=1)
        self.bn = nn.BatchNorm2d(8)

    def forward(self, x):
        x = x.view(x.size(0), 1, 8, 8)
        x = F.max_pool2d(F.relu(self.bn(self.conv(x))), 4)
        return self.out(torch.flatten(x, 1))

def make():
    return Net()

def regress():
    return nn.Sequential(nn.Linear(64, 16), nn.Tanh(), nn.LayerNorm(16), nn.Linear(16, 1))

def broken():
    raise RuntimeError("no weights here")

def not_a_module():
    return 3
"""


def test_compare_torch_on_a_users_model_and_data(tmp_path, capsys):
    pytest.importorskip("torch")
    (tmp_path / "mynet.py").write_text(MY_NET)
    model = f"{tmp_path / 'mynet.py'}:make"
    argv = ["compare-torch", "--model", model, "--steps", "40", "--optimizer", "adam"]
    assert cli.main([*argv, "--lr", "0.001", "--scheduler", "step", "--sample", "2"]) == 0
    out = capsys.readouterr().out
    assert float(out.split("max relative diff ")[1].split()[0]) < 1e-4, out
    found = __import__("re").search(r"test accuracy: jgd ([0-9.]+), PyTorch ([0-9.]+)", out)
    jgd_acc, torch_acc = float(found[1]), float(found[2])
    assert jgd_acc == pytest.approx(torch_acc, abs=0.01)
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 64)).astype("f4")
    np.savez(tmp_path / "reg.npz", X=X, y=2 * X[:, :1])
    argv = ["compare-torch", "--model", f"{tmp_path / 'mynet.py'}:regress", "--loss", "mse"]
    assert cli.main([*argv, "--data", str(tmp_path / "reg.npz"), "--steps", "30"]) == 0
    out = capsys.readouterr().out
    assert float(out.split("max relative diff ")[1].split()[0]) < 1e-4, out
    assert "test accuracy: none (a regression loss)" in out


@pytest.mark.parametrize(
    "extra, match",
    [
        (["--model", "{d}/mynet.py:broken"], r"calling it raised RuntimeError: no weights here"),
        (["--model", "{d}/mynet.py:not_a_module"], r"returned int; FACTORY\(\) must return"),
        (["--model", "{d}/mynet.py:nothing"], r"mynet.py has no function nothing"),
        (["--model", "{d}/mynet.py:make", "--data", "{d}/noy.npz"], r"has no array 'y'"),
        (["--data", "{d}/noy.npz"], r"--data and --loss go with --model"),
    ],
)
def test_compare_torch_model_misuse_is_one_line(tmp_path, capsys, extra, match):
    pytest.importorskip("torch")
    (tmp_path / "mynet.py").write_text(MY_NET)
    np.savez(tmp_path / "noy.npz", X=np.zeros((4, 64), "f4"))
    argv = ["compare-torch", "--steps", "5", *[a.format(d=tmp_path) for a in extra]]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and __import__("re").search(match, err), err


def test_every_flag_explains_itself_with_its_default():
    p = cli.parser()
    subparsers = next(
        a for a in p._actions if isinstance(a, __import__("argparse")._SubParsersAction)
    )
    for name, sub in subparsers.choices.items():
        for action in sub._actions:
            if action.dest == "help":
                continue
            assert action.help, f"jgd {name} {action.option_strings or action.dest}: no help"
            default = action.default
            if default not in (None, False) and action.option_strings:
                shown = str(default).removeprefix("./")
                assert shown in action.help or f"./{shown}" in action.help, (name, action.help)


def test_version(capsys):
    with pytest.raises(SystemExit) as done:
        cli.main(["--version"])
    assert done.value.code == 0 and capsys.readouterr().out.startswith("jgd ")


def _options():
    from jgd.apps.arguments import parser

    sub = next(a for a in parser()._actions if a.dest == "command")
    for command, p in sub.choices.items():
        for action in p._actions:
            if action.dest != "help":
                yield command, action


@pytest.mark.parametrize(("command", "action"), list(_options()), ids=lambda x: str(x)[:40])
def test_every_flag_says_what_it_does_its_default_and_range(command, action):
    text = action.help or ""
    flag = "/".join(action.option_strings) or action.dest
    assert len(text) > 15, f"jgd {command} {flag}: no help"
    assert any(w in text for w in ("default", "required", "no default")), (command, flag, text)
    if action.type is not None and action.choices is None and "int" in repr(action.type):
        assert any(c.isdigit() for c in text), f"jgd {command} {flag}: its range is not said"
