from __future__ import annotations

import os
import subprocess
import sys

import pytest

from galapagos_nao.__main__ import main, parse_args


def test_module_runs_the_short_example_and_prints_the_elites(mnist_root):
    if mnist_root is None:
        pytest.skip("needs the real MNIST root (GN_DATA_DIR or ../shared/data)")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "galapagos_nao",
            "--generations",
            "1",
            "--data-dir",
            str(mnist_root),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "GN_HOME": os.environ["GN_HOME"]},
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert (
        result.stderr.count("Generation 0 (this run 1/1): 4 evaluated, 0 failed, best val_acc 0.")
        == 1
    )
    assert "Epoch 0. Loss: " not in result.stderr  # per candidate only with --log candidate
    assert "<Run finished: generation 0 (this run 1/1), " in result.stdout
    assert "Elites after generation 1:" in result.stdout
    elites = [line for line in result.stdout.splitlines() if ": Network(id=" in line]
    assert elites and all("test_acc=0." in line for line in elites)


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (["--generations", "0"], "--generations must be >= 1"),
        (["--generations", "x"], "invalid int value"),
        (["--resume"], "--resume needs --continual"),
        (["--continual", "--resume", "--seed", "1"], "takes no --seed"),
    ],
)
def test_bad_flags_exit_with_a_message(argv, fragment, capsys):
    with pytest.raises(SystemExit) as caught:
        parse_args(argv)
    assert caught.value.code == 2
    assert fragment in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (["--device", "tpu"], "training.device"),
        (["--data-dir", "/nonexistent"], "/nonexistent"),
        (["--continual", "--resume"], "holds no run"),  # a fresh GN_HOME: nothing to resume
    ],
)
def test_bad_values_exit_with_status_2_and_name_them(argv, fragment, capsys):
    assert main(argv) == 2
    assert fragment in capsys.readouterr().err


def test_flags_parse():
    args = parse_args(["--continual", "--device", "cpu", "--data-dir", "/data", "--seed", "3"])
    assert (args.continual, args.device, args.data_dir, args.seed) == (True, "cpu", "/data", 3)
