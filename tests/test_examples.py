"""Every script in ``examples/`` runs as a user runs it: ``python examples/NAME.py --quick``.

Each runs in a subprocess of its own (a fresh interpreter, as from a shell) on
the bundled MNIST subset, with this test's own ``GN_HOME``, and its output is
checked for what the script claims to show. Scripts that need an optional
extra skip, naming it, where the extra is not installed.
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
#: The extra each script needs beyond the dev install, by the module that brings it.
NEEDS = {"save_load_onnx.py": ("onnxruntime", "onnx"), "ray_cluster.py": ("ray", "ray")}
#: Generous: each takes seconds on an idle machine, tens of seconds for Ray's workers.
PATIENCE = 300


def run_example(name: str, tmp_path: Path, *args: str) -> str:
    """Runs ``examples/name --quick`` from ``tmp_path``; returns its stdout, failing on an error."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    env.pop("RAY_ADDRESS", None)  # the Ray example starts a local Ray of its own
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / name), "--quick", *args],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=PATIENCE,
    )
    assert result.returncode == 0, f"{name} failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout


def finished_two_generations(out: str) -> str:
    """The repr of a run that finished its two generations, or '' (however it counts them)."""
    found = re.search(r"<Run finished: [^>\n]*\b2/2\b[^>\n]*>", out)
    return found.group(0) if found else ""


def skip_without_extra(name: str) -> None:
    if name in NEEDS:
        module, extra = NEEDS[name]
        if importlib.util.find_spec(module) is None:
            pytest.skip(f"{name} needs the {extra!r} extra: pip install 'galapagos-nao[{extra}]'")


def test_every_example_script_is_run_here():
    scripts = {path.name for path in EXAMPLES.glob("*.py")}
    tested = {name.removeprefix("test_") + ".py" for name in globals() if name.startswith("test_")}
    assert scripts <= tested, f"examples without a test here: {sorted(scripts - tested)}"


def test_seed_session(tmp_path: Path):
    out = run_example("seed_session.py", tmp_path)
    assert finished_two_generations(out)
    assert "<Run stopped:" in out
    filled = int(re.search(r"(\d) levels filled after complexity_levels=4", out).group(1))
    assert 1 <= filled <= 4
    assert re.search(r"\(head\): Linear\(in_features=\d+, out_features=10,", out), out


def test_steer_and_replay(tmp_path: Path):
    out = run_example("steer_and_replay.py", tmp_path)
    for action in ("Selection.pin", "Selection.favor", "breed", "Selection.veto", "Run.stop"):
        assert action in out
    assert re.search(r"<Replay: \d+ steps, exact", out), out
    assert "differences from the live archive: []" in out
    # The script it wrote replays the session again, in a process of its own.
    script = re.search(r"wrote (\S+session\.py)", out).group(1)
    replayed = subprocess.run(
        [sys.executable, script],
        cwd=tmp_path,
        env=dict(os.environ, PYTHONPATH=str(ROOT)),
        capture_output=True,
        text=True,
        timeout=PATIENCE,
    )
    assert replayed.returncode == 0, replayed.stdout + replayed.stderr
    assert "exact" in replayed.stdout


def test_task_stream(tmp_path: Path):
    figure = tmp_path / "r.png"
    if importlib.util.find_spec("matplotlib") is None:
        out = run_example("task_stream.py", tmp_path)
    else:
        out = run_example("task_stream.py", tmp_path, "--figure", str(figure))
        assert figure.stat().st_size > 0
    rows = re.findall(r"after split-mnist \d,\d", out)
    assert len(rows) == 5, out
    acc = float(re.search(r"ACC (\S+)", out).group(1))
    assert 0.2 < acc <= 1.0


def test_own_tensors(tmp_path: Path):
    out = run_example("own_tensors.py", tmp_path)
    assert "source='user tensors'" in out
    accuracy = float(re.search(r"test_acc (\S+)", out).group(1))
    assert accuracy > 0.5  # three classes: chance is a third
    classes = re.search(r"predicted classes: \[(.*)\]", out).group(1).split(", ")
    assert len(classes) == 3 and set(classes) <= {"0", "1", "2"}


def test_image_genomes(tmp_path: Path):
    out = run_example("image_genomes.py", tmp_path)
    assert "refused: layers[1] ('conv2d'" in out and "place it before layer 0" in out
    assert finished_two_generations(out)
    cells = re.findall(r"cell \((\d), (\d)\): ([\d,]+) multiply-adds", out)
    assert cells and all(int(flops.replace(",", "")) > 0 for _, _, flops in cells)


def test_save_load_onnx(tmp_path: Path):
    skip_without_extra("save_load_onnx.py")
    out = run_example("save_load_onnx.py", tmp_path)
    assert "saved and loaded Network(" in out
    assert "exported 1 file(s), imported 1" in out
    agree = float(re.search(r"agrees with torch on (\S+)%", out).group(1))
    assert agree >= 99.0


@pytest.mark.ray
def test_ray_cluster(tmp_path: Path):
    skip_without_extra("ray_cluster.py")
    out = run_example("ray_cluster.py", tmp_path)
    assert finished_two_generations(out) and "8 evaluated" in finished_two_generations(out)
    assert "level " in out
