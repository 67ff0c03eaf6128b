"""Reading a run's rows back: cells, checkpoint settings and history rows, all untrusted.

Each parser takes what SQLite returned and either gives the value the tables
document or raises :class:`WorkspaceCorrupt` saying "damaged on disk": a value
that is not what its column holds never escapes as a raw ``JSONDecodeError``,
``TypeError`` or ``KeyError``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from galapagos_nao.core.checks import describe
from galapagos_nao.store.workspace.errors import WorkspaceCorrupt

__all__ = ["cell_from_json", "checkpoint_json", "history_entry"]


def cell_from_json(text: str) -> Any:
    """A cell key stored as JSON: an int, or a tuple of ints (stored as a list).

    Raises:
        WorkspaceCorrupt: saying "damaged on disk" for anything else.
    """
    try:
        value = json.loads(text)
    except (TypeError, ValueError):
        value = None
    key = tuple(value) if isinstance(value, list) else value
    parts = key if isinstance(key, tuple) else (key,)
    if not parts or not all(isinstance(p, int) and not isinstance(p, bool) for p in parts):
        raise WorkspaceCorrupt(f"damaged on disk: {describe(text)} is not a cell")
    return key


def checkpoint_json(what: str, texts: Sequence[Any]) -> tuple[Any, Any, Any, Any]:
    """A checkpoint's parameters, rng state, stream and curation, each a JSON object or None.

    Raises:
        WorkspaceCorrupt: naming the checkpoint, "damaged on disk", for anything else.
    """
    found = []
    for name, text in zip(("parameters", "rng_state", "stream", "curation"), texts, strict=True):
        optional = name in ("stream", "curation")
        try:
            value = None if text is None and optional else json.loads(text)
        except (TypeError, ValueError) as error:
            raise WorkspaceCorrupt(f"{what} is damaged on disk: {name} ({error})") from None
        if not (isinstance(value, dict) or (value is None and optional)):
            raise WorkspaceCorrupt(f"{what} is damaged on disk: {name} is not an object")
        found.append(value)
    return found[0], found[1], found[2], found[3]


def history_entry(row: Sequence[Any]) -> dict[str, Any]:
    """A ``history`` row (generation, started, seconds, evaluated, failed, best, archive) as a dict.

    The form :meth:`RunTables.history` documents; ``best`` and ``archive`` are JSON text.

    Raises:
        WorkspaceCorrupt: saying "damaged on disk" when a value is not what the
            column holds.
    """
    generation, started, seconds, evaluated, failed, best_json, archive = row
    try:
        best = {
            (tuple(cell) if isinstance(cell, list) else cell): {"val_acc": val, "test_acc": test}
            for cell, val, test in json.loads(best_json)
        }
        archive = None if archive is None else json.loads(archive)
    except (TypeError, ValueError) as error:  # JSONDecodeError, unpacking, unhashable cells
        raise WorkspaceCorrupt(f"damaged on disk: best or archive unreadable ({error})") from None
    counts = {"generation": generation, "evaluated": evaluated, "failed": failed}
    for name, value in {**counts, "started": started, "seconds": seconds}.items():
        kinds = (int,) if name in counts else (int, float)
        if isinstance(value, bool) or not isinstance(value, kinds):
            raise WorkspaceCorrupt(f"damaged on disk: {name} is {describe(value)}")
    if archive is not None and not isinstance(archive, dict):
        raise WorkspaceCorrupt("damaged on disk: archive is not an object")
    return {
        "generation": generation,
        "started": started,
        "seconds": seconds,
        "evaluated": evaluated,
        "failed": failed,
        "best": best,
        "archive": archive,
    }
