"""Every script in ``examples/`` runs as a user runs it: ``python examples/NAME.py --quick``.

Each runs in a subprocess of its own (a fresh interpreter, as from a shell) on
the bundled MNIST subset, with a ``GN_HOME`` of its own, and its output is
checked for what the script claims to show. Scripts that need an optional
extra skip, naming it, where the extra is not installed. The scripts a session
tests run two at a time, started at the first test: a fresh interpreter spends
seconds importing torch on one core of the machine's two.
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
#: The extra each script needs beyond the dev install, by the module that brings it.
NEEDS = {"save_load_onnx.py": ("onnxruntime", "onnx"), "ray_cluster.py": ("ray", "ray")}
#: Generous: each takes seconds on an idle machine, tens of seconds for Ray's workers.
PATIENCE = 300
#: Scripts whose interpreters run at once (see the module docstring).
SCRIPTS_AT_ONCE = 2


def example_environment(folder: Path) -> dict[str, str]:
    """This process's environment, this checkout importable, GN_HOME ``folder/gn_home``."""
    env = dict(os.environ, PYTHONPATH=str(ROOT), GN_HOME=str(folder / "gn_home"))
    env.pop("RAY_ADDRESS", None)  # the Ray example starts a local Ray of its own
    return env


def run_example(name: str, folder: Path, env: dict[str, str]) -> tuple[str, Path]:
    """Runs ``examples/name --quick`` from ``folder`` with ``env``; its stdout, and ``folder``.

    task_stream also draws its figure into ``folder/r.png`` where matplotlib is installed.
    Fails (raises AssertionError) where the script does.
    """
    args = []
    if name == "task_stream.py" and importlib.util.find_spec("matplotlib") is not None:
        args = ["--figure", str(folder / "r.png")]
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / name), "--quick", *args],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        timeout=PATIENCE,
    )
    assert result.returncode == 0, f"{name} failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout, folder


#: Script name → the future of its :func:`run_example`.
ExampleRuns = dict[str, Future[tuple[str, Path]]]


@pytest.fixture(scope="module")
def example_runs(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ExampleRuns]:
    """The run of every script the session tests, SCRIPTS_AT_ONCE at a time from the first use.

    Each runs from a folder of its own, which holds its GN_HOME; a script that
    failed raises in its test.
    """
    names = [
        item.name.removeprefix("test_") + ".py"
        for item in request.session.items
        if getattr(item, "module", None) is sys.modules[__name__]
    ]
    names = [name for name in names if (EXAMPLES / name).exists() and not missing_extra(name)]
    pool = ThreadPoolExecutor(SCRIPTS_AT_ONCE, thread_name_prefix="example")
    try:
        runs = {}
        for name in names:
            folder = tmp_path_factory.mktemp(name.removesuffix(".py"))
            env = example_environment(folder)  # read here: tests change os.environ
            runs[name] = pool.submit(run_example, name, folder, env)
        yield runs
    finally:
        pool.shutdown(cancel_futures=True)


def finished_two_generations(out: str) -> str:
    """The repr of a run that finished its two generations, or '' (however it counts them)."""
    found = re.search(r"<Run finished: [^>\n]*\b2/2\b[^>\n]*>", out)
    return found.group(0) if found else ""


def missing_extra(name: str) -> str | None:
    """The extra ``name`` needs that is not installed here, or None."""
    module, extra = NEEDS.get(name, (None, None))
    return extra if module is not None and importlib.util.find_spec(module) is None else None


def skip_without_extra(name: str) -> None:
    extra = missing_extra(name)
    if extra is not None:
        pytest.skip(f"{name} needs the {extra!r} extra: pip install 'galapagos-nao[{extra}]'")


def test_every_example_script_is_run_here():
    scripts = {path.name for path in EXAMPLES.glob("*.py")}
    tested = {name.removeprefix("test_") + ".py" for name in globals() if name.startswith("test_")}
    assert scripts <= tested, f"examples without a test here: {sorted(scripts - tested)}"


def test_seed_session(example_runs: ExampleRuns):
    out, _ = example_runs["seed_session.py"].result()
    assert finished_two_generations(out)
    assert "<Run stopped:" in out
    filled = int(re.search(r"(\d) levels filled after complexity_levels=4", out).group(1))
    assert 1 <= filled <= 4
    assert re.search(r"\(head\): Linear\(in_features=\d+, out_features=10,", out), out


def test_steer_and_replay(example_runs: ExampleRuns):
    out, folder = example_runs["steer_and_replay.py"].result()
    for action in ("Selection.pin", "Selection.favor", "breed", "Selection.veto", "Run.stop"):
        assert action in out
    assert re.search(r"<Replay: \d+ steps, exact", out), out
    assert "differences from the live archive: []" in out
    # The script it wrote replays the session again, in a process of its own.
    script = re.search(r"wrote (\S+session\.py)", out).group(1)
    replayed = subprocess.run(
        [sys.executable, script],
        cwd=folder,
        env=example_environment(folder),
        capture_output=True,
        text=True,
        timeout=PATIENCE,
    )
    assert replayed.returncode == 0, replayed.stdout + replayed.stderr
    assert "exact" in replayed.stdout


def test_task_stream(example_runs: ExampleRuns):
    out, folder = example_runs["task_stream.py"].result()
    if importlib.util.find_spec("matplotlib") is not None:
        assert (folder / "r.png").stat().st_size > 0
    rows = re.findall(r"after split-mnist \d,\d", out)
    assert len(rows) == 5, out
    acc = float(re.search(r"ACC (\S+)", out).group(1))
    assert 0.2 < acc <= 1.0


def test_own_tensors(example_runs: ExampleRuns):
    out, _ = example_runs["own_tensors.py"].result()
    assert "source='user tensors'" in out
    accuracy = float(re.search(r"test_acc (\S+)", out).group(1))
    assert accuracy > 0.5  # three classes: chance is a third
    classes = re.search(r"predicted classes: \[(.*)\]", out).group(1).split(", ")
    assert len(classes) == 3 and set(classes) <= {"0", "1", "2"}


def test_image_genomes(example_runs: ExampleRuns):
    out, _ = example_runs["image_genomes.py"].result()
    assert "refused: layers[1] ('conv2d'" in out and "place it before layer 0" in out
    assert finished_two_generations(out)
    cells = re.findall(r"cell \((\d), (\d)\): ([\d,]+) multiply-adds", out)
    assert cells and all(int(flops.replace(",", "")) > 0 for _, _, flops in cells)


def test_save_load_onnx(example_runs: ExampleRuns):
    skip_without_extra("save_load_onnx.py")
    out, _ = example_runs["save_load_onnx.py"].result()
    assert "saved and loaded Network(" in out
    assert "exported 1 file(s), imported 1" in out
    agree = float(re.search(r"agrees with torch on (\S+)%", out).group(1))
    assert agree >= 99.0


@pytest.mark.ray
def test_ray_cluster(example_runs: ExampleRuns):
    skip_without_extra("ray_cluster.py")
    out, _ = example_runs["ray_cluster.py"].result()
    assert finished_two_generations(out) and "8 evaluated" in finished_two_generations(out)
    assert "level " in out
