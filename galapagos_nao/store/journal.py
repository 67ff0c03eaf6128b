"""The session journal: every steering action, with when and where in the run it took effect.

A person steers a run by changing Parameters, queueing networks, pinning,
favoring and vetoing cells, keeping snapshots and starting or stopping runs.
The :class:`Journal` keeps one :class:`JournalEntry` per action: its wall time,
the boundary of the run that first saw it (generation and phase, from the
steering clock: :mod:`~galapagos_nao.core.clock`), the process that made it,
the action's name (``Parameters.put``, ``Selection.pin``, ``Library.put``,
``evolve``, …) and its arguments as plain JSON values: networks by id with
their genome and fingerprint inline.

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

import dataclasses
import logging
import math
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from galapagos_nao.core.bindings import Viewable
from galapagos_nao.core.checks import describe
from galapagos_nao.core.clock import PHASES, Stamp
from galapagos_nao.core.fingerprint import fingerprint
from galapagos_nao.core.listeners import Listener
from galapagos_nao.core.network import Network
from galapagos_nao.store.workspace import Workspace, WorkspaceError
from galapagos_nao.store.workspace.journal_table import JournalRow

__all__ = ["Journal", "JournalEntry", "JournalView", "describe_arguments", "plain"]

logger = logging.getLogger("galapagos_nao.store.journal")


def plain(value: Any) -> Any:
    """``value`` as JSON values: a network becomes its id, genome and fingerprint; tuples lists.

    A network keeps what rebuilds it when it was never trained (shapes, classes)
    and what identifies it when it was (``trained`` and its
    :func:`~galapagos_nao.core.fingerprint.fingerprint`). What has no JSON form
    (a task, a callable) is described in one line.
    """
    if isinstance(value, Network):
        return {
            "id": value.id,
            "layers": [[name, list(params)] for name, params in value.layers],
            "input_shape": list(value.input_shape),
            "n_classes": value.n_classes,
            "trained": value.weights is not None or value.fitness is not None,
            "fingerprint": fingerprint(value),
        }
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
    if isinstance(value, Mapping) and {"id", "layers"} <= set(value):
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
    #: Its arguments as plain JSON values (networks: ``{"id", "layers", "fingerprint", …}``).
    arguments: Mapping[str, Any]
    #: Before what in that generation: ``breeding`` or ``selection`` (None: not recorded).
    phase: str | None = None
    #: The process (journal) that recorded it; a new one starts from fresh objects.
    session: str | None = None
    #: The experiment whose journal it belongs to (None: not known yet, kept in memory).
    experiment: str | None = None

    @property
    def stamp(self) -> Stamp | None:
        """The boundary it took effect at, or None when its phase was not recorded."""
        return None if self.phase is None else Stamp(self.generation, self.phase)


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
            them in memory (for now); called at each record.
        position: Returns the boundary an action made now takes effect at
            (``SteeringClock.now`` of the session's Parameters; steering
            actions record while holding that clock).
        read_workspace: Returns the workspace to read entries from (opening
            it if needed: a new process shows its experiment's earlier
            actions); ``workspace`` when None.
        experiment: Returns the name of the experiment an action made now
            belongs to (it is stored in that experiment's journal); None: the
            workspace's current one.

    Attributes:
        session: This journal's id for the process recording it, stored with
            each entry: a replay starts from fresh objects where it changes.
    """

    def __init__(
        self,
        *,
        workspace: Callable[[], Workspace | None] | None = None,
        position: Callable[[], Stamp] | None = None,
        read_workspace: Callable[[], Workspace | None] | None = None,
        experiment: Callable[[], str] | None = None,
    ) -> None:
        self._workspace = workspace
        self._read_workspace = workspace if read_workspace is None else read_workspace
        self._experiment = experiment
        self._position = position
        self.session = uuid.uuid4().hex[:12]
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
        stamp = Stamp(0) if self._position is None else self._position()
        with self._lock:
            entry = JournalEntry(
                seq=len(self._pending) + 1,
                time=time.time(),
                generation=stamp.generation,
                action=str(action),
                arguments=plain(dict(arguments)),
                phase=stamp.phase,
                session=self.session,
                experiment=None if self._experiment is None else self._experiment(),
            )
            self._pending.append(entry)
            self._flush(self._store())
        return entry

    def entries(self) -> list[JournalEntry]:
        """The current experiment's actions, oldest first: the workspace's, then any not stored."""
        with self._lock:
            store = self._store(self._read_workspace)
            self._flush(store)
            experiment = self._current_experiment(store)
            stored = [] if store is None else [_entry(row) for row in store.journal_rows()]
            offset = len(stored)
            waiting = [
                dataclasses.replace(entry, seq=offset + i + 1)
                for i, entry in enumerate(
                    e for e in self._pending if e.experiment in (None, experiment)
                )
            ]
            return [dataclasses.replace(e, experiment=experiment) for e in stored] + waiting

    def _current_experiment(self, store: Workspace | None) -> str | None:
        if self._experiment is not None:
            return self._experiment()
        return None if store is None else store.experiment

    def __call__(self) -> JournalView:
        """The journal as a table (``gn.journal()``)."""
        return JournalView(tuple(self.entries()))

    def __len__(self) -> int:
        return len(self.entries())

    def __repr__(self) -> str:
        return f"<Journal: {len(self)} actions>"

    def _store(self, source: Callable[[], Workspace | None] | None = None) -> Workspace | None:
        source = self._workspace if source is None else source
        try:
            found = None if source is None else source()
        except WorkspaceError as error:  # no workspace to read: the entries in memory still show
            logger.debug("journal read from memory only: %s", error)
            return None
        return None if found is None or found.closed else found

    def _flush(self, store: Workspace | None) -> None:
        # Under self._lock. A read-only view keeps entries in memory (said once).
        if store is None or not self._pending or store.read_only:
            if store is not None and store.read_only and not self._warned:
                self._warned = True
                logger.warning("%s is read-only here: the journal stays in memory", store.path)
            return
        # Each entry goes to its own experiment's journal; an untagged one to the current.
        by_experiment: dict[str, list[JournalRow]] = {}
        for e in self._pending:
            by_experiment.setdefault(e.experiment or store.experiment, []).append(
                (e.time, e.generation, e.phase, e.session, e.action, dict(e.arguments))
            )
        for experiment, rows in by_experiment.items():
            try:
                store.append_journal(rows, experiment=experiment)
            except WorkspaceError as error:
                logger.warning("journal kept in memory: %s", error)
                return
            self._pending = [
                e for e in self._pending if (e.experiment or store.experiment) != experiment
            ]


def _entry(row: Mapping[str, Any]) -> JournalEntry:
    # Rows are untrusted: a phase that is not one of ours reads as not recorded.
    phase = row.get("phase")
    session = row.get("session")
    return JournalEntry(
        seq=int(row["seq"]),
        time=float(row["time"]),
        generation=int(row["generation"]),
        action=str(row["action"]),
        arguments=row["arguments"],
        phase=phase if phase in PHASES else None,
        session=str(session)[:64] if session is not None else None,
    )
