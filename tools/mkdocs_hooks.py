"""mkdocs hooks: every page under ``docs/guide/`` is in the site's navigation.

Engineers add user guides as ``docs/guide/<topic>.md`` without touching
``mkdocs.yml``; a page its ``nav`` does not list yet is appended to the Guide
section here (titled by its first heading), so the strict build never fails on
an omitted page and no guide is left unreachable.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

GUIDE = "guide"


def _listed(nav: Any) -> set[str]:
    """Every page path a nav tree names."""
    found: set[str] = set()
    if isinstance(nav, str):
        found.add(nav)
    elif isinstance(nav, dict):
        for value in nav.values():
            found |= _listed(value)
    elif isinstance(nav, list):
        for item in nav:
            found |= _listed(item)
    return found


def _guide_section(nav: list[Any]) -> list[Any] | None:
    """The list under the nav's ``Guide`` entry, or None when there is none."""
    for item in nav:
        if isinstance(item, dict) and isinstance(item.get("Guide"), list):
            return item["Guide"]
    return None


def _title(page: Path) -> str:
    """The page's first markdown heading, else its file name."""
    for line in page.read_text(encoding="utf-8").splitlines():
        if line.startswith("# "):
            return line[2:].strip()
    return page.stem.replace("-", " ").capitalize()


def on_config(config: Any) -> Any:
    """Appends the guide pages ``nav`` does not list to its Guide section."""
    nav = config["nav"]
    section = _guide_section(nav) if nav else None
    if section is None:
        return config
    listed = _listed(nav)
    for page in sorted((Path(config["docs_dir"]) / GUIDE).glob("*.md")):
        path = f"{GUIDE}/{page.name}"
        if path not in listed:
            section.append({_title(page): path})
    return config
