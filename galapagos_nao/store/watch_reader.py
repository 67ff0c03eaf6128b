"""Polling a workspace from another process: what ``python -m galapagos_nao watch`` shows.

A :class:`WorkspaceReader` opens the file as a read-only view (no writer
lock, so the run writing it never waits), and each :meth:`~WorkspaceReader.poll`
returns a :class:`WatchSnapshot`: plain values a renderer draws without touching
the file. The reader re-reads only when another connection committed (SQLite's
``data_version``), reads in one short transaction without decoding any
network, and never raises for the file's sake: a missing, replaced, damaged or
half-written workspace becomes a snapshot that says so, and the next poll tries
again (a replaced file is noticed by its inode and reopened).
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from galapagos_nao.core.measures import resolve_levels
from galapagos_nao.core.typing import CellKey
from galapagos_nao.store.journal import describe_arguments
from galapagos_nao.store.workspace import RunSummary, Workspace, WorkspaceError
from galapagos_nao.store.workspace.lock import writer_pid

__all__ = [
    "CellView",
    "Event",
    "Point",
    "WatchSnapshot",
    "WorkspaceReader",
    "snapshot_of",
]

#: How many events a snapshot keeps (newest last).
EVENTS = 12


@dataclass(frozen=True)
class CellView:
    """One cell of the archive grid."""

    #: The cell: an int level for one measure, a tuple of levels for several.
    cell: CellKey
    #: Id of its elite; None for an empty cell.
    network_id: str | None = None
    #: The elite's fitness (validation accuracy).
    fitness: float | None = None
    #: The elite's test accuracy (reported, never selected on).
    test_acc: float | None = None
    #: Whether the journal says the cell is pinned.
    pinned: bool = False
    #: Its favor (children relative to other parents; 1 unless set).
    favor: float = 1.0


@dataclass(frozen=True)
class Point:
    """One generation of the sparklines."""

    generation: int
    #: Filled cells / cells.
    coverage: float | None
    #: Sum of the elites' fitness.
    qd_score: float | None
    #: Highest elite fitness.
    best_fitness: float | None


@dataclass(frozen=True)
class Event:
    """Something that happened: an archive change, a failure, a journal action."""

    #: ``time.time()`` when it happened (a generation's end, a journal row's time).
    time: float
    #: The archive generation it belongs to.
    generation: int
    #: ``new``, ``replaced``, ``held back``, ``failed`` or ``journal``.
    kind: str
    #: One line about it.
    text: str


@dataclass(frozen=True)
class WatchSnapshot:
    """What the workspace said at one poll (plain values: a renderer needs nothing else)."""

    #: The workspace file.
    path: str
    #: ``time.time()`` of the poll.
    taken: float
    #: ``ok``, ``missing`` (no file yet) or ``unreadable`` (see ``message``).
    status: str = "ok"
    #: Why the file could not be read, for ``unreadable``.
    message: str = ""
    #: ``no run yet``, ``waiting`` (a writer, no checkpoint yet), ``running``, ``stopped``,
    #: ``finished`` or ``idle`` (a writer without a journal, no recent checkpoint).
    state: str = "no run yet"
    #: The process writing the workspace, or None when none is.
    writer: int | None = None
    #: The last run, its seed, last checkpointed generation and when it was written.
    run_id: int | None = None
    seed: int | None = None
    generation: int | None = None
    written: float | None = None
    #: Generations per minute over the last stretch of uninterrupted generations.
    rate: float | None = None
    #: The archive's axes and their levels (empty when the checkpoint does not say).
    measures: tuple[str, ...] = ()
    levels: tuple[int, ...] = ()
    #: Every cell of the grid (filled or not) in cell order; only filled and
    #: marked ones when the grid has more than two axes or unknown levels.
    cells: tuple[CellView, ...] = ()
    #: Networks waiting in the queue.
    queued: int = 0
    #: Coverage, QD-score and best fitness of the last generations, oldest first.
    points: tuple[Point, ...] = ()
    #: The latest events, oldest first.
    events: tuple[Event, ...] = ()
    #: Damage found in the file (a read-only view still reads the rest).
    problems: tuple[str, ...] = field(default=())

    @property
    def filled(self) -> int:
        """Cells holding an elite."""
        return sum(cell.network_id is not None for cell in self.cells)


class WorkspaceReader:
    """Polls one workspace file read-only; keeps it open between polls.

    Args:
        path: The workspace file (it need not exist yet).
        history_rows: Generations read for the sparklines.
        journal_rows: Journal rows read for the events.
    """

    def __init__(
        self, path: str | os.PathLike[str], *, history_rows: int = 120, journal_rows: int = 50
    ) -> None:
        self.path = Path(path).expanduser().absolute()
        self._history_rows = history_rows
        self._journal_rows = journal_rows
        self._store: Workspace | None = None
        self._identity: tuple[int, int] | None = None
        self._version: int | None = None
        self._summary: RunSummary | None = None

    def poll(self) -> WatchSnapshot:
        """Reads the workspace if it changed since the last poll; never raises for the file."""
        now = time.time()
        try:
            status = os.stat(self.path)
        except FileNotFoundError:
            self.close()
            return WatchSnapshot(str(self.path), now, "missing", "no workspace file here yet")
        except OSError as error:
            self.close()
            return WatchSnapshot(str(self.path), now, "unreadable", str(error))
        identity = (status.st_dev, status.st_ino)
        if self._store is not None and identity != self._identity:
            self.close()  # replaced (moved over, restored from a copy): read the new file
        try:
            summary = self._read(identity)
        except (WorkspaceError, OSError, sqlite3.Error, ValueError, KeyError, TypeError) as error:
            self.close()  # reopened at the next poll: the file may be mid-replacement
            return WatchSnapshot(str(self.path), now, "unreadable", str(error))
        problems = () if self._store is None else self._store.problems
        return snapshot_of(
            summary, str(self.path), now, writer=writer_pid(self.path), problems=problems
        )

    def _read(self, identity: tuple[int, int]) -> RunSummary:
        if self._store is None:
            self._store = Workspace(self.path, read_only=True)
            self._identity, self._version, self._summary = identity, None, None
        version = self._store.data_version()
        if self._summary is None or version != self._version:
            self._summary = self._store.summary(
                history_rows=self._history_rows, journal_rows=self._journal_rows
            )
            self._version = version
        return self._summary

    def close(self) -> None:
        """Closes the file (the next poll opens it again)."""
        if self._store is not None:
            self._store.close()
        self._store, self._identity, self._version, self._summary = None, None, None, None

    def __enter__(self) -> WorkspaceReader:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


# -- from a summary to a snapshot ----------------------------------------------------


def snapshot_of(
    summary: RunSummary,
    path: str,
    taken: float,
    *,
    writer: int | None = None,
    problems: Sequence[str] = (),
) -> WatchSnapshot:
    """The snapshot a reader makes of ``summary`` (pure: the renderer's tests build their own).

    Raises:
        ValueError, KeyError, TypeError: for rows that do not have the documented shape.
    """
    latest = summary.history[-1] if summary.history else None
    measures, levels = _axes(summary.selection)
    return WatchSnapshot(
        path=path,
        taken=taken,
        state=_state(summary, writer, taken),
        writer=writer,
        run_id=summary.run_id,
        seed=summary.seed,
        generation=summary.generation,
        written=summary.written,
        rate=_rate(summary.history),
        measures=measures,
        levels=levels,
        cells=_cells(summary, {} if latest is None else latest["best"], levels),
        queued=summary.queued,
        points=tuple(_point(row) for row in summary.history),
        events=_events(summary),
        problems=tuple(problems),
    )


def _axes(selection: Mapping[str, Any]) -> tuple[tuple[str, ...], tuple[int, ...]]:
    names = selection.get("measures", ["layers"])
    if not isinstance(names, list) or not all(isinstance(name, str) for name in names):
        return (), ()
    try:
        return tuple(names), resolve_levels(names, selection)
    except (KeyError, ValueError, TypeError):
        return tuple(names), ()  # an axis this version does not know: cells only


def _marks(rows: Sequence[Mapping[str, Any]]) -> tuple[set[Any], dict[Any, float]]:
    """Pins and favor as the journal's verbs left them (replayed in order)."""
    pins: set[Any] = set()
    favors: dict[Any, float] = {}
    for row in rows:
        arguments = row["arguments"]
        cell = _cell_key(arguments.get("cell"))
        if cell is None:
            continue
        if row["action"] == "Selection.pin":
            pins.add(cell)
        elif row["action"] == "Selection.unpin":
            pins.discard(cell)
        elif isinstance(arguments.get("weight"), (int, float)):
            favors[cell] = float(arguments["weight"])
    return pins, favors


def _cell_key(value: Any) -> Any:
    if isinstance(value, list) and value and all(isinstance(v, int) for v in value):
        return tuple(value)
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _grid(levels: tuple[int, ...]) -> list[Any]:
    if len(levels) == 1:
        return list(range(1, levels[0] + 1))
    if len(levels) == 2:
        return [(row, col) for row in range(1, levels[0] + 1) for col in range(1, levels[1] + 1)]
    return []


def _cells(
    summary: RunSummary, best: Mapping[Any, Mapping[str, Any]], levels: tuple[int, ...]
) -> tuple[CellView, ...]:
    pins, favors = _marks(summary.curation)
    keys = set(_grid(levels)) | set(summary.elites) | pins | set(favors)
    views = []
    for cell in sorted(keys, key=lambda key: key if isinstance(key, tuple) else (key,)):
        metrics = best.get(cell, {})
        views.append(
            CellView(
                cell=cell,
                network_id=summary.elites.get(cell),
                fitness=_number(metrics.get("val_acc")),
                test_acc=_number(metrics.get("test_acc")),
                pinned=cell in pins,
                favor=favors.get(cell, 1.0),
            )
        )
    return tuple(views)


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _point(row: Mapping[str, Any]) -> Point:
    stats = (row.get("archive") or {}).get("stats") or {}
    best = [m.get("val_acc") for m in row["best"].values()]
    found = [float(v) for v in best if _number(v) is not None]
    return Point(
        generation=int(row["generation"]),
        coverage=_number(stats.get("coverage")),
        qd_score=_number(stats.get("qd_score")) if stats else sum(found),
        best_fitness=_number(stats.get("best_fitness")) if stats else max(found, default=None),
    )


def _rate(history: Sequence[Mapping[str, Any]]) -> float | None:
    """Generations per minute over the last stretch without a pause (a stop, a resume)."""
    stretch = list(history[-10:])
    for index in range(len(stretch) - 1, 0, -1):
        before, after = stretch[index - 1], stretch[index]
        gap = after["started"] - (before["started"] + before["seconds"])
        if gap > max(30.0, 2 * after["seconds"]):
            stretch = stretch[index:]
            break
    if not stretch:
        return None
    span = stretch[-1]["started"] + stretch[-1]["seconds"] - stretch[0]["started"]
    return 60.0 * len(stretch) / span if span > 0 else None


def _state(summary: RunSummary, writer: int | None, now: float) -> str:
    if summary.run_id is None:
        return "waiting" if writer is not None else "no run yet"
    last = summary.lifecycle
    if last is not None and last["action"] == "evolve":
        total = last["arguments"].get("generations")
        end = last["generation"] + total - 1 if isinstance(total, int) else None
        if end is not None and summary.generation is not None and summary.generation >= end:
            return "finished"
    if writer is None or (last is not None and last["action"] == "Run.stop"):
        return "stopped"
    if last is not None:
        return "running"
    # No journal (a Run made directly): a checkpoint within a few generations' time means live.
    seconds = summary.history[-1]["seconds"] if summary.history else 0.0
    written = summary.written or 0.0
    return "running" if now - written < max(120.0, 5 * seconds) else "idle"


def _events(summary: RunSummary) -> tuple[Event, ...]:
    events = []
    for row in summary.history:
        generation, end = int(row["generation"]), row["started"] + row["seconds"]
        archive = row.get("archive") or {}
        for change in archive.get("changes", ()):
            cell, new = change["cell"], _fitness(change.get("new_fitness"))
            if change.get("old_id") is None:
                text = f"cell {_cell_text(cell)}: new elite {change['new_id'][:8]} {new}"
                events.append(Event(end, generation, "new", text))
            else:
                old = _fitness(change.get("old_fitness"))
                text = f"cell {_cell_text(cell)}: {old} -> {new} ({change['new_id'][:8]})"
                events.append(Event(end, generation, "replaced", text))
        for held in archive.get("held_back", ()):
            text = (
                f"cell {_cell_text(held['cell'])}: pin held back {held['newcomer_id'][:8]} "
                f"{_fitness(held.get('newcomer_fitness'))}"
            )
            events.append(Event(end, generation, "held back", text))
        if row["failed"]:
            events.append(Event(end, generation, "failed", f"{row['failed']} candidate(s) failed"))
    for row in summary.journal:
        shown = {
            key: value
            for key, value in row["arguments"].items()
            if value is not None and key not in ("task", "shared_selection")
        }
        text = f"{row['action']}({_clip(describe_arguments(shown))})"
        events.append(Event(float(row["time"]), int(row["generation"]), "journal", text))
    events.sort(key=lambda event: event.time)
    return tuple(events[-EVENTS:])


def _clip(text: str, width: int = 60) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def _fitness(value: Any) -> str:
    number = _number(value)
    return "-" if number is None else f"{number:.4f}"


def _cell_text(cell: Any) -> str:
    return ",".join(map(str, cell)) if isinstance(cell, (list, tuple)) else str(cell)
