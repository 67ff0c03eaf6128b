"""An open workspace file: the writer lock, the checks on opening, and the transactions.

Durability: the database runs in WAL mode with ``synchronous=FULL``, so a
transaction that has committed survives a crash or power cut, and each write
(a Library put, a generation's checkpoint) is one transaction: after a crash
the file holds the previous state or the new one, never a mix.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import threading
import urllib.parse
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

from galapagos_nao.core.checks import describe
from galapagos_nao.store.workspace.errors import WorkspaceCorrupt, WorkspaceError, WorkspaceLocked
from galapagos_nao.store.workspace.files import check_file, check_links, salvage
from galapagos_nao.store.workspace.lock import WriterLock
from galapagos_nao.store.workspace.schema import check_schema, create_schema

__all__ = ["WorkspaceConnection"]

# Named for the package, not the module: every workspace record comes from one logger.
logger = logging.getLogger("galapagos_nao.store.workspace")

_Self = TypeVar("_Self", bound="WorkspaceConnection")


class WorkspaceConnection:
    """One workspace file, open for writing or as a read-only view; the tables come on top.

    :class:`~galapagos_nao.store.workspace.Workspace` adds the tables and
    documents the arguments. Every read and write goes through
    :meth:`_reading`/:meth:`_writing`, which hold the instance's lock and turn
    SQLite errors into workspace errors naming the file.
    """

    def __init__(self, path: str | os.PathLike[str], *, read_only: bool | None = None) -> None:
        if not isinstance(path, (str, os.PathLike)) or not os.fspath(path):
            raise ValueError(f"path must be a non-empty str or os.PathLike, got {describe(path)}")
        if read_only not in (None, True, False):
            raise ValueError(f"read_only must be True, False or None, got {describe(read_only)}")
        self.path = Path(path).expanduser().absolute()
        self._lock = threading.RLock()
        self._writer_lock: WriterLock | None = None
        self._read_only_reason: str | None = None
        #: Damage found when the file was opened (only a read-only view opens with any).
        self.problems: tuple[str, ...] = ()
        #: Test hook: called with the transaction's name inside every write
        #: transaction, after its writes and before COMMIT.
        self._before_commit: Callable[[str], None] | None = None
        self._connection: sqlite3.Connection | None = self._open(read_only)

    # -- opening -------------------------------------------------------------------

    def _open(self, read_only: bool | None) -> sqlite3.Connection:
        check_links(self.path)  # before anything is created or locked
        if read_only is not True:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            lock = WriterLock(self.path.with_name(self.path.name + ".lock"), self.path)
            if lock.acquire():
                self._writer_lock = lock
            elif read_only is False:
                raise WorkspaceLocked(f"{self.path}: {lock.holder()} is writing this workspace")
            else:
                self._read_only_reason = f"{lock.holder()} is writing this workspace"
                logger.warning(
                    "%s: %s; this process gets a read-only view", self.path, self._read_only_reason
                )
        else:
            self._read_only_reason = "opened read-only"
        try:
            return self._connect()
        except BaseException:
            self._release_lock()
            raise

    def _connect(self) -> sqlite3.Connection:
        writable = self._writer_lock is not None
        truncated = check_file(self.path, must_exist=not writable)
        if truncated is not None and writable:
            raise WorkspaceCorrupt(
                f"{truncated}; open it with read_only=True to read what is intact"
            )
        try:
            if truncated is not None:
                connection = salvage(self.path)
                self.problems = (truncated,)
                logger.error("%s", truncated)
            elif writable:
                connection = sqlite3.connect(
                    self.path, isolation_level=None, check_same_thread=False, timeout=30
                )
            else:
                uri = f"file:{urllib.parse.quote(str(self.path))}?mode=ro"
                connection = sqlite3.connect(
                    uri, uri=True, isolation_level=None, check_same_thread=False, timeout=30
                )
        except sqlite3.Error as error:
            raise WorkspaceCorrupt(f"{self.path}: cannot be opened: {error}") from None
        try:
            self._configure(connection, writable)
        except BaseException:
            connection.close()
            raise
        return connection

    def _configure(self, connection: sqlite3.Connection, writable: bool) -> None:
        try:
            if writable:
                mode = connection.execute("PRAGMA journal_mode=WAL").fetchone()[0]
                if str(mode).lower() != "wal":
                    raise WorkspaceError(
                        f"{self.path}: could not switch to WAL mode (got {mode!r})"
                    )
                connection.execute("PRAGMA synchronous=FULL")
                connection.execute("PRAGMA foreign_keys=ON")
            problems = [row[0] for row in connection.execute("PRAGMA quick_check")]
        except sqlite3.DatabaseError as error:
            if writable:
                raise WorkspaceCorrupt(
                    f"{self.path}: damaged ({error}); "
                    "open it with read_only=True to read what is intact"
                ) from None
            problems = [str(error)]  # a read-only view still reads what it can
        if problems != ["ok"]:
            self.problems += tuple(f"{self.path}: {problem}" for problem in problems)
            if writable:
                shown = "; ".join(problems[:3])
                raise WorkspaceCorrupt(
                    f"{self.path}: damaged ({shown}); "
                    "open it with read_only=True to read what is intact"
                )
            logger.error("%s is damaged: %s", self.path, "; ".join(problems[:3]))
        if writable:
            with self._lock:
                create_schema(connection, self.path)
        else:
            check_schema(connection, self.path)

    # -- state -------------------------------------------------------------------------

    @property
    def read_only(self) -> bool:
        """True for a read-only view."""
        return self._writer_lock is None

    @property
    def closed(self) -> bool:
        """True once :meth:`close` ran."""
        return self._connection is None

    def close(self) -> None:
        """Closes the file and releases the writer lock (idempotent)."""
        with self._lock:
            if self._connection is not None:
                self._connection.close()
                self._connection = None
            self._release_lock()

    def _release_lock(self) -> None:
        if self._writer_lock is not None:
            self._writer_lock.release()
            self._writer_lock = None
            if self._read_only_reason is None:
                self._read_only_reason = "closed"

    def __enter__(self: _Self) -> _Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        mode = "closed" if self.closed else ("read-only" if self.read_only else "writable")
        return f"Workspace({str(self.path)!r}, {mode})"

    def data_version(self) -> int:
        """A number that changes whenever another connection commits (to notice outside writes)."""
        with self._reading("data version") as connection:
            return int(connection.execute("PRAGMA data_version").fetchone()[0])

    # -- transactions ------------------------------------------------------------------

    @contextlib.contextmanager
    def _reading(self, what: str) -> Iterator[sqlite3.Connection]:
        with self._lock:
            if self._connection is None:
                raise WorkspaceError(f"{self.path}: cannot read {what}: the workspace is closed")
            try:
                yield self._connection
            except sqlite3.DatabaseError as error:
                raise WorkspaceCorrupt(f"{self.path}: cannot read {what}: {error}") from None

    @contextlib.contextmanager
    def _writing(self, what: str) -> Iterator[sqlite3.Connection]:
        """One write transaction: all of it commits, or none of it does."""
        with self._lock:
            if self._connection is None:
                raise WorkspaceError(f"{self.path}: cannot write {what}: the workspace is closed")
            if self._writer_lock is None:
                raise WorkspaceLocked(f"{self.path}: cannot write {what}: {self._read_only_reason}")
            connection = self._connection
            connection.execute("BEGIN IMMEDIATE")
            try:
                yield connection
                if self._before_commit is not None:
                    self._before_commit(what)
                connection.execute("COMMIT")
            except BaseException as error:
                if connection.in_transaction:
                    connection.execute("ROLLBACK")
                if isinstance(error, sqlite3.Error):
                    raise WorkspaceError(f"{self.path}: could not write {what}: {error}") from error
                raise
