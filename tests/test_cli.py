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
