"""The README is the front page: short, the two commands first, links that lead somewhere.

The manual lives in ``docs/`` (its parameters table is checked by
``tests/test_docs.py``, which also runs the README's Python block).
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")
#: The issue's bound on a front page, with a little room.
MOST_LINES = 250


def test_readme_quick_start_shows_the_two_commands():
    quick_start = README.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    assert "make demo" in quick_start and "make test" in quick_start


def test_readme_is_a_front_page():
    assert len(README.splitlines()) <= MOST_LINES
    headings = re.findall(r"^## (.+)$", README, re.M)
    assert headings[0] == "Quick start", headings  # the two commands come first


def test_readme_links_and_pictures_lead_to_files_that_exist():
    targets = re.findall(r"\]\(((?:docs|examples)/[^)#\s]+)", README)
    assert len(targets) >= 10, targets
    missing = [target for target in targets if not (ROOT / target).is_file()]
    assert not missing, f"README links to files that do not exist: {missing}"


def test_readme_links_the_docs_guide_pages():
    # The docs' nav lists every guide page (tools/mkdocs_hooks.py adds new ones);
    # the front page links the main ones and the docs for the rest.
    linked = set(re.findall(r"\]\((docs/guide/[^)#\s]+)", README))
    assert len(linked) >= 12, sorted(linked)


def test_readme_says_why_the_docs_use_mkdocs():
    why = README.split("**Why mkdocs.**", 1)[1].split("\n\n", 1)[0]
    assert "Sphinx" in why and "measured" in why
