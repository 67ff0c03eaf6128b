"""Lineage: walking a network's parent ids back to the seed it was bred from.

Every trained Network carries ``parent_id`` and the ``mutations`` that made it.
Parents may since have left the archive, so runs keep a registry of every
network that bred or became an elite, stored *without weights* (a few hundred
bytes each), and :func:`lineage` looks ids up there, in the Selection and in the
Library. Networks that never bred nor won a cell are not kept: they cannot be
anyone's ancestor. A continual run breeds for days, so the registry keeps the
:data:`LINEAGE_WINDOW` most recently added records and forgets older ones; a
chain that reaches a forgotten ancestor stops there, as it does for one bred in
another session (networks kept in the Library or the Selection are still found).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable

from galapagos_nao.core.network import Network

__all__ = ["LINEAGE_WINDOW", "LineageRegistry", "lineage"]

#: Records a registry keeps: a few hundred bytes to a few KB each.
LINEAGE_WINDOW = 5000


class LineageRegistry:
    """Weightless records by id, the most recent ``max_records`` of them; thread-safe.

    Args:
        max_records: Records kept; adding one more forgets the oldest.
    """

    def __init__(self, *, max_records: int = LINEAGE_WINDOW) -> None:
        self._lock = threading.Lock()
        self._records: OrderedDict[str, Network] = OrderedDict()
        self._max_records = max_records

    def add(self, net: Network) -> None:
        """Keeps a weightless copy of ``net`` (same id, metrics and genome)."""
        with self._lock:
            if net.id in self._records:
                return
        # Copied outside the lock: the copy re-validates the genome.
        light = net if net.weights is None else net.replace(weights=None)
        with self._lock:
            self._records.setdefault(net.id, light)
            while len(self._records) > self._max_records:
                self._records.popitem(last=False)

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


def lineage(net: Network, find: Callable[[str], Network | None]) -> list[Network]:
    """The chain of networks from ``net`` back to the seed it descends from.

    Args:
        net: Where the chain starts.
        find: Looks an ancestor up by id (a run's registry, the archive, the
            Library, ...); None when nothing knows it.

    Returns:
        ``[net, parent, grandparent, …, seed]``. If an ancestor is unknown (bred
        in another session), the chain stops at the last known one, whose
        ``parent_id`` is then not None.
    """
    chain = [net]
    seen = {net.id}
    while chain[-1].parent_id is not None and chain[-1].parent_id not in seen:
        parent = find(chain[-1].parent_id)
        if parent is None:
            break
        chain.append(parent)
        seen.add(parent.id)
    return chain
