"""What ``watch`` draws: a workspace at one poll, as plain records, and how they are derived.

:func:`snapshot_of` turns a :class:`~galapagos_nao.store.workspace.RunSummary`
(the rows a :class:`~galapagos_nao.store.watch_reader.WorkspaceReader` read)
into a :class:`WatchSnapshot`: the grid with each cell's elite fitness and the
pins and favor the experiment's state holds (never re-derived from the
journal), the sparkline points, the rate, the run's
state and the latest events. Pure: no file is touched, so renderers and their
tests build snapshots freely.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from galapagos_nao.core.measures import resolve_levels
from galapagos_nao.core.typing import CellKey
from galapagos_nao.store.journal import describe_arguments
from galapagos_nao.store.workspace import RunSummary

__all__ = ["CellView", "Event", "Point", "WatchSnapshot", "snapshot_of"]

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
    #: ``new``, ``replaced``, ``re-binned`` (the cell's elite changed because the
    #: bins moved, not because a newcomer won), ``task`` (a stream moved on and
    #: re-scored the archive), ``held back``, ``failed`` or ``journal``.
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
    #: The experiment shown.
    experiment: str = "default"
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
        experiment=summary.experiment,
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


def _marks(curation: Mapping[str, Any] | None) -> tuple[set[Any], dict[Any, float]]:
    """Pins and favor as the experiment's state holds them (untrusted: odd entries skipped)."""
    pins: set[Any] = set()
    favors: dict[Any, float] = {}
    if not isinstance(curation, Mapping):
        return pins, favors
    pinned = curation.get("pinned")
    for value in pinned if isinstance(pinned, list) else ():
        cell = _cell_key(value)
        if cell is not None:
            pins.add(cell)
    favored = curation.get("favored")
    for pair in favored if isinstance(favored, list) else ():
        if isinstance(pair, list) and len(pair) == 2 and _number(pair[1]) is not None:
            cell = _cell_key(pair[0])
            if cell is not None:
                favors[cell] = float(pair[1])
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
    held_back: dict[str, tuple[int, float | None]] = {}  # cell → newcomers held, fittest
    pinned: dict[str, Event] = {}  # cell → its latest held-back event
    before: Mapping[Any, Any] | None = None
    task: Any = None
    for row in summary.history:
        generation, end = int(row["generation"]), row["started"] + row["seconds"]
        archive = row.get("archive") or {}
        # A task stream that moved on re-scores the archive: fitness falls, no bin moved.
        switched = task is not None and archive.get("task") not in (None, task)
        task = archive.get("task", task)
        if switched:
            events.append(Event(end, generation, "task", f"now on task {task!r}: re-scored"))
        else:
            events.extend(_rebinned(before, row, generation, end))
        before = row["best"]
        for change in archive.get("changes", ()):
            cell, new = change["cell"], _fitness(change.get("new_fitness"))
            if change.get("old_id") is None:
                text = f"cell {_cell_text(cell)}: new elite {change['new_id'][:8]} {new}"
                events.append(Event(end, generation, "new", text))
            else:
                old = _fitness(change.get("old_fitness"))
                text = f"cell {_cell_text(cell)}: {old} -> {new} ({change['new_id'][:8]})"
                # No newcomer beats a fitter elite in its cell: a lower one came in
                # because the bins moved (the incumbent now falls in another cell).
                dropped = not switched and _lower(
                    change.get("new_fitness"), change.get("old_fitness")
                )
                kind = "re-binned" if dropped else "replaced"
                events.append(
                    Event(end, generation, kind, text + (": the bins moved" if dropped else ""))
                )
        for held in archive.get("held_back", ()):
            # A pin holds back a newcomer most generations: one line per cell, the latest,
            # counting them, rather than a line each that would push every other event out.
            cell = _cell_text(held["cell"])
            count, fittest = held_back.get(cell, (0, None))
            newcomer = _number(held.get("newcomer_fitness"))
            if newcomer is not None and (fittest is None or newcomer > fittest):
                fittest = newcomer
            held_back[cell] = (count + 1, fittest)
            text = f"cell {cell}: pin held back {count + 1} newcomer(s), best {_fitness(fittest)}"
            pinned[cell] = Event(end, generation, "held back", text)
        if row["failed"]:
            events.append(Event(end, generation, "failed", f"{row['failed']} candidate(s) failed"))
    events.extend(pinned.values())
    for row in summary.journal:
        shown = {
            key: value
            for key, value in row["arguments"].items()
            if value is not None and key not in ("task", "task_data", "shared_selection")
        }
        text = f"{row['action']}({_clip(describe_arguments(shown))})"
        events.append(Event(float(row["time"]), int(row["generation"]), "journal", text))
    events.sort(key=lambda event: event.time)
    return tuple(events[-EVENTS:])


def _lower(new: Any, old: Any) -> bool:
    """True when both are numbers and ``new`` is below ``old``."""
    a, b = _number(new), _number(old)
    return a is not None and b is not None and a < b


def _rebinned(
    before: Mapping[Any, Any] | None, row: Mapping[str, Any], generation: int, end: float
) -> list[Event]:
    """Cells whose elite changed with no newcomer: the bins moved (levels, measures, ranges)."""
    if before is None:
        return []
    changed = {
        _cell_key(change.get("cell"))
        for change in (row.get("archive") or {}).get("changes", ())
        if isinstance(change, Mapping)
    }
    found = []
    for cell, metrics in row["best"].items():
        old = before.get(cell)
        if cell in changed or old is None or old.get("val_acc") == metrics.get("val_acc"):
            continue
        text = (
            f"cell {_cell_text(cell)}: {_fitness(old.get('val_acc'))} -> "
            f"{_fitness(metrics.get('val_acc'))}: the bins moved, no newcomer"
        )
        found.append(Event(end, generation, "re-binned", text))
    return found


def _clip(text: str, width: int = 60) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def _fitness(value: Any) -> str:
    number = _number(value)
    return "-" if number is None else f"{number:.4f}"


def _cell_text(cell: Any) -> str:
    return ",".join(map(str, cell)) if isinstance(cell, (list, tuple)) else str(cell)
