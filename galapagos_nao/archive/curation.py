"""Curation: the person's hand on the archive — pins, favor and the veto list.

A :class:`~galapagos_nao.archive.selection.Selection` composes a
:class:`Curation` (the state) and inherits the verbs from :class:`Curated`:

- ``pin(cell)`` / ``unpin(cell)``: a pinned elite keeps its cell; a fitter
  newcomer is held back and recorded in the history (:class:`HeldBack`);
- ``favor(cell, weight)``: how many children the cell's elite gets relative to
  the other parents (1 by default; 0 keeps the cell but breeds nothing); the
  weight belongs to the cell, so a new elite there inherits it;
- ``veto(net_or_id)``: removes the network from the archive and the queue and
  puts its genome on a tabu list no child, newcomer or queued network may match
  (``vetoed()`` shows it, ``clear_vetoes()`` empties it).

Every verb checks its argument, changes the state atomically under the
Selection's lock, and is picked up by the next generation, which reads one
:class:`BreedingPlan`. After a change the Selection's ``listeners`` are told
(the session journal is one), outside the lock but still holding the steering
clock of the Selection's Parameters (:mod:`~galapagos_nao.core.clock`), so
the journal's stamp is the boundary that first saw the change.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from galapagos_nao.archive.curation_state import (
    CurationState,
    GenomeKey,
    Vetoed,
    beats,
    check_cell,
    rank,
)
from galapagos_nao.archive.history import HeldBack, History
from galapagos_nao.config.parameters import Parameters
from galapagos_nao.core.checks import describe
from galapagos_nao.core.listeners import Listeners
from galapagos_nao.core.network import Network
from galapagos_nao.core.typing import CellKey

__all__ = [
    "BreedingPlan",
    "Curated",
    "Curation",
    "CurationState",
    "Vetoed",
    "beats",
    "check_cell",
    "choose_elites",
    "in_grid",
    "rank",
    "rebin_marks",
]


@dataclass(frozen=True)
class BreedingPlan:
    """What one generation breeds from, read under one lock."""

    #: Elites in cell order, then queued networks.
    parents: list[Network]
    #: Children each parent gets relative to the others (favor; 1 for the queue).
    weights: list[float]
    #: Genomes no child may have.
    tabu: frozenset[GenomeKey]
    #: The queue at that moment: key → network (the generation consumes it).
    queued: dict[int, Network]


def _order(cell: Any) -> tuple[int, ...]:
    return cell if isinstance(cell, tuple) else (cell,)


class Curation:
    """The curation state; not locked itself: the Selection's lock guards it."""

    def __init__(self) -> None:
        self.pins: set[Any] = set()
        self.favors: dict[Any, float] = {}
        self.vetoes: dict[GenomeKey, Vetoed] = {}

    def state(self) -> CurationState:
        """A snapshot (plain values)."""
        return CurationState(
            pinned=tuple(sorted(self.pins, key=_order)),
            favored=dict(sorted(self.favors.items(), key=lambda item: _order(item[0]))),
            vetoed=tuple(self.vetoes.values()),
        )

    def is_vetoed(self, net: Network) -> bool:
        """True if ``net``'s genome is on the veto list."""
        return net.layers in self.vetoes

    def weight(self, cell: Any) -> float:
        """The favor of ``cell`` (1 unless set)."""
        return self.favors.get(cell, 1.0)

    def clear(self) -> None:
        """Forgets pins, favor and vetoes."""
        self.pins.clear()
        self.favors.clear()
        self.vetoes.clear()

    def load(self, state: CurationState) -> None:
        """Replaces pins, favor and vetoes with ``state``'s."""
        self.pins = set(state.pinned)
        self.favors = dict(state.favored)
        self.vetoes = {entry.layers: entry for entry in state.vetoed}


def choose_elites(
    pool: Sequence[Network],
    cells: Sequence[Any],
    old: Mapping[Any, Network],
    pins: set[Any],
    pinned_at: Mapping[Any, Network] | None = None,
) -> tuple[dict[Any, Network], list[HeldBack]]:
    """The fittest network per cell, pinned cells keeping their elite.

    Of equally fit networks the smallest wins (see :func:`beats`); of equally
    fit and equally large ones, the first in ``pool``.

    Args:
        pool: Incumbents first (they win ties of fitness and size), then newcomers.
        cells: The cell of each network of ``pool``.
        old: The elites before this selection, by cell.
        pins: Pinned cells.
        pinned_at: Where each pinned elite is, when re-binning moved pins
            (:func:`rebin_marks`); ``old`` when None.

    Returns:
        ``(best, held_back)``: cell → elite, and the newcomers that would have
        beaten a pinned elite.
    """
    at = old if pinned_at is None else pinned_at
    pinned = {cell: at[cell] for cell in pins if cell in at}
    pinned_ids = {id(net) for net in pinned.values()}
    incumbents = {id(net) for net in old.values()}
    best: dict[Any, Network] = {}
    for net, cell in zip(pool, cells, strict=True):
        if id(net) in pinned_ids:
            continue  # a pinned elite stays where it is, even if re-binning moved it
        if cell not in best or beats(net, best[cell]):
            best[cell] = net
    held_back = []
    for cell, elite in sorted(pinned.items(), key=lambda item: _order(item[0])):
        rival = best.get(cell)
        if rival is not None and id(rival) not in incumbents and beats(rival, elite):
            held_back.append(HeldBack(cell, elite.id, elite.fitness, rival.id, rival.fitness))
        best[cell] = elite
    return best, held_back


