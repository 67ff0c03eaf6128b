"""What the notebook's live view draws, as plain JSON values, and the feed of events behind it.

:func:`live_state` reads a Selection and its run through their snapshot
readers (never their internals, never holding a lock across anything slow)
and returns the dict that the widget syncs to the browser, where ``live.js``
draws it: the run's state, a progress bar and rate, best and mean validation
accuracy (the fitness), the archive grid with each cell's pin and favor, and
the latest events. :class:`EventFeed` collects those events from the run's
hooks, the archive's listeners and diverted log lines. No widget library is
needed here, so the tests read states without a browser.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from galapagos_nao.archive.history import HistoryEntry
from galapagos_nao.archive.selection import Selection
from galapagos_nao.core.network import Network
from galapagos_nao.run.loop import GenerationReport, Run
from galapagos_nao.run.records import Outcome
from galapagos_nao.ui.progress import expected_candidates

__all__ = ["EVENTS", "MAX_CELLS", "METRIC", "EventFeed", "live_state"]

#: How many events the view keeps (newest last).
EVENTS = 12
#: The metric the view ranks by: the fitness the archive selects on.
METRIC = "val_acc"
#: Grids with more cells than this list only their filled and marked cells.
MAX_CELLS = 400


@dataclass(frozen=True)
class _Event:
    time: float | None  # None: recalled from the archive's history, time not kept
    kind: str  # new, replaced, failed, steer or log
    text: str


class EventFeed:
    """What happened since the view began: written by hooks and listeners, read by the view.

    Every method is safe from any thread and never raises into its caller (a
    hook runs on the run's thread, a listener inside a steering call).

    Args:
        limit: How many events to keep.
    """

    def __init__(self, limit: int = EVENTS) -> None:
        self._lock = threading.Lock()
        self._events: deque[_Event] = deque(maxlen=limit)
        self._in_generation = 0
        #: Set whenever something happened; the view's thread wakes on it.
        self.changed = threading.Event()

    def add(self, kind: str, text: str) -> None:
        """Records one event and wakes the view."""
        with self._lock:
            self._events.append(_Event(time.time(), kind, text))
        self.changed.set()

    def recall(self, entries: Sequence[HistoryEntry]) -> None:
        """Starts with the cell changes of earlier generations (an archive's history)."""
        with self._lock:
            for entry in entries:
                generation = entry.stats.generation
                for change in entry.changes:
                    kind, text = _change_event(
                        generation, change.cell, change.old_fitness, change.new_fitness
                    )
                    self._events.append(_Event(None, kind, text))

    def on_outcome(self, outcome: Outcome) -> None:
        """Candidate hook: counts the generation's candidates; a failure is an event."""
        with self._lock:
            self._in_generation += 1
        if outcome.failure is not None:
            self.add("failed", f"candidate {outcome.candidate.index} dropped: {outcome.failure}")
        self.changed.set()

    def on_generation(self, report: GenerationReport) -> None:
        """Generation hook: each cell whose elite changed is an event."""
        with self._lock:
            self._in_generation = 0
        for change in report.changes:
            old = None if change.old is None else change.old.val_acc
            self.add(*_change_event(report.generation, change.level, old, change.new.val_acc))
        self.changed.set()

    def steering(self, source: str) -> Any:
        """A listener for ``source``'s listener list: each steering action is an event."""

        def listener(action: str, arguments: Mapping[str, Any]) -> None:
            shown = ", ".join(f"{key}={_argument(value)}" for key, value in arguments.items())
            self.add("steer", f"{source}.{action}({shown})")

        return listener

    def in_generation(self) -> int:
        """Candidates finished in the generation in flight."""
        with self._lock:
            return self._in_generation

    def events(self) -> list[dict[str, str]]:
        """The kept events, oldest first, as JSON values."""
        with self._lock:
            kept = list(self._events)
        return [_event_json(event) for event in kept]


def _change_event(
    generation: int | None, cell: Any, old: float | None, new: float | None
) -> tuple[str, str]:
    """``(kind, text)`` of a cell whose elite changed in (0-based) ``generation``."""
    kind = "new" if old is None else "replaced"
    was = "" if old is None else f" (was {_number(old)})"
    number = "-" if generation is None else str(generation + 1)
    return (
        kind,
        f"generation {number}: cell {_cell_text(cell)} {kind}, {METRIC} {_number(new)}{was}",
    )


def _event_json(event: _Event) -> dict[str, str]:
    clock = (
        "earlier" if event.time is None else time.strftime("%H:%M:%S", time.localtime(event.time))
    )
    return {"time": clock, "kind": event.kind, "text": event.text}


def _argument(value: Any) -> str:
    if isinstance(value, Network):
        return value.id[:8]
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{k}: {_argument(v)}" for k, v in value.items()) + "}"
    return repr(value)


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


def _cell_text(cell: Any) -> str:
    return ",".join(map(str, cell)) if isinstance(cell, tuple) else str(cell)


def live_state(
    selection: Selection, run: Run | None, feed: EventFeed, *, title: str
) -> dict[str, Any]:
    """The view of ``selection`` and ``run`` at this moment, as JSON values.

    Args:
        selection: The archive.
        run: Its run (None when it has none yet).
        feed: The events and the generation in flight.
        title: What the view is of (``Run`` or ``Selection``).
    """
    stats = selection.stats()
    state: dict[str, Any] = {
        "title": title,
        "metric": METRIC,
        "metric_label": "validation accuracy, the fitness",
        "best": stats.best_fitness,
        "mean": stats.mean_fitness,
        "best_test_acc": stats.best_test_acc,
        "filled": stats.filled,
        "cells_total": stats.cells,
        "qd_score": stats.qd_score,
        "queued": len(selection.queued()),
        "events": feed.events(),
        **_grid(selection),
        **_progress(run, feed),
    }
    return state


def _progress(run: Run | None, feed: EventFeed) -> dict[str, Any]:
    if run is None:
        return {"state": "no run", "done": True, "generation": 0, "generations": None}
    status = run.status()
    minutes = status.elapsed / 60
    ended = run.done()
    return {
        "state": status.state,
        "done": ended,
        # The bar counts this run's generations against its total; the archive's
        # generation (the number the log, stats() and watch show) goes beside it.
        "generation": status.completed,
        "archive_generation": status.generation,
        "generations": status.generations,
        "first_generation": run.first_generation,
        "evaluated": status.evaluated,
        "failed": status.failed,
        "elapsed": round(status.elapsed, 1),
        "generations_per_minute": status.completed / minutes if minutes > 0 else None,
        "networks_per_minute": status.evaluated / minutes if minutes > 0 else None,
        "candidates": 0 if ended else feed.in_generation(),
        "candidates_expected": 0 if ended else expected_candidates(run),
        "error": None if status.error is None else f"{type(status.error).__name__}: {status.error}",
    }


def _grid(selection: Selection) -> dict[str, Any]:
    grid = selection.grid()
    elites = selection.elites()
    curation = selection.curation()
    keys: list[Any]
    if len(grid.levels) <= 2 and grid.cells <= MAX_CELLS:
        ranges = [range(1, levels + 1) for levels in grid.levels]
        keys = [k[0] if len(k) == 1 else k for k in itertools.product(*ranges)]
    else:  # too many to draw: the filled and marked ones
        keys = sorted({*elites, *curation.pinned, *curation.favored}, key=_cell_order)
    cells = []
    for key in keys:
        net = elites.get(key)
        cells.append(
            {
                "cell": list(key) if isinstance(key, tuple) else [key],
                "fitness": None if net is None else net.val_acc,
                "test_acc": None if net is None else net.test_acc,
                "layers": None if net is None else net.complexity,
                "id": None if net is None else net.id[:8],
                "pinned": key in curation.pinned,
                "favor": curation.favored.get(key, 1.0),
            }
        )
    return {"measures": list(grid.measures), "levels": list(grid.levels), "cells": cells}


def _cell_order(key: Any) -> tuple[int, ...]:
    return key if isinstance(key, tuple) else (key,)
