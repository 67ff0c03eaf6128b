"""``make demo``: what a fresh machine runs (read with ``make -n``, which runs nothing)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")


def dry_run(tmp_path: Path, *overrides: str) -> str:
    """``make -n demo`` in a fresh copy of the Makefile (no .venv yet), as on a new machine."""
    (tmp_path / "Makefile").write_text((REPO / "Makefile").read_text())
    (tmp_path / "pyproject.toml").write_text((REPO / "pyproject.toml").read_text())
    env = {k: v for k, v in os.environ.items() if k != "GN_DATA_DIR"}
    result = subprocess.run(
        ["make", "--no-print-directory", "-n", "demo", *overrides],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_demo_installs_the_sessions_extras_runs_its_own_experiment_and_says_what_next(tmp_path):
    commands = dry_run(tmp_path)
    assert "-m venv .venv" in commands
    assert "install --quiet -e '.[ipython,plot,watch]'" in commands
    assert "-m galapagos_nao --experiment demo" in commands
    assert commands.rstrip().splitlines()[-1].startswith('echo "Next: .venv/bin/ipython')


def test_demo_uses_the_shared_data_when_present_and_the_bundled_subset_otherwise(tmp_path):
    shared = tmp_path / "shared" / "data"
    shared.mkdir(parents=True)
    work = tmp_path / "repo"
    work.mkdir()
    assert f"GN_DATA_DIR='{shared}'" in dry_run(work)  # ../shared/data, as make test
    alone = tmp_path / "elsewhere" / "repo"
    alone.mkdir(parents=True)
    offline = dry_run(alone)  # no ../shared/data: the library falls back to the bundled subset
    assert "GN_DATA_DIR" not in offline and "-m galapagos_nao --experiment demo" in offline
