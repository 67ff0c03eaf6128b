"""Prints the README's parameters table from ``galapagos_nao.config.parameters.SETTINGS``.

Usage: ``.venv/bin/python tools/parameters_table.py`` and paste between the
``<!-- parameters -->`` markers of README.md; ``tests/test_readme.py`` checks
that the README's table is this one.
"""

from __future__ import annotations

from galapagos_nao.config.parameters import SETTINGS

#: How each section is addressed in ``gn.Parameters.put(section, …)``.
SECTION_HANDLES = {
    "selection": "gn.Selection",
    "orchestration": "gn.orchestration",
    "evolution": "gn.evolution",
    "training": "gn.training",
}


def _show(value: object) -> str:
    return f"`{value!r}`".replace("|", "\\|")


def parameters_table() -> str:
    """The markdown table: one row per setting, grouped by section."""
    rows = ["| section | key | default | meaning |", "|---|---|---|---|"]
    for section, settings in SETTINGS.items():
        handle = SECTION_HANDLES.get(section, repr(section))
        for key, setting in settings.items():
            rows.append(f"| `{handle}` | `{key}` | {_show(setting.default)} | {setting.doc} |")
    return "\n".join(rows)


if __name__ == "__main__":
    print(parameters_table())