def in_grid(cell: Any, levels: Sequence[int]) -> bool:
    """True if ``cell`` is a cell of a grid with ``levels`` along its axes."""
    key = cell if isinstance(cell, tuple) else (cell,)
    return len(key) == len(levels) and all(
        isinstance(level, int) and 1 <= level <= top for level, top in zip(key, levels, strict=True)
    )


def rebin_marks(
    curation: Curation,
    old: Mapping[Any, Network],
    new_cells: Mapping[Any, Any],
    levels: Sequence[int],
) -> tuple[dict[Any, Network], list[str]]:
    """Moves pins and favor off cells the grid no longer has (the measures or levels changed).

    A pin follows its elite to the cell that elite now falls in; a favor follows a
    pin, or goes with a line when its cell is gone. Two pins meeting in one cell:
    the fitter elite keeps it, the other pin goes (said).

    Args:
        curation: The state to change (under the Selection's lock).
        old: The elites before this selection, by their old cell.
        new_cells: Old cell → the cell its elite falls in now.
        levels: The new grid's levels.

    Returns:
        ``(old_by_pin, lines)``: the elites keyed so that each pin finds its own,
        and one line per pin or favor moved or dropped.
    """
    lines: list[str] = []
    rekeyed = dict(old)
    moved: dict[Any, Any] = {}
    for cell in sorted((c for c in curation.pins if not in_grid(c, levels)), key=_order):
        target = new_cells.get(cell)
        rival = next((c for c, t in moved.items() if t == target), None)
        taken = target in curation.pins and in_grid(target, levels)
        if target is None or taken or (rival is not None and rank(old[rival]) >= rank(old[cell])):
            curation.pins.discard(cell)
            lines.append(f"pin on cell {cell} dropped: its elite now falls in pinned cell {target}")
            continue
        if rival is not None:
            curation.pins.discard(rival)
            moved.pop(rival)
            lines.append(f"pin on cell {rival} dropped: a fitter pinned elite took cell {target}")
        moved[cell] = target
    for cell, target in moved.items():
        curation.pins.discard(cell)
        curation.pins.add(target)
        rekeyed.pop(cell, None)
        rekeyed[target] = old[cell]
        weight = curation.favors.pop(cell, None)
        if weight is not None:
            curation.favors[target] = weight
        lines.append(f"pin on cell {cell} moved with its elite to cell {target} (re-binned)")
    for cell in sorted((c for c in curation.favors if not in_grid(c, levels)), key=_order):
        weight = curation.favors.pop(cell)
        lines.append(f"favor ×{weight:g} on cell {cell} dropped: the grid has no such cell now")
    return rekeyed, lines


