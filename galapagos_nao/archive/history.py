"""Archive metrics per generation and what each generation changed.

After every generation the Selection appends a :class:`HistoryEntry`: an
:class:`ArchiveStats` record (coverage, QD-score, best and mean fitness,
evaluated and failed counts, time) and one :class:`CellChange` per cell whose
elite changed. Records hold plain values only (ids, not networks) and serialise
to JSON with :meth:`HistoryEntry.as_dict`.

A continual run lasts days, so RAM keeps a window: the last
:data:`HISTORY_WINDOW` entries. Older ones are dropped from memory
(:attr:`History.dropped` counts them); for an archive tracked by a workspace,
every generation's entry stays in the workspace's history rows
(``Workspace.history(run_id)``), where plots and resumes read them.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from galapagos_nao.core.checks import describe
from galapagos_nao.core.network import Network, fitness_or
from galapagos_nao.core.typing import CellKey

__all__ = [
    "HISTORY_WINDOW",
    "ArchiveStats",
    "CellChange",
    "HeldBack",
    "History",
    "HistoryEntry",
    "archive_stats",
]

#: Entries a History keeps in RAM: about 1 KB each, so a few MB at most.
HISTORY_WINDOW = 2000


@dataclass(frozen=True)
class ArchiveStats:
    """The archive's metrics after one generation."""

    #: Generation index (as the run counts it, resumed ones included); None
    #: when computed from an archive no generation has recorded yet.
    generation: int | None
    #: Cells holding an elite.
    filled: int
    #: Cells in the grid: the product of every measure's levels.
    cells: int
    #: filled / cells, in [0, 1].
    coverage: float
    #: Sum of the elites' fitness (validation accuracy): grows with both
    #: coverage and quality.
    qd_score: float
    #: Highest elite fitness; None for an empty archive.
    best_fitness: float | None
    #: Mean elite fitness; None for an empty archive.
    mean_fitness: float | None
    #: Test accuracy of the fittest elite (reported, never selected on).
    best_test_acc: float | None
    #: Candidates trained successfully in this generation.
    evaluated: int
    #: Candidates dropped for a failure in this generation.
    failed: int
    #: Wall time of this generation, in seconds.
    seconds: float
    #: Wall time of every recorded generation so far, this one included.
    elapsed: float


@dataclass(frozen=True)
class CellChange:
    """One cell whose elite changed in a generation."""

    #: The cell: an int level for one measure, a tuple of levels for several.
    cell: CellKey
    #: Id of the elite it replaced; None for a newly filled cell.
    old_id: str | None
    #: Fitness of the replaced elite; None for a newly filled cell.
    old_fitness: float | None
    #: Id of the new elite.
    new_id: str
    #: Fitness of the new elite.
    new_fitness: float | None

    @property
    def is_new(self) -> bool:
        """True when the cell was empty before."""
        return self.old_id is None


@dataclass(frozen=True)
class HeldBack:
    """A newcomer that would have replaced a pinned elite: what the pin cost."""

    #: The pinned cell.
    cell: CellKey
    #: Id of the pinned elite that kept the cell.
    pinned_id: str
    #: Its fitness.
    pinned_fitness: float | None
    #: Id of the fitter newcomer held back by the pin.
    newcomer_id: str
    #: Its fitness.
    newcomer_fitness: float | None


