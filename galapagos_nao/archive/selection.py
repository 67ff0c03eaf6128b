"""The archive: MAP-Elites along complexity, and the queue of unevaluated networks.

Cutoffs split ``[0, max complexity]`` into ``complexity_levels`` equal intervals
(4 layers, 2 levels → ``[2, 4]``), the max capped at ``evolution.max_layers``
(16 by default; children are never bred past it); a network belongs to the first
level (1-based) whose cutoff is ≥ its complexity and becomes that level's elite
when its fitness (validation accuracy) is higher, or equal and its network smaller.
Each :meth:`Selection.select` re-buckets the current elites together with the
newcomers, so a change of ``complexity_levels`` or of the complexity range keeps
every elite that still wins its level.

The axes are the behaviour measures named in Parameters (``selection.measures``,
``["layers"]`` by default: the seed's complexity; see :mod:`~galapagos_nao.core.measures`).
Cells are int levels for one measure and tuples of levels for several. After every
generation the archive's metrics and changes go to its :meth:`Selection.history`.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Sequence
from typing import Any

from galapagos_nao.archive.axes import Axes, seed_cutoffs
from galapagos_nao.archive.curation import (
    Curated,
    Curation,
    CurationState,
    beats,
    check_cell,
    choose_elites,
    rank,
    rebin_marks,
)
from galapagos_nao.archive.history import (
    HeldBack,
    History,
)
from galapagos_nao.archive.recording import Recorded
from galapagos_nao.archive.selection_records import AddStatus, Change, RunClaim
from galapagos_nao.config.parameters import Parameters
from galapagos_nao.config.settings import Settings
from galapagos_nao.core.bindings import Viewable, user_dir
from galapagos_nao.core.checks import check_int, describe
from galapagos_nao.core.listeners import Listeners
from galapagos_nao.core.measures import Grid
from galapagos_nao.core.network import Network
from galapagos_nao.core.record_checks import check_record
from galapagos_nao.core.typing import CellKey

__all__ = ["AddStatus", "Change", "Selection"]

logger = logging.getLogger("galapagos_nao.archive.selection")


def _check_network(name: str, net: Any) -> Network:
    if not isinstance(net, Network):
        raise ValueError(f"{name} must be a Network, got {describe(net)}")
    return net


def _storable(net: Network) -> bool:
    """False, logging why, for a network a checkpoint could not read back: dropped, not raised."""
    try:
        check_record(net)
    except ValueError as error:
        logger.warning("Selection: network %s is not kept: %s", net.id, error)
        return False
    return True


def _cell_order(item: tuple[CellKey, Network]) -> tuple[int, ...]:
    # Ints and tuples compare as tuples, so a mix (measures just changed) still sorts.
    key = item[0]
    return key if isinstance(key, tuple) else (key,)


def _sorted_cells(cells: dict[Any, Network]) -> dict[Any, Network]:
    return dict(sorted(cells.items(), key=_cell_order))


class Selection(Curated, Recorded, Viewable):
    """Elites by level plus a queue of networks waiting for the next generation.

    ``gn.Selection`` is the shared instance; make your own for an isolated run.
    Every operation is atomic under an internal lock and readers get snapshots.
    The curation verbs (``pin``, ``unpin``, ``favor``, ``veto``, …) come from
    :class:`~galapagos_nao.archive.curation.Curated`; :attr:`listeners` are told
    each steering call (``put``, ``put_unevaluated``, ``clear`` and the verbs)
    after it succeeded.

    Args:
        parameters: Where ``complexity_levels`` is read; a fresh
            :class:`Parameters` of its own when None (``gn.Selection`` is made
            with the shared ``gn.Parameters``).
    """

    #: Name of this object's section in Parameters (``gn.Parameters.put(gn.Selection, …)``).
    PARAMETER_SECTION = "selection"
    #: What runs, checkpoints and tools call, left out of ``gn.Selection.<Tab>``.
    _INTERNAL = frozenset(
        {
            "PARAMETER_SECTION",
            "breeding_plan",
            "claim",
            "cutoffs",
            "level_of",
            "listeners",
            "next_generation",
            "record_generation",
            "restore",
            "restore_history",
            "select",
        }
    )

    def __dir__(self) -> list[str]:
        return user_dir(self, self._INTERNAL)

    def __init__(self, *, parameters: Parameters | None = None) -> None:
        self._parameters = Parameters() if parameters is None else parameters
        self._lock = threading.RLock()
        self._elites: dict[Any, Network] = {}  # CellKey -> elite
        self._queue: dict[int, Network] = {}  # negative keys, as in the seed
        self._next_queue_key = -1
        self._run: RunClaim | None = None
        self._grid: Grid | None = None  # as the last select drew it
        self._history = History()
        self._curation = Curation()
        self._held_back: list[HeldBack] = []  # by the last select, for the next history entry
        self._in_flight: int | None = None
        self.listeners = Listeners()

    @property
    def parameters(self) -> Parameters:
        """The Parameters this archive reads ``complexity_levels`` from."""
        return self._parameters

    # -- reading -------------------------------------------------------------

    def get_all(self) -> dict[Any, Network]:
        """A snapshot: level → elite, plus queued networks at negative keys.

        With several measures the elites' keys are tuples of levels, one per measure.
        """
        with self._lock:
            merged = _sorted_cells(self._elites)
            merged.update(self._queue)
            return merged

    def get(self, level: CellKey) -> Network | None:
        """The elite (or queued network, for a negative key) at ``level``, or None."""
        with self._lock:
            queued = self._queue.get(level) if isinstance(level, int) else None
            return self._elites.get(level, queued)

    def elites(self) -> dict[Any, Network]:
        """A snapshot of the elites only, by cell."""
        with self._lock:
            return _sorted_cells(self._elites)

    def queued(self) -> dict[int, Network]:
        """A snapshot of the networks waiting for the next generation."""
        with self._lock:
            return dict(self._queue)

    def __len__(self) -> int:
        with self._lock:
            return len(self._elites) + len(self._queue)

    # -- writing -------------------------------------------------------------

    def put(self, level: CellKey, net: Network) -> AddStatus:
        """Makes ``net`` the elite of ``level`` if it beats the current one.

        It beats it by being fitter, or as fit and smaller (fewer layers, then
        fewer parameters).

        Raises:
            ValueError: if ``level`` is not an int ≥ 1 (or a tuple of them) or
                ``net`` is not an evaluated Network that a checkpoint can read
                back (see :func:`~galapagos_nao.core.record_checks.check_record`).
        """
        check_cell("level", level)
        check_record(net, "net")
        if net.fitness is None:
            raise ValueError(
                f"net {net.id!r} has no val_acc; use put_unevaluated() for untrained networks"
            )
        with self._parameters.clock:
            with self._lock:
                self._refuse_vetoed("net", net)
                old = self._elites.get(level)
                if old is not None and not beats(net, old):
                    return AddStatus.NOT_ADDED
                self._elites[level] = net
            self.listeners.notify("put", {"level": level, "net": net})
            return AddStatus.NEW if old is None else AddStatus.IMPROVE_EXISTING

    def put_unevaluated(self, net: Network | Sequence[Any]) -> int:
        """Queues a network (or a bare genome) for the next generation.

        It shows up in :meth:`get_all` at a negative key until a generation
        has bred from it; then only elites stay. (If every child drawn from it is
        dropped at breeding, say by ``evolution.forbid``, it stays queued.)

        Returns:
            The negative key it was queued at.

        Raises:
            ValueError: if ``net`` is neither a Network nor a valid genome, holds
                what a checkpoint could not read back (see ``check_record``), or
                its genome is vetoed (see :meth:`veto`).
        """
        record = net if isinstance(net, Network) else Network(net)  # type: ignore[arg-type]
        check_record(record, "net")
        with self._parameters.clock:
            with self._lock:
                self._refuse_vetoed("net", record)
                key = self._next_queue_key
                self._next_queue_key -= 1
                self._queue[key] = record
            self.listeners.notify("put_unevaluated", {"net": record, "key": key})
        return key

    def _refuse_vetoed(self, name: str, net: Network) -> None:
        if self._curation.is_vetoed(net):
            vetoed = self._curation.vetoes[net.layers]
            raise ValueError(
                f"{name} {net.id!r} has the genome of vetoed network {vetoed.id!r}; "
                "clear_vetoes() lets it back"
            )

    def clear(self) -> None:
        """Empties the archive, the queue, the history and the curation (pins, favor, vetoes)."""
        with self._parameters.clock:
            with self._lock:
                self._curation.clear()
                self._held_back.clear()
                self._in_flight = None
                self._elites.clear()
                self._queue.clear()
                self._next_queue_key = -1
                self._grid = None
                self._history.clear()
            self.listeners.notify("clear", {})

    def restore(
        self,
        elites: dict[Any, Network],
        queue: dict[int, Network] | None = None,
        curation: CurationState | None = None,
    ) -> None:
        """Replaces the archive wholesale, e.g. from a checkpoint (cells: ints or tuples).

        Args:
            elites: Cell → elite.
            queue: Negative key → queued network.
            curation: Pins, favor and vetoes to restore; None keeps the current
                ones (pins only where an elite is).

        Raises:
            ValueError: naming the cell or key of a network that a checkpoint
                could not read back; nothing changes then.
        """
        for level, net in elites.items():
            check_cell("level", level)
            check_record(net, f"elites[{level}]")
        for key, net in (queue or {}).items():
            check_record(net, f"queue[{key}]")
        with self._lock:
            self._elites = dict(elites)
            if curation is not None:
                self._curation.load(curation)
            self._curation.pins &= set(self._elites)  # a pin needs an elite in its cell
            self._grid = None
            # Nothing is in flight in a restored archive (another run's generation was).
            self._in_flight = None
            self._held_back.clear()
            self._queue = dict(queue or {})
            self._next_queue_key = min([-1, *(k - 1 for k in self._queue)])

    # -- the generation's view -------------------------------------------------

    def cutoffs(self, nets: Iterable[Network], complexity_levels: int | None = None) -> list[float]:
        """The seed's cutoffs: ``max complexity * i / levels`` for ``i`` in ``1..levels``.

        The max is capped at ``evolution.max_layers`` (None: no cap), as :meth:`select` caps it.
        """
        complexities = (net.complexity for net in nets)
        cap = self._parameters.get("evolution", "max_layers")
        return seed_cutoffs(complexities, self._levels(complexity_levels), cap)

    def level_of(self, net: Network, cutoffs: Sequence[float]) -> int:
        """The first level (1-based) whose cutoff is ≥ the net's complexity."""
        for index, cutoff in enumerate(cutoffs):
            if net.complexity <= cutoff:
                return index + 1
        return len(cutoffs)

    def select(
        self,
        nets: Iterable[Network],
        *,
        complexity_levels: int | None = None,
        consumed: Iterable[int] = (),
        settings: Settings | None = None,
    ) -> list[Change]:
        """Re-buckets the elites with ``nets`` and keeps the fittest per cell.

        Args:
            nets: Evaluated networks; unevaluated ones are ignored, and so are
                ones a checkpoint could not read back (logged: an evaluator's bug).
            complexity_levels: Levels of the ``layers`` measure; overrides
                ``settings`` and Parameters when given.
            consumed: Queue keys whose networks this generation has bred from;
                they leave the queue.
            settings: The settings to use (a run passes its generation's):
                the ``selection`` section, and ``evolution.max_layers``, which
                caps the ``layers`` axis; read from Parameters when None.

        Returns:
            The cells whose elite changed to one of ``nets``.
        """
        newcomers = [_check_network(f"nets[{i}]", n) for i, n in enumerate(nets)]
        newcomers = [n for n in newcomers if n.fitness is not None and _storable(n)]
        axes = Axes.read(
            self._parameters.settings() if settings is None else settings, complexity_levels
        )
        with self._lock:
            # A vetoed genome never re-enters, even bred again or queued before the veto.
            newcomers = [n for n in newcomers if not self._curation.is_vetoed(n)]
            old = dict(self._elites)
            pool = [*old.values(), *newcomers]  # incumbents first: they win full ties
            grid, cells = axes.bin(pool)
            # Pins and favor on cells the grid no longer has follow their elites (or go).
            new_cells = {cell: cells[index] for index, cell in enumerate(old)}
            pinned_at, lines = rebin_marks(self._curation, old, new_cells, grid.levels)
            best, held_back = choose_elites(
                pool, cells, old, self._curation.pins, pinned_at=pinned_at
            )
            self._held_back.extend(held_back)
            self._elites = _sorted_cells(best)
            self._grid = grid
            for key in consumed:
                self._queue.pop(key, None)
        for line in lines:
            logger.warning("The grid changed: %s", line)
        incumbents = {id(n) for n in old.values()}
        return [
            Change(level, old.get(level), net)
            for level, net in self._elites.items()
            if id(net) not in incumbents
        ]

    def _levels(self, complexity_levels: int | None) -> int:
        if complexity_levels is None:
            return int(self._parameters.get(self, "complexity_levels"))
        return check_int("complexity_levels", complexity_levels, minimum=1)

    def grid(self) -> Grid:
        """The cells as the last selection drew them (measures, levels, edges).

        Before any selection, the grid the current settings draw over the elites.
        """
        axes = Axes.read(self._parameters.settings())
        with self._lock:
            if self._grid is not None:
                return self._grid
            return axes.bin(list(self._elites.values()))[0]

    # -- run ownership -------------------------------------------------------

    def claim(self, run: RunClaim) -> None:
        """Marks ``run`` as this archive's run; raises if another is still running."""
        with self._lock:
            if self._run is not None and self._run is not run and not self._run.done():
                raise RuntimeError(
                    f"this Selection already has a run in progress ({self._run!r}); "
                    "stop it with run.stop() or use another Selection"
                )
            self._run = run

    @property
    def run(self) -> RunClaim | None:
        """The run that last evolved this archive, if any."""
        with self._lock:
            return self._run

    def __repr__(self) -> str:
        with self._lock:
            levels = {k: round(rank(v), 4) for k, v in _sorted_cells(self._elites).items()}
            return f"Selection(elites={levels}, queued={len(self._queue)})"
