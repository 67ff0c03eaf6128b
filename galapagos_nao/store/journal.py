"""The session journal: every steering action, with when and where in the run it took effect.

A person steers a run by changing Parameters, queueing networks, pinning,
favoring and vetoing cells, keeping snapshots and starting or stopping runs.
The :class:`Journal` keeps one :class:`JournalEntry` per action: its wall time,
the archive generation it first takes effect in, the action's name
(``Parameters.put``, ``Selection.pin``, ``Library.put``, ``evolve``, …) and its
arguments as plain JSON values, networks by id with their genome inline.

Recording is explicit: ``Parameters``, ``Selection``, ``Library`` and ``Run``
(below this module or beside it) own a listener list; the
:class:`~galapagos_nao.run.api.Session` appends :meth:`Journal.listener` to
those of its shared objects and records its own actions with
:meth:`Journal.record`. Entries go to the workspace's ``journal`` table when the
session's archive is tracked by an open workspace (so the journal survives a
restart) and stay in memory otherwise, moving into the workspace once there is
one. ``gn.journal()`` shows the entries as a table.
"""

from __future__ import annotations

import logging
import math
import os
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from galapagos_nao.core.bindings import Viewable
from galapagos_nao.core.checks import describe
from galapagos_nao.core.listeners import Listener
from galapagos_nao.core.network import Network
from galapagos_nao.store.workspace import Workspace, WorkspaceError

__all__ = ["Journal", "JournalEntry", "JournalView", "describe_arguments", "plain"]

logger = logging.getLogger("galapagos_nao.store.journal")


def plain(value: Any) -> Any:
    """``value`` as JSON values: a network becomes its id and genome, tuples lists.

    What has no JSON form (a task, a callable) is described in one line.
    """
    if isinstance(value, Network):
        return {"id": value.id, "layers": [[name, list(params)] for name, params in value.layers]}
    if isinstance(value, Mapping):
        return {str(key): plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(item) for item in value]
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    return describe(value)


def describe_arguments(arguments: Mapping[str, Any]) -> str:
    """An action's :func:`plain` arguments in one line: ``key=value``, networks by short id."""
    return ", ".join(f"{key}={_argument_text(value)}" for key, value in arguments.items())


def _argument_text(value: Any) -> str:
    # Networks show by short id: the genome inline would drown a table row.
    if isinstance(value, Mapping) and set(value) == {"id", "layers"}:
        return str(value["id"])[:8]
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{k}: {_argument_text(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(_argument_text(v) for v in value) + "]"
    return repr(value) if isinstance(value, str) else str(value)


@dataclass(frozen=True)
class JournalEntry:
    """One steering action."""

    #: Its place in the journal (1-based; the workspace's row number once stored).
    seq: int
    #: ``time.time()`` when it was recorded.
    time: float
    #: The first archive generation it takes effect in.
    generation: int
    #: What was done: ``Parameters.put``, ``Selection.veto``, ``evolve``, …
    action: str
    #: Its arguments as plain JSON values (networks: ``{"id", "layers"}``).
    arguments: Mapping[str, Any]


@dataclass(frozen=True)
class JournalView(Viewable):
    """A snapshot of the journal: what ``gn.journal()`` returns (a table in IPython)."""

    entries: tuple[JournalEntry, ...]

    def __len__(self) -> int:
        return len(self.entries)

    def __iter__(self) -> Iterator[JournalEntry]:
        return iter(self.entries)

    def __getitem__(self, index: int) -> JournalEntry:
        return self.entries[index]

    def __repr__(self) -> str:
        return f"<Journal: {len(self.entries)} actions>"


class Journal:
    """The steering actions of one session, in order. Thread-safe.

    Args:
        workspace: Returns the workspace to keep entries in, or None to keep
            them in memory (for now); called at each record and read.
        generation: Returns the archive generation an action made now takes
            effect in (``Selection.next_generation``).
    """

    def __init__(
        self,
        *,
        workspace: Callable[[], Workspace | None] | None = None,
        generation: Callable[[], int] | None = None,
    ) -> None:
        self._workspace = workspace
        self._generation = generation
        # One lock over recording and reading, held across the journal's own SQLite
        # write: entries must land in the order they were made, and only recorders
        # and readers of the journal ever wait on it.
        self._lock = threading.Lock()
        self._pending: list[JournalEntry] = []  # not (yet) in a workspace
        self._warned = False

    def listener(self, source: str) -> Listener:
        """A listener recording ``source.action`` (append it to an object's ``listeners``)."""

        def record(action: str, arguments: Mapping[str, Any]) -> None:
            self.record(f"{source}.{action}", arguments)

        return record

    def record(self, action: str, arguments: Mapping[str, Any]) -> JournalEntry:
        """Appends one action; ``arguments`` are stored as :func:`plain` makes them."""
        generation = 0 if self._generation is None else int(self._generation())
        with self._lock:
            entry = JournalEntry(
                seq=len(self._pending) + 1,
                time=time.time(),
                generation=generation,
                action=str(action),
                arguments=plain(dict(arguments)),
            )
            self._pending.append(entry)
            self._flush(self._store())
        return entry

    def entries(self) -> list[JournalEntry]:
        """Every action, oldest first: the workspace's, then any not stored yet."""
        with self._lock:
            store = self._store()
            self._flush(store)
            stored = [] if store is None else [_entry(row) for row in store.journal_rows()]
            offset = len(stored)
            waiting = [
                JournalEntry(offset + i + 1, e.time, e.generation, e.action, e.arguments)
                for i, e in enumerate(self._pending)
            ]
            return stored + waiting

    def __call__(self) -> JournalView:
        """The journal as a table (``gn.journal()``)."""
        return JournalView(tuple(self.entries()))

    def __len__(self) -> int:
        return len(self.entries())

    def __repr__(self) -> str:
        return f"<Journal: {len(self)} actions>"

    def _store(self) -> Workspace | None:
        found = None if self._workspace is None else self._workspace()
        return None if found is None or found.closed else found

    def _flush(self, store: Workspace | None) -> None:
        # Under self._lock. A read-only view keeps entries in memory (said once).
        if store is None or not self._pending or store.read_only:
            if store is not None and store.read_only and not self._warned:
                self._warned = True
                logger.warning("%s is read-only here: the journal stays in memory", store.path)
            return
        rows = [(e.time, e.generation, e.action, dict(e.arguments)) for e in self._pending]
        try:
            store.append_journal(rows)
        except WorkspaceError as error:
            logger.warning("journal kept in memory: %s", error)
            return
        self._pending.clear()


def _entry(row: Mapping[str, Any]) -> JournalEntry:
    return JournalEntry(
        seq=int(row["seq"]),
        time=float(row["time"]),
        generation=int(row["generation"]),
        action=str(row["action"]),
        arguments=row["arguments"],
    )
