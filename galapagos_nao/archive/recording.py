"""The archive's record of its generations: a part of the Selection.

:class:`Recorded` is a mixin of :class:`~galapagos_nao.archive.selection.Selection`:
after each generation the run's history hook calls
:meth:`Recorded.record_generation`, which keeps the archive's metrics, the
cells that changed and what pins held back; :meth:`Recorded.history` reads
them back and a resumed run restores them from its workspace.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

from galapagos_nao.archive.history import (
    ArchiveStats,
    HeldBack,
    History,
    HistoryEntry,
    archive_stats,
    cell_changes,
)
from galapagos_nao.core.measures import Grid
from galapagos_nao.core.network import Network

__all__ = ["Recorded"]


class Recorded:
    """History and metrics of a Selection, which provides the attributes below."""

    _lock: threading.RLock
    _elites: dict[Any, Network]
    _history: History
    _held_back: list[HeldBack]  # by the last select, for the next history entry
    _in_flight: int | None  # the generation bred but not yet recorded

    def grid(self) -> Grid:
        """The cells as the last selection drew them (the Selection provides it)."""
        raise NotImplementedError

    def record_generation(
        self,
        generation: int,
        changes: Sequence[Any],
        *,
        evaluated: int,
        failed: int,
        seconds: float,
        first_of_run: bool = False,
        task: str | None = None,
    ) -> HistoryEntry:
        """Appends one generation's metrics and changes to the history.

        The run calls this after each generation (through ``history.history_hook``).

        Args:
            generation: The generation's index.
            changes: What its :meth:`select` returned.
            evaluated: Candidates it trained successfully.
            failed: Candidates it dropped.
            seconds: Its wall time.
            first_of_run: Whether it is the first generation of a run.
            task: The task it trained on, for a run on a task stream.

        Returns:
            The recorded entry.
        """
        grid = self.grid()
        with self._lock:
            stats = archive_stats(
                self._elites,
                grid.cells,
                generation=generation,
                evaluated=evaluated,
                failed=failed,
                seconds=seconds,
                elapsed=self._history.elapsed() + seconds,
            )
            entry = HistoryEntry(
                stats, cell_changes(changes), tuple(self._held_back), first_of_run, task
            )
            self._held_back.clear()
            self._in_flight = None
            self._history.append(entry)
        return entry

    def stats(self) -> ArchiveStats:
        """The latest generation's metrics (coverage, QD-score, fitness, counts, time).

        Before any generation, the metrics of the archive as it is, with zero counts.
        """
        latest = self._history.latest()
        if latest is not None:
            return latest.stats
        grid = self.grid()
        with self._lock:
            return archive_stats(self._elites, grid.cells)

    def history(self) -> list[HistoryEntry]:
        """Every generation's metrics and changes, oldest first (plain values)."""
        return self._history.entries()

    def restore_history(self, entries: Sequence[HistoryEntry | dict[str, Any]]) -> None:
        """Replaces the history, e.g. from a workspace; dicts as ``HistoryEntry.as_dict`` makes.

        Raises:
            ValueError: naming the index of a malformed entry; nothing changes then.
        """
        self._history.restore(entries)