@dataclass(frozen=True)
class HistoryEntry:
    """What one generation left in the archive: its metrics and its changes."""

    #: The metrics after the generation.
    stats: ArchiveStats
    #: Cells whose elite changed, in cell order.
    changes: tuple[CellChange, ...] = ()
    #: Newcomers that would have replaced a pinned elite, in cell order.
    held_back: tuple[HeldBack, ...] = ()
    #: True for the first generation of a run (a new run, or a resumed one).
    first_of_run: bool = False
    #: The task it trained on (its name), when the run was on a task stream.
    task: str | None = None

    @property
    def new_cells(self) -> int:
        """Cells filled for the first time."""
        return sum(change.is_new for change in self.changes)

    @property
    def replaced(self) -> int:
        """Cells whose elite was beaten."""
        return sum(not change.is_new for change in self.changes)

    def as_dict(self) -> dict[str, Any]:
        """Plain, JSON-ready values (tuple cells become lists)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> HistoryEntry:
        """Rebuilds an entry from :meth:`as_dict` output, e.g. read back from JSON.

        Raises:
            ValueError: naming the field when ``data`` does not have the shape.
        """
        try:
            stats = ArchiveStats(**data["stats"])
            changes = tuple(
                CellChange(**{**change, "cell": _cell_key(change["cell"])})
                for change in data.get("changes", ())
            )
            # Entries written before pins existed have no held_back: none were.
            held_back = tuple(
                HeldBack(**{**held, "cell": _cell_key(held["cell"])})
                for held in data.get("held_back", ())
            )
            # Entries written before run starts and tasks were kept: neither is known.
            first_of_run = data.get("first_of_run", False) is True
            task = data.get("task")
        except (KeyError, TypeError) as error:
            raise ValueError(f"data is not a history entry ({error}): {describe(data)}") from None
        return cls(stats, changes, held_back, first_of_run, None if task is None else str(task))


def _cell_key(cell: Any) -> CellKey:
    # JSON turns tuple cells into lists; cells are dict keys, so they must hash.
    return tuple(cell) if isinstance(cell, list) else cell


def _score(net: Network) -> float:
    # An unevaluated elite adds nothing to the QD-score.
    return fitness_or(net, 0.0)


def archive_stats(
    elites: Mapping[Any, Network],
    cells: int,
    *,
    generation: int | None = None,
    evaluated: int = 0,
    failed: int = 0,
    seconds: float = 0.0,
    elapsed: float = 0.0,
) -> ArchiveStats:
    """Computes the metrics of an archive.

    Args:
        elites: Cell → elite.
        cells: Number of cells in the grid (≥ 1).
        generation: The generation the metrics follow, if any.
        evaluated: Candidates trained in that generation.
        failed: Candidates dropped in that generation.
        seconds: Its wall time.
        elapsed: Wall time of all generations so far.
    """
    fitness = [_score(net) for net in elites.values()]
    best = max(elites.values(), key=_score, default=None)
    return ArchiveStats(
        generation=generation,
        filled=len(fitness),
        cells=cells,
        coverage=len(fitness) / cells if cells else 0.0,
        qd_score=float(sum(fitness)),
        best_fitness=max(fitness) if fitness else None,
        mean_fitness=sum(fitness) / len(fitness) if fitness else None,
        best_test_acc=None if best is None else best.test_acc,
        evaluated=evaluated,
        failed=failed,
        seconds=seconds,
        elapsed=elapsed,
    )


def cell_changes(changes: Iterable[Any]) -> tuple[CellChange, ...]:
    """Plain records of the Selection's ``Change`` objects (``level``, ``old``, ``new``)."""
    return tuple(
        CellChange(
            cell=change.level,
            old_id=None if change.old is None else change.old.id,
            old_fitness=None if change.old is None else change.old.fitness,
            new_id=change.new.id,
            new_fitness=change.new.fitness,
        )
        for change in changes
    )


class History:
    """The in-memory history of one archive; thread-safe, readers get copies.

    Args:
        window: Entries kept in RAM; older ones are dropped (counted in :attr:`dropped`).
    """

    def __init__(self, *, window: int = HISTORY_WINDOW) -> None:
        self._lock = threading.Lock()
        self._entries: deque[HistoryEntry] = deque(maxlen=window)
        self._dropped = 0

    @property
    def dropped(self) -> int:
        """Entries dropped from RAM to keep the window (still in a tracking workspace)."""
        with self._lock:
            return self._dropped

    def append(self, entry: HistoryEntry) -> None:
        """Adds one generation's entry, dropping the oldest when the window is full."""
        with self._lock:
            self._dropped += len(self._entries) == self._entries.maxlen
            self._entries.append(entry)

    def entries(self) -> list[HistoryEntry]:
        """The entries in the window, oldest first."""
        with self._lock:
            return list(self._entries)

    def latest(self) -> HistoryEntry | None:
        """The last entry, or None before any generation."""
        with self._lock:
            return self._entries[-1] if self._entries else None

    def elapsed(self) -> float:
        """Wall time of every recorded generation."""
        with self._lock:
            return self._entries[-1].stats.elapsed if self._entries else 0.0

    def restore(self, entries: Sequence[HistoryEntry | Mapping[str, Any]]) -> None:
        """Replaces the history, e.g. from a workspace; dicts are read with ``from_dict``.

        Raises:
            ValueError: naming the index of an entry that is neither; nothing changes then.
        """
        restored = []
        for index, entry in enumerate(entries):
            if isinstance(entry, HistoryEntry):
                restored.append(entry)
            elif isinstance(entry, Mapping):
                try:
                    restored.append(HistoryEntry.from_dict(entry))
                except ValueError as error:
                    raise ValueError(f"entries[{index}]: {error}") from None
            else:
                raise ValueError(
                    f"entries[{index}] must be a HistoryEntry or a dict, got {describe(entry)}"
                )
        with self._lock:
            self._entries.clear()
            self._entries.extend(restored)  # the deque keeps the window's last entries
            self._dropped = len(restored) - len(self._entries)

    def clear(self) -> None:
        """Forgets every entry."""
        with self._lock:
            self._entries.clear()
            self._dropped = 0

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)
