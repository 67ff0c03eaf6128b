"""Polling a workspace from another process: what ``python -m galapagos_nao watch`` reads.

A :class:`WorkspaceReader` opens the file as a read-only view (no writer
lock, so the run writing it never waits), and each :meth:`~WorkspaceReader.poll`
returns a :class:`~galapagos_nao.store.watch_snapshot.WatchSnapshot`. The
reader re-reads only when another connection committed (SQLite's
``data_version``), reads in one short transaction without decoding any
network, and never raises for the file's sake: a missing, replaced, damaged or
half-written workspace becomes a snapshot that says so, and the next poll tries
again (a replaced file is noticed by its inode and reopened).
"""

from __future__ import annotations

import os
import sqlite3
import time
from pathlib import Path

from galapagos_nao.store.watch_snapshot import WatchSnapshot, snapshot_of
from galapagos_nao.store.workspace import (
    DEFAULT_EXPERIMENT,
    RunSummary,
    Workspace,
    WorkspaceError,
    check_experiment_name,
)
from galapagos_nao.store.workspace.lock import writer_pid

__all__ = ["WorkspaceReader"]


class WorkspaceReader:
    """Polls one workspace file read-only; keeps it open between polls.

    Args:
        path: The workspace file (it need not exist yet).
        experiment: The experiment to show (``default`` when not given).
        history_rows: Generations read for the sparklines.
        journal_rows: Journal rows read for the events.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        experiment: str = DEFAULT_EXPERIMENT,
        history_rows: int = 120,
        journal_rows: int = 50,
    ) -> None:
        self.path = Path(path).expanduser().absolute()
        self.experiment = check_experiment_name("experiment", experiment)
        self._history_rows = history_rows
        self._journal_rows = journal_rows
        self._store: Workspace | None = None
        self._identity: tuple[int, int] | None = None
        self._version: int | None = None
        self._summary: RunSummary | None = None

    def poll(self) -> WatchSnapshot:
        """Reads the workspace if it changed since the last poll; never raises for the file."""
        now = time.time()
        try:
            status = os.stat(self.path)
        except FileNotFoundError:
            self.close()
            return WatchSnapshot(
                str(self.path), now, "missing", "no workspace file here yet", self.experiment
            )
        except OSError as error:
            self.close()
            return WatchSnapshot(str(self.path), now, "unreadable", str(error), self.experiment)
        identity = (status.st_dev, status.st_ino)
        if self._store is not None and identity != self._identity:
            self.close()  # replaced (moved over, restored from a copy): read the new file
        try:
            summary = self._read(identity)
        except (WorkspaceError, OSError, sqlite3.Error, ValueError, KeyError, TypeError) as error:
            self.close()  # reopened at the next poll: the file may be mid-replacement
            return WatchSnapshot(str(self.path), now, "unreadable", str(error), self.experiment)
        problems = () if self._store is None else self._store.problems
        return snapshot_of(
            summary,
            str(self.path),
            now,
            writer=writer_pid(self.path, self.experiment),
            problems=problems,
        )

    def _read(self, identity: tuple[int, int]) -> RunSummary:
        if self._store is None:
            self._store = Workspace(self.path, read_only=True, experiment=self.experiment)
            self._identity, self._version, self._summary = identity, None, None
        version = self._store.data_version()
        if self._summary is None or version != self._version:
            self._summary = self._store.summary(
                history_rows=self._history_rows, journal_rows=self._journal_rows
            )
            self._version = version
        return self._summary

    def close(self) -> None:
        """Closes the file (the next poll opens it again)."""
        if self._store is not None:
            self._store.close()
        self._store, self._identity, self._version, self._summary = None, None, None, None

    def __enter__(self) -> WorkspaceReader:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
