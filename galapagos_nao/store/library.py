"""The Library: snapshots of networks by id, kept aside from evolution.

Putting a network in the Library keeps it whatever the archive does later; put
it back into the population with ``gn.Selection.put_unevaluated(gn.Library.get(id))``.

A Library given a workspace is durable: :meth:`Library.put` returns once the
network is committed to the workspace file, and a new session finds it there.
``gn.Library`` uses the current workspace (:func:`galapagos_nao.store.workspace.get`);
``Library()`` on its own keeps networks in memory only.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from pathlib import Path

from galapagos_nao.core.bindings import Viewable, user_dir
from galapagos_nao.core.checks import describe
from galapagos_nao.core.listeners import Listeners
from galapagos_nao.core.network import Network
from galapagos_nao.core.record_checks import check_record
from galapagos_nao.store import persistence
from galapagos_nao.store.persistence import CorruptFileError
from galapagos_nao.store.workspace import Workspace

__all__ = ["Library"]


class Library(Viewable):
    """Networks by id; ``gn.Library`` is the shared instance. Thread-safe.

    Args:
        workspace: Where entries are kept durably: a Workspace, a callable
            returning the one to use at each call (``gn.Library`` passes
            ``workspace.get``), or None to keep them in memory only.

    Attributes:
        listeners: Told ``put``, ``remove`` and ``import_`` after each succeeded.
    """

    def __init__(self, *, workspace: Workspace | Callable[[], Workspace] | None = None) -> None:
        if not (workspace is None or isinstance(workspace, Workspace) or callable(workspace)):
            raise ValueError(
                f"workspace must be a Workspace, a callable or None, got {describe(workspace)}"
            )
        self._lock = threading.Lock()
        self._nets: dict[str, Network] = {}
        self._workspace = workspace
        # The workspace (and its data version) the in-memory copy was read from.
        self._loaded: tuple[Workspace, int] | None = None
        # Writes committed so far; a load that overlaps one is read again (see _sync).
        self._writes = 0
        self._broken: dict[str, str] = {}  # id -> what is wrong with its stored bytes
        self.listeners = Listeners()

    @property
    def workspace(self) -> Workspace | None:
        """The workspace entries are kept in, or None for an in-memory Library."""
        found = self._workspace
        if found is None or isinstance(found, Workspace):
            return found
        return found()

    def _sync(self) -> Workspace | None:
        """Reads the workspace's entries if they may have changed since the last read.

        The workspace is the source of truth and a load is slow, so a write of
        this Library may commit while a load is running; the load then cannot
        tell whether it saw that write. Every write bumps :attr:`_writes` after
        its commit, and a load that overlapped one is discarded and read again,
        so the in-memory copy never goes back to a state without a committed put.
        (``PRAGMA data_version`` only notices other connections' commits.)
        """
        store = self.workspace
        if store is None:
            return None
        while True:
            version = store.data_version()
            with self._lock:
                if self._loaded == (store, version):
                    return store
                writes = self._writes
            nets, broken = store.load_library()
            with self._lock:
                if self._writes == writes:
                    self._nets, self._broken, self._loaded = nets, broken, (store, version)
                    return store
            # A write committed during the load: read again.

    def _committed(self, store: Workspace | None, change: Callable[[], object]) -> None:
        """Applies a committed write to the in-memory copy (under the lock) and counts it."""
        with self._lock:
            self._writes += 1
            if store is None or (self._loaded is not None and self._loaded[0] is store):
                change()

    def __dir__(self) -> list[str]:
        # What the session uses stays out of ``gn.Library.<Tab>``.
        return user_dir(self, frozenset({"listeners", "workspace"}))

    def put(self, net: Network) -> str:
        """Stores ``net`` (records are immutable, so this is a snapshot).

        Returns:
            The network's id.

        Raises:
            ValueError: naming the field, if ``net`` is not a Network or holds
                what a later session could not read back (see
                :func:`~galapagos_nao.core.record_checks.check_record`); nothing
                is stored then.
        """
        check_record(net)  # an in-memory Library too: it may be given a workspace later
        self._store([net])
        self.listeners.notify("put", {"net": net})
        return net.id

    def _store(self, nets: list[Network]) -> None:
        store = self._sync()
        if store is not None:  # committed before the in-memory copy changes: durable on return
            store.put_library({net.id: persistence.to_bytes(net) for net in nets})

        def change() -> None:
            for net in nets:
                self._nets[net.id] = net
                self._broken.pop(net.id, None)

        self._committed(store, change)

    def get(self, id: str) -> Network:  # noqa: A002 - the seed's name
        """The network stored under ``id``.

        Raises:
            KeyError: naming the id when it is unknown.
            CorruptFileError: naming the workspace file and the entry when its
                stored bytes are damaged.
        """
        self._sync()
        with self._lock:
            found = self._nets.get(id)
            broken = self._broken.get(id)
        if broken is not None:
            raise CorruptFileError(broken)
        if found is None:
            raise KeyError(f"no network with id {id!r} in the Library")
        return found

    def get_all(self) -> dict[str, Network]:
        """A snapshot: id → network (entries whose stored bytes are damaged are left out)."""
        self._sync()
        with self._lock:
            return dict(self._nets)

    def remove(self, id: str) -> Network:  # noqa: A002 - the seed's name
        """Removes and returns the network stored under ``id``.

        Raises:
            KeyError: naming the id when it is unknown.
        """
        store = self._sync()
        with self._lock:
            found = self._nets.get(id)
        if found is None:
            raise KeyError(f"no network with id {id!r} in the Library")
        if store is not None:
            store.remove_library(id)
        self._committed(store, lambda: self._nets.pop(id, None))
        self.listeners.notify("remove", {"id": id})
        return found

    def clear(self) -> None:
        """Forgets every network (in the workspace too)."""
        store = self._sync()
        if store is not None:
            store.clear_library()

        def change() -> None:
            self._nets.clear()
            self._broken.clear()

        self._committed(store, change)

    def export(self, directory: str | os.PathLike[str]) -> list[Path]:
        """Saves every network as ``<id>.safetensors`` in ``directory`` (created if needed).

        Returns:
            The files written.
        """
        return persistence.export_networks(self.get_all().values(), directory)

    def import_(self, directory: str | os.PathLike[str], *, replace: bool = False) -> list[str]:
        """Puts every network file of ``directory`` into the Library, all or none.

        Args:
            directory: The folder of ``*.safetensors`` network files.
            replace: True lets a file replace the entry with the same id; by
                default such an id is refused, so an import never silently
                changes what is stored.

        Returns:
            The ids imported.

        Raises:
            ValueError: if ``directory`` holds no network files, two of them
                hold the same id, or (unless ``replace``) an id is already
                in the Library; nothing is imported then.
            FileNotFoundError: if it is not a folder.
            CorruptFileError: naming each damaged file (nothing is imported then).
        """
        if not isinstance(replace, bool):
            raise ValueError(f"replace must be True or False, got {describe(replace)}")
        nets = persistence.read_networks(directory)
        ids = [net.id for net in nets]
        twice = sorted({net_id for net_id in ids if ids.count(net_id) > 1})
        if twice:
            raise ValueError(f"directory: several files hold the network id(s) {twice}")
        if not replace:
            self._sync()
            with self._lock:
                present = [
                    net_id for net_id in ids if net_id in self._nets or net_id in self._broken
                ]
            if present:
                raise ValueError(
                    f"directory: the Library already holds {present}; nothing was imported "
                    "(import_(directory, replace=True) replaces them)"
                )
        self._store(nets)
        self.listeners.notify("import_", {"directory": directory, "nets": nets, "replace": replace})
        return ids

    def __len__(self) -> int:
        self._sync()
        with self._lock:
            return len(self._nets)

    def __contains__(self, id: object) -> bool:
        self._sync()
        with self._lock:
            return id in self._nets

    def __repr__(self) -> str:
        return f"Library({len(self)} networks)"
