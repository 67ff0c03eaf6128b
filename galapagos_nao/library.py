"""The Library: snapshots of networks by id, kept aside from evolution.

Putting a network in the Library keeps it whatever the archive does later; put
it back into the population with ``gn.Selection.put_unevaluated(gn.Library.get(id))``.
"""

from __future__ import annotations

import threading
from typing import Any
from typing import Any

from galapagos_nao._checks import describe
from galapagos_nao.network import Network

__all__ = ["Library"]


class Library:
    """Networks by id; ``gn.Library`` is the shared instance. Thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._nets: dict[str, Network] = {}

    def put(self, net: Network) -> str:
        """Stores ``net`` (records are immutable, so this is a snapshot).

        Returns:
            The network's id.

        Raises:
            ValueError: if ``net`` is not a Network.
        """
        if not isinstance(net, Network):
            raise ValueError(f"net must be a Network, got {describe(net)}")
        with self._lock:
            self._nets[net.id] = net
        return net.id

    def get(self, id: str) -> Network:  # noqa: A002 - the seed's name
        """The network stored under ``id``.

        Raises:
            KeyError: naming the id when it is unknown.
        """
        with self._lock:
            found = self._nets.get(id)
        if found is None:
            raise KeyError(f"no network with id {id!r} in the Library")
        return found

    def get_all(self) -> dict[str, Network]:
        """A snapshot: id → network."""
        with self._lock:
            return dict(self._nets)

    def remove(self, id: str) -> Network:  # noqa: A002 - the seed's name
        """Removes and returns the network stored under ``id``.

        Raises:
            KeyError: naming the id when it is unknown.
        """
        with self._lock:
            found = self._nets.pop(id, None)
        if found is None:
            raise KeyError(f"no network with id {id!r} in the Library")
        return found

    def clear(self) -> None:
        """Forgets every network."""
        with self._lock:
            self._nets.clear()

    def __len__(self) -> int:
        with self._lock:
            return len(self._nets)

    def __contains__(self, id: object) -> bool:
        with self._lock:
            return id in self._nets

    def __repr__(self) -> str:
        return f"Library({len(self)} networks)"

    def _repr_pretty_(self, p: Any, cycle: bool) -> None:
        from galapagos_nao import display

        display.library_pretty(self, p, cycle)

    def _repr_html_(self) -> str:
        from galapagos_nao import display

        return display.library_html(self)

    def _repr_pretty_(self, p: Any, cycle: bool) -> None:
        from galapagos_nao import display

        display.library_pretty(self, p, cycle)

    def _repr_html_(self) -> str:
        from galapagos_nao import display

        return display.library_html(self)