class Curated:
    """The curation verbs of a Selection, which provides the attributes below."""

    _lock: threading.RLock
    _elites: dict[Any, Network]
    _queue: dict[int, Network]
    _curation: Curation
    _history: History
    _in_flight: int | None  # the generation bred but not yet recorded
    _parameters: Parameters  # its clock orders each verb against the run's reads
    #: Told ``(action, arguments)`` after each successful steering call.
    listeners: Listeners

    def _elite_at(self, verb: str, cell: Any) -> Network:
        # Under the lock: the cell must hold an elite for the verb to mean anything.
        found = self._elites.get(cell)
        if found is None:
            filled = sorted(self._elites, key=_order)
            raise KeyError(f"{verb}: no elite at cell {cell!r}; cells with an elite: {filled}")
        return found

    def pin(self, cell: CellKey) -> None:
        """Keeps the elite of ``cell`` there, whatever fitter newcomer arrives.

        A newcomer that would have replaced it is recorded in the next history
        entry's ``held_back``. Pinning a pinned cell changes nothing.

        Raises:
            ValueError: if ``cell`` is not a cell key.
            KeyError: naming the cell (and the filled ones) when it holds no elite.
        """
        check_cell("cell", cell)
        with self._parameters.clock:
            with self._lock:
                self._elite_at("pin", cell)
                self._curation.pins.add(cell)
            self.listeners.notify("pin", {"cell": cell})

    def unpin(self, cell: CellKey) -> None:
        """Lets the elite of ``cell`` be replaced again.

        Raises:
            ValueError: if ``cell`` is not a cell key.
            KeyError: naming the cell (and the pinned ones) when it is not pinned.
        """
        check_cell("cell", cell)
        with self._parameters.clock:
            with self._lock:
                if cell not in self._curation.pins:
                    pinned = sorted(self._curation.pins, key=_order)
                    raise KeyError(f"unpin: cell {cell!r} is not pinned; pinned cells: {pinned}")
                self._curation.pins.discard(cell)
            self.listeners.notify("unpin", {"cell": cell})

    def favor(self, cell: CellKey, weight: float) -> None:
        """Sets how many children the elite of ``cell`` gets relative to other parents.

        Args:
            cell: A cell holding an elite.
            weight: A finite number ≥ 0; 1 is the default, 0 keeps the cell but
                breeds nothing from it, 3 gives it three times a plain share.

        Raises:
            ValueError: if ``cell`` is not a cell key or ``weight`` not a number ≥ 0.
            KeyError: naming the cell (and the filled ones) when it holds no elite.
        """
        check_cell("cell", cell)
        if isinstance(weight, bool) or not isinstance(weight, (int, float)):
            raise ValueError(f"weight must be a number >= 0, got {describe(weight)}")
        if not math.isfinite(weight) or weight < 0:
            raise ValueError(f"weight must be a finite number >= 0, got {weight!r}")
        with self._parameters.clock:
            with self._lock:
                self._elite_at("favor", cell)
                if weight == 1:
                    self._curation.favors.pop(cell, None)
                else:
                    self._curation.favors[cell] = float(weight)
            self.listeners.notify("favor", {"cell": cell, "weight": float(weight)})

    def veto(self, net_or_id: Network | str) -> Vetoed:
        """Removes a network from the archive and the queue, and bans its genome.

        Children, newcomers and queued networks with the same genome are kept
        out until :meth:`clear_vetoes`. A vetoed pinned elite takes its pin with it.

        Args:
            net_or_id: A Network (in the archive or not: its genome is known), or
                the id of an elite or queued network.

        Returns:
            The veto list's entry.

        Raises:
            ValueError: if ``net_or_id`` is neither a Network nor a str.
            KeyError: naming the id when no elite or queued network has it.
        """
        if not isinstance(net_or_id, (Network, str)):
            raise ValueError(f"net_or_id must be a Network or an id, got {describe(net_or_id)}")
        wanted = net_or_id.id if isinstance(net_or_id, Network) else net_or_id
        with self._parameters.clock:
            with self._lock:
                held = {**self._elites, **self._queue}
                found = next((net for net in held.values() if net.id == wanted), None)
                if found is None:
                    if isinstance(net_or_id, str):
                        raise KeyError(f"veto: no elite or queued network has id {wanted!r}")
                    found = net_or_id
                net = found
                entry = Vetoed(net.id, net.layers)
                self._curation.vetoes[net.layers] = entry
                for cell in [c for c, elite in self._elites.items() if elite.layers == net.layers]:
                    del self._elites[cell]
                    self._curation.pins.discard(cell)
                for key in [k for k, queued in self._queue.items() if queued.layers == net.layers]:
                    del self._queue[key]
            self.listeners.notify("veto", {"net": net})
        return entry

    def vetoed(self) -> list[Vetoed]:
        """The veto list, oldest first."""
        with self._lock:
            return list(self._curation.vetoes.values())

    def clear_vetoes(self) -> None:
        """Empties the veto list: those genomes may come back."""
        with self._parameters.clock:
            with self._lock:
                self._curation.vetoes.clear()
            self.listeners.notify("clear_vetoes", {})

    def curation(self) -> CurationState:
        """A snapshot of pins, favor and the veto list."""
        with self._lock:
            return self._curation.state()

    def next_generation(self) -> int:
        """The first generation a change made now takes effect in.

        One after the generation in flight (its children are already bred), else
        one after the last recorded generation, else 0.
        """
        with self._lock:
            if self._in_flight is not None:
                return self._in_flight + 1
        latest = self._history.latest()
        return (
            0 if latest is None or latest.stats.generation is None else latest.stats.generation + 1
        )

    def breeding_plan(self, generation: int | None = None) -> BreedingPlan:
        """What a generation breeds from: parents, their favor, the veto list.

        Args:
            generation: The generation's index; changes made until it is recorded
                count from the next one (:meth:`next_generation`).
        """
        with self._lock:
            self._in_flight = generation
            elites = dict(sorted(self._elites.items(), key=lambda item: _order(item[0])))
            queued = dict(self._queue)
            return BreedingPlan(
                parents=[*elites.values(), *queued.values()],
                weights=[self._curation.weight(c) for c in elites] + [1.0] * len(queued),
                tabu=frozenset(self._curation.vetoes),
                queued=queued,
            )
