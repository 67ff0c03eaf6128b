"""Prints the docs' parameters table from the section dataclasses.

Each row is one field of a section in :mod:`galapagos_nao.config.settings`:
its default as written in the signature, the range its check accepts at
``put`` and its ``doc`` line.

Usage: ``.venv/bin/python tools/parameters_table.py`` and paste below the
``<!-- parameters -->`` marker of ``docs/guide/parameters.md``;
``tests/test_docs.py`` checks that the page's table is this one.
"""

from __future__ import annotations

from galapagos_nao.config.settings import SECTIONS

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
    rows = ["| section | key | default | range | meaning |", "|---|---|---|---|---|"]
    for name, section in SECTIONS.items():
        handle = SECTION_HANDLES.get(name, repr(name))
        docs, ranges = section.docs(), section.ranges()
        for key, default in section.defaults().items():
            accepted = ranges[key].replace("|", "\\|")
            rows.append(f"| `{handle}` | `{key}` | {_show(default)} | {accepted} | {docs[key]} |")
    return "\n".join(rows)


if __name__ == "__main__":
    print(parameters_table())
