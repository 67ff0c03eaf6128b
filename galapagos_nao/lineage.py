"""Lineage: walking a network's parent ids back to the seed it was bred from.

Every trained Network carries ``parent_id`` and the ``mutations`` that made it.
Parents may since have left the archive, so runs keep a registry of every
network that bred or became an elite, stored *without weights* (a few hundred
bytes each), and :func:`lineage` looks ids up there, in the Selection and in the
Library. Networks that never bred nor won a cell are not kept: they cannot be
anyone's ancestor.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

from galapagos_nao._checks import describe
from galapagos_nao.network import Network

if TYPE_CHECKING:
    from galapagos_nao.library import Library
    from galapagos_nao.orchestration import GenerationReport, Run
    from galapagos_nao.selection import Selection

__all__ = ["LineageRegistry", "lineage", "lineage_hook", "registry"]


class LineageRegistry:
    """Weightless records by id; thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._records: dict[str, Network] = {}

    def add(self, net: Network) -> None:
        """Keeps a weightless copy of ``net`` (same id, metrics and genome)."""
        with self._lock:
            if net.id in self._records:
                return
        # Copied outside the lock: the copy re-validates the genome.
        light = net if net.weights is None else net.replace(weights=None)
        with self._lock:
            self._records.setdefault(net.id, light)

    def get(self, id: str) -> Network | None:  # noqa: A002 - ids are what we look up
        """The record stored under ``id``, or None."""
        with self._lock:
            return self._records.get(id)

    def clear(self) -> None:
        """Forgets every record."""
        with self._lock:
            self._records.clear()

    def __len__(self) -> int:
        with self._lock:
            return len(self._records)


#: The registry every run feeds (see :func:`lineage_hook`).
registry = LineageRegistry()


def lineage_hook(run: Run) -> Any:
    """A generation hook that registers the generation's parents and new elites.

    Registered in ``orchestration.default_hook_factories``.
    """

    def record(report: GenerationReport) -> None:
        for outcome in report.outcomes:
            if outcome.candidate.parent is not None:
                registry.add(outcome.candidate.parent)
        for change in report.changes:
            registry.add(change.new)

    return record


def _lookup(
    id: str,  # noqa: A002
    selection: Selection,
    library: Library,
) -> Network | None:
    found = registry.get(id)
    if found is not None:
        return found
    for net in selection.get_all().values():
        if net.id == id:
            return net
    return library.get_all().get(id)


def lineage(
    net: Network | str,
    *,
    selection: Selection | None = None,
    library: Library | None = None,
) -> list[Network]:
    """The chain of networks from ``net`` back to the seed it descends from.

    Args:
        net: A Network, or the id of one the Selection, the Library or a run knows.
        selection: Searched for ids; the shared ``gn.Selection`` when None.
        library: Searched for ids; the shared ``gn.Library`` when None.

    Returns:
        ``[net, parent, grandparent, …, seed]``. Records from the registry have
        no weights; fetch the full network from the Library if you kept it.
        If an ancestor is unknown (bred in another session), the chain stops
        at the last known one, whose ``parent_id`` is then not None.

    Raises:
        ValueError: if ``net`` is neither a Network nor a str.
        KeyError: naming the id when ``net`` is an id nothing knows.
    """
    if selection is None or library is None:
        import galapagos_nao

        selection = galapagos_nao.Selection if selection is None else selection
        library = galapagos_nao.Library if library is None else library
    if isinstance(net, str):
        found = _lookup(net, selection, library)
        if found is None:
            raise KeyError(f"no network with id {net!r} in the Selection, the Library or any run")
        net = found
    elif not isinstance(net, Network):
        raise ValueError(f"net must be a Network or an id, got {describe(net)}")
    chain = [net]
    seen = {net.id}
    while chain[-1].parent_id is not None and chain[-1].parent_id not in seen:
        parent = _lookup(chain[-1].parent_id, selection, library)
        if parent is None:
            break
        chain.append(parent)
        seen.add(parent.id)
    return chain
