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
import time
import urllib.parse
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

from galapagos_nao.core.checks import describe
from galapagos_nao.store.workspace.errors import WorkspaceCorrupt, WorkspaceError, WorkspaceLocked
from galapagos_nao.store.workspace.files import check_file, check_links, salvage
from galapagos_nao.store.workspace.lock import WriterLock, lock_path
from galapagos_nao.store.workspace.names import check_experiment_name
from galapagos_nao.store.workspace.schema import DEFAULT_EXPERIMENT, check_schema, create_schema

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

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        read_only: bool | None = None,
        experiment: str = DEFAULT_EXPERIMENT,
    ) -> None:
        if not isinstance(path, (str, os.PathLike)) or not os.fspath(path):
            raise ValueError(f"path must be a non-empty str or os.PathLike, got {describe(path)}")
        if read_only not in (None, True, False):
            raise ValueError(f"read_only must be True, False or None, got {describe(read_only)}")
        #: The experiment this object reads and writes (see :meth:`use_experiment`).
        self.experiment = check_experiment_name("experiment", experiment)
        self._asked_read_only = read_only
        self.path = Path(path).expanduser().absolute()
        self._lock = threading.RLock()
        self._writer_lock: WriterLock | None = None
        self._read_only_reason: str | None = None
        self._holder: str | None = None  # who writes the experiment, when another process does
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
            self._writer_lock, self._holder = self._lock_experiment(self.experiment, read_only)
            if self._holder is not None:
                self._read_only_reason = _locked_reason(self.experiment, self._holder)
        else:
            self._read_only_reason = "opened read-only"
        try:
            return self._connect()
        except BaseException:
            self._release_lock()
            raise

    def _lock_experiment(
        self, experiment: str, read_only: bool | None
    ) -> tuple[WriterLock | None, str | None]:
        """``(lock, None)`` when this process may now write ``experiment``, else ``(None, holder)``.

        Raises:
            WorkspaceLocked: naming the writer, when ``read_only`` is False.
        """
        lock = WriterLock(lock_path(self.path, experiment), self.path)
        if lock.acquire():
            return lock, None
        holder = lock.holder()
        reason = _locked_reason(experiment, holder)
        if read_only is False:
            raise WorkspaceLocked(f"{self.path}: {reason}", experiment=experiment, holder=holder)
        logger.warning("%s: %s; this process gets a read-only view of it", self.path, reason)
        return None, holder

    def use_experiment(self, name: str) -> None:
        """Reads and writes experiment ``name`` from now on, creating it at its first write.

        The writer lock moves with it: this process writes ``name`` unless another
        process does (then it gets a read-only view of it, logged), and stops
        writing the experiment it leaves. A read-only view stays one.

        Raises:
            ValueError: if ``name`` is not a valid experiment name.
            WorkspaceLocked: if the workspace was opened with ``read_only=False``
                and another process writes ``name`` (nothing changes then).
        """
        name = check_experiment_name("name", name)
        with self._lock:
            if self._connection is None:
                raise WorkspaceError(f"{self.path}: cannot switch experiments: it is closed")
            if name == self.experiment:
                return
            if self._asked_read_only is True:
                self.experiment = name
                return
            lock, holder = self._lock_experiment(name, self._asked_read_only)
            was_writable = self._writer_lock is not None
            self._release_lock()
            self._writer_lock, self._holder, self.experiment = lock, holder, name
            self._read_only_reason = None if holder is None else _locked_reason(name, holder)
            if lock is not None and not was_writable:
                # A read-only view's connection cannot write: reconnect as a writer.
                self._connection.close()
                self._connection = self._connect()
            if lock is not None:
                self._register_experiment(name)

    def _register_experiment(self, name: str) -> None:
        with self._writing("experiment") as connection:
            connection.execute(
                "INSERT OR IGNORE INTO experiments (name, created) VALUES (?, ?)",
                (name, time.time()),
            )

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
            if self.experiment != DEFAULT_EXPERIMENT:
                connection.execute(
                    "INSERT OR IGNORE INTO experiments (name, created) VALUES (?, ?)",
                    (self.experiment, time.time()),
                )
        else:
            check_schema(connection, self.path)

    # -- state -------------------------------------------------------------------------

    @property
    def read_only(self) -> bool:
        """True for a read-only view."""
        return self._writer_lock is None

    @property
    def read_only_reason(self) -> str | None:
        """Why this object cannot write (another writer, opened read-only), or None."""
        return None if self._writer_lock is not None else self._read_only_reason

    @property
    def holder(self) -> str | None:
        """The process writing this experiment when it is not this one, where known."""
        return None if self._writer_lock is not None else self._holder

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
        return f"Workspace({str(self.path)!r}, experiment={self.experiment!r}, {mode})"

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
    def _snapshot(self, what: str) -> Iterator[sqlite3.Connection]:
        """One read transaction: every read in it sees the same commit of the file.

        Autocommit reads each see the latest commit, so a record and the rows it
        names, read one after the other, can straddle another process's write
        (a checkpoint read while the writer replaces it named networks already gone).
        """
        with self._reading(what) as connection:
            connection.execute("BEGIN")  # deferred: the snapshot starts at the first read
            try:
                yield connection
            finally:
                if connection.in_transaction:
                    connection.execute("COMMIT")  # reads only: ending it changes nothing

    @contextlib.contextmanager
    def _writing(self, what: str) -> Iterator[sqlite3.Connection]:
        """One write transaction: all of it commits, or none of it does."""
        with self._lock:
            if self._connection is None:
                raise WorkspaceError(f"{self.path}: cannot write {what}: the workspace is closed")
            if self._writer_lock is None:
                raise WorkspaceLocked(
                    f"{self.path}: cannot write {what}: {self._read_only_reason}",
                    experiment=self.experiment,
                    holder=self._holder,
                )
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


def _locked_reason(experiment: str, holder: str) -> str:
    return f"experiment {experiment!r} is being written by {holder}"
