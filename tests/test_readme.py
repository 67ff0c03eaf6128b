"""The README stays true: its parameters table is the one the code defines."""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _parameters_table() -> str:
    spec = importlib.util.spec_from_file_location(
        "parameters_table", ROOT / "tools" / "parameters_table.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.parameters_table()


def test_readme_parameters_table_matches_the_settings():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert _parameters_table() in readme, (
        "regenerate with: .venv/bin/python tools/parameters_table.py"
    )


def test_readme_quick_start_shows_the_two_commands():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    quick_start = readme.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    assert "make demo" in quick_start and "make test" in quick_start
