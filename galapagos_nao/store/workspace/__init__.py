"""The workspace: one SQLite file that keeps everything a session learned.

It holds the Library, each run's last archive checkpoint (elites, queue, the
Parameters in force and the run generator's state), and every generation's
history row. Networks are stored as the safetensors bytes of
:mod:`~galapagos_nao.store.persistence`, never as pickles, so reading a workspace
never runs code.

Where it lives: ``$GN_HOME/workspace.db`` when ``GN_HOME`` is set, else a
per-user data folder (``$XDG_DATA_HOME/galapagos_nao`` or
``~/.local/share/galapagos_nao``; ``%LOCALAPPDATA%`` on Windows,
``~/Library/Application Support`` on macOS). :func:`open` picks another file.

Durability: the database runs in WAL mode with ``synchronous=FULL``, so a
transaction that has committed survives a crash or power cut, and each write
(a Library put, a generation's checkpoint) is one transaction: after a crash
the file holds the previous state or the new one, never a mix.

One writer: a process that opens a workspace for writing holds an exclusive
lock on ``workspace.db.lock`` (released by the OS if the process dies). Another
process then gets a read-only view (or :class:`WorkspaceLocked` when it asked
for write access), never a second writer.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import logging
import os
import sqlite3
import sys
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from galapagos_nao.core.checks import describe
from galapagos_nao.core.network import Network
from galapagos_nao.store.codec import CorruptFileError, from_bytes
from galapagos_nao.store.workspace.errors import WorkspaceCorrupt, WorkspaceError, WorkspaceLocked
from galapagos_nao.store.workspace.files import WriterLock, check_file, salvage
from galapagos_nao.store.workspace.schema import (
    SCHEMA_VERSION,
    check_schema,
    create_schema,
    has_column,
)

__all__ = [
    "FILE_NAME",
    "HOME_ENV",
    "SCHEMA_VERSION",
    "Checkpoint",
    "RunInfo",
    "Workspace",
    "WorkspaceCorrupt",
    "WorkspaceError",
    "WorkspaceLocked",
    "close",
    "current",
    "default_path",
    "get",
    "open",
]

logger = logging.getLogger("galapagos_nao.store.workspace")

#: Environment variable naming the folder that holds the default workspace.
HOME_ENV = "GN_HOME"
#: File name of the workspace inside its folder.
FILE_NAME = "workspace.db"


@dataclass(frozen=True)
class RunInfo:
    """A run recorded in the workspace.

    Attributes:
        id: The run's number in this workspace.
        started: ``time.time()`` of its first checkpoint.
        seed: The seed it was started with, or None for fresh entropy.
        generation: Its last completed (checkpointed) generation.
        written: ``time.time()`` of that checkpoint.
    """

    id: int
    started: float
    seed: int | None
    generation: int
    written: float


@dataclass(frozen=True)
class Checkpoint:
    """A run's archive at the end of its last completed generation.

    Attributes:
        run_id: The run.
        generation: The generation it closed (0-based, resumed ones counted).
        written: ``time.time()`` when it was committed.
        elites: Cell (int or tuple of ints) → elite, in cell order.
        queue: Negative key → network waiting for the next generation.
        parameters: The Parameters snapshot in force after that generation.
        rng_state: The run generator's ``bit_generator.state``.
        problems: Entries that could not be read (each names the file and entry);
            their cells are missing from ``elites``/``queue``.
    """

    run_id: int
    generation: int
    written: float
    elites: dict[Any, Network]
    queue: dict[int, Network]
    parameters: dict[str, dict[str, Any]]
    rng_state: dict[str, Any]
    problems: tuple[str, ...] = field(default=())


# -- where the default workspace lives ---------------------------------------------


def default_folder() -> Path:
    """The folder of the default workspace: ``$GN_HOME``, else the per-user data folder.

    Raises:
        WorkspaceError: under pytest without ``GN_HOME``, so that no test can
            touch the user's own workspace.
    """
    home = os.environ.get(HOME_ENV)
    if home:
        return Path(home).expanduser()
    if "PYTEST_CURRENT_TEST" in os.environ:
        raise WorkspaceError(
            f"tests must set {HOME_ENV} to a temporary folder; refusing the user's workspace"
        )
    if sys.platform == "win32":
        base = Path(os.environ.get("LOCALAPPDATA") or Path.home() / "AppData" / "Local")
    elif sys.platform == "darwin":
        base = Path.home() / "Library" / "Application Support"
    else:
        base = Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")
    return base / "galapagos_nao"


def default_path() -> Path:
    """The default workspace file (see :func:`default_folder`)."""
    return default_folder() / FILE_NAME


# -- cell keys as JSON ---------------------------------------------------------------


def _cell_to_json(cell: Any) -> str:
    # Cells are ints for one measure and tuples of ints for several; JSON keeps both.
    return json.dumps(list(cell) if isinstance(cell, tuple) else cell)


def _cell_from_json(text: str) -> Any:
    value = json.loads(text)
    return tuple(value) if isinstance(value, list) else value


def _cell_order(cell: Any) -> tuple[int, ...]:
    return cell if isinstance(cell, tuple) else (cell,)


# -- the workspace -----------------------------------------------------------------


class Workspace:
    """One workspace file, open for writing or as a read-only view. Thread-safe.

    Most code uses :func:`open`/:func:`get` instead of building one directly.

    Args:
        path: The SQLite file (created with its folder when opened for writing).
        read_only: False: write access or :class:`WorkspaceLocked`; True: a
            read-only view; None: write access if no other process writes it,
            else a read-only view (logged).

    Raises:
        ValueError: if ``path`` is not a path.
        WorkspaceLocked: when ``read_only=False`` and another process writes it.
        WorkspaceCorrupt: naming the file and the damage, when opening a damaged
            file for writing (a read-only view opens and lists the damage in
            :attr:`problems`).
        FileNotFoundError: for a read-only view of a file that does not exist.
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
        if read_only is not True:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            lock = WriterLock(self.path.with_name(self.path.name + ".lock"))
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

    def __enter__(self) -> Workspace:
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

    # -- Library -----------------------------------------------------------------------

    def put_library(self, blobs: Mapping[str, bytes]) -> None:
        """Stores network files (id → :func:`persistence.to_bytes` bytes) in one transaction."""
        now = time.time()
        with self._writing("library entries") as connection:
            connection.executemany(
                "INSERT OR REPLACE INTO library (id, added, blob) VALUES (?, ?, ?)",
                [(net_id, now, sqlite3.Binary(blob)) for net_id, blob in blobs.items()],
            )

    def remove_library(self, net_id: str) -> None:
        """Deletes one Library entry (no error if it is absent)."""
        with self._writing("library removal") as connection:
            connection.execute("DELETE FROM library WHERE id = ?", (net_id,))

    def clear_library(self) -> None:
        """Deletes every Library entry."""
        with self._writing("library clearing") as connection:
            connection.execute("DELETE FROM library")

    def load_library(self) -> tuple[dict[str, Network], dict[str, str]]:
        """Every Library entry that reads back intact, and what is wrong with the others.

        Returns:
            ``(networks, problems)``: id → Network in the order they were added,
            and id → message naming the file, the entry and the damage.
        """
        found: list[tuple[float, Network]] = []
        problems: dict[str, str] = {}
        # Ids come from the id index alone and each row is read on its own, so
        # a damaged page costs only the entries on it.
        for net_id in self._ids("SELECT id FROM library", "library"):
            source = f"{self.path} (library entry {net_id})"
            try:
                with self._reading(f"library entry {net_id}") as connection:
                    added, blob = connection.execute(
                        "SELECT added, blob FROM library WHERE id = ?", (net_id,)
                    ).fetchone()
                found.append((added, from_bytes(bytes(blob), source)))
            except CorruptFileError as error:
                problems[net_id] = str(error)
                logger.error("%s", error)
        found.sort(key=lambda item: item[0])
        return {net.id: net for _, net in found}, problems

    def _ids(self, query: str, what: str) -> list[Any]:
        with self._reading(what) as connection:
            return [row[0] for row in connection.execute(query)]

    # -- checkpoints ------------------------------------------------------------------

    def write_checkpoint(
        self,
        run_id: int | None,
        generation: int,
        *,
        elites: Mapping[Any, str],
        queue: Mapping[int, str],
        blobs: Mapping[str, bytes],
        parameters: Mapping[str, Any],
        rng_state: Mapping[str, Any],
        history: Mapping[str, Any],
        seed: int | None = None,
    ) -> int:
        """Replaces a run's checkpoint and appends its history row, in one transaction.

        Args:
            run_id: The run, or None to record a new one (with ``seed``).
            generation: The generation just completed; must be later than the
                run's last checkpoint.
            elites: Cell → network id.
            queue: Queue key → network id.
            blobs: Network files (id → bytes) not stored yet; ids in ``elites`` or
                ``queue`` without a blob must already be stored.
            parameters: The Parameters snapshot in force.
            rng_state: The generator's ``bit_generator.state`` (JSON-able).
            history: ``started``, ``seconds``, ``evaluated``, ``failed`` and
                ``best`` (cell → ``[val_acc, test_acc]``) of the generation, and
                optionally ``archive``: the Selection's history entry as
                ``HistoryEntry.as_dict()`` makes it (JSON-able).
            seed: The seed of a new run.

        Returns:
            The run's id.

        Raises:
            WorkspaceError: if the generation does not move forward or the write fails.
            WorkspaceLocked: on a read-only view.
        """
        params_json = json.dumps(parameters)
        rng_json = json.dumps(rng_state, default=_json_array)
        best_json = json.dumps(
            [[json.loads(_cell_to_json(c)), *v] for c, v in history["best"].items()]
        )
        now = time.time()
        with self._writing("checkpoint") as connection:
            if run_id is None:
                cursor = connection.execute(
                    "INSERT INTO runs (started, seed) VALUES (?, ?)", (now, seed)
                )
                run_id = int(cursor.lastrowid or 0)
            last = connection.execute(
                "SELECT generation FROM checkpoints WHERE run_id = ?", (run_id,)
            ).fetchone()
            if last is not None and generation <= last[0]:
                raise WorkspaceError(
                    f"{self.path}: run {run_id} is checkpointed at generation {last[0]}; "
                    f"refusing {generation}"
                )
            connection.executemany(
                "INSERT OR REPLACE INTO networks (id, blob) VALUES (?, ?)",
                [(net_id, sqlite3.Binary(blob)) for net_id, blob in blobs.items()],
            )
            connection.execute("DELETE FROM cells WHERE run_id = ?", (run_id,))
            cells = [(run_id, "elite", _cell_to_json(c), n) for c, n in elites.items()]
            cells += [(run_id, "queue", _cell_to_json(k), n) for k, n in queue.items()]
            connection.executemany(
                "INSERT INTO cells (run_id, kind, cell, network_id) VALUES (?, ?, ?, ?)", cells
            )
            connection.execute(
                "INSERT OR REPLACE INTO checkpoints "
                "(run_id, generation, written, parameters, rng_state) VALUES (?, ?, ?, ?, ?)",
                (run_id, generation, now, params_json, rng_json),
            )
            connection.execute(
                "INSERT OR REPLACE INTO history "
                "(run_id, generation, started, seconds, evaluated, failed, best, archive) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    run_id,
                    generation,
                    history["started"],
                    history["seconds"],
                    history["evaluated"],
                    history["failed"],
                    best_json,
                    None if history.get("archive") is None else json.dumps(history["archive"]),
                ),
            )
            # Archive networks no checkpoint refers to any more go with the same commit.
            connection.execute(
                "DELETE FROM networks WHERE id NOT IN (SELECT network_id FROM cells)"
            )
        return run_id

    def runs(self) -> list[RunInfo]:
        """Every run with a checkpoint, oldest first."""
        with self._reading("runs") as connection:
            rows = connection.execute(
                "SELECT r.id, r.started, r.seed, c.generation, c.written FROM runs r "
                "JOIN checkpoints c ON c.run_id = r.id ORDER BY r.id"
            ).fetchall()
        return [RunInfo(*row) for row in rows]

    def last_run(self) -> RunInfo | None:
        """The most recently started run with a checkpoint, or None."""
        runs = self.runs()
        return runs[-1] if runs else None

    def _run_or_last(self, run_id: int | None) -> int | None:
        if run_id is not None:
            return run_id
        last = self.last_run()
        return None if last is None else last.id

    def checkpoint(self, run_id: int | None = None) -> Checkpoint | None:
        """A run's last checkpoint (the last run's when ``run_id`` is None), or None.

        Networks whose bytes are damaged are left out and listed in
        :attr:`Checkpoint.problems`; the rest loads.

        Raises:
            WorkspaceCorrupt: if the checkpoint row itself cannot be read.
        """
        run_id = self._run_or_last(run_id)
        if run_id is None:
            return None
        with self._reading(f"checkpoint of run {run_id}") as connection:
            row = connection.execute(
                "SELECT generation, written, parameters, rng_state FROM checkpoints "
                "WHERE run_id = ?",
                (run_id,),
            ).fetchone()
            if row is None:
                return None
            cells = connection.execute(
                "SELECT kind, cell, network_id FROM cells WHERE run_id = ?", (run_id,)
            ).fetchall()
        generation, written, params_json, rng_json = row
        try:
            parameters, rng_state = json.loads(params_json), json.loads(rng_json)
        except json.JSONDecodeError as error:
            raise WorkspaceCorrupt(
                f"{self.path}: checkpoint of run {run_id} is unreadable ({error})"
            ) from None
        elites, queue, problems = self._cell_networks(cells)
        return Checkpoint(
            run_id, generation, written, elites, queue, parameters, rng_state, tuple(problems)
        )

    def _cell_networks(
        self, cells: list[tuple[str, str, str]]
    ) -> tuple[dict[Any, Network], dict[int, Network], list[str]]:
        elites: dict[Any, Network] = {}
        queue: dict[int, Network] = {}
        problems: list[str] = []
        for kind, cell_json, net_id in cells:
            source = f"{self.path} (archive network {net_id})"
            try:
                with self._reading(f"archive network {net_id}") as connection:
                    row = connection.execute(
                        "SELECT blob FROM networks WHERE id = ?", (net_id,)
                    ).fetchone()
                if row is None:
                    raise CorruptFileError(f"{source}: missing")
                net = from_bytes(bytes(row[0]), source)
            except CorruptFileError as error:
                problems.append(str(error))
                logger.error("%s", error)
                continue
            cell = _cell_from_json(cell_json)
            (elites if kind == "elite" else queue)[cell] = net
        elites = dict(sorted(elites.items(), key=lambda item: _cell_order(item[0])))
        queue = dict(sorted(queue.items(), reverse=True))  # -1, -2, … : the order they were queued
        return elites, queue, problems

    def history(self, run_id: int | None = None) -> list[dict[str, Any]]:
        """A run's generation history (the last run's when ``run_id`` is None), as plain dicts.

        Each dict has ``generation``, ``started`` (``time.time()``), ``seconds``,
        ``evaluated``, ``failed``, ``best``: cell → ``{"val_acc", "test_acc"}``
        of each elite after the generation, and ``archive``: the Selection's
        history entry (``HistoryEntry.as_dict()`` form) or None.
        """
        run_id = self._run_or_last(run_id)
        if run_id is None:
            return []
        with self._reading(f"history of run {run_id}") as connection:
            # A read-only view of a schema 1 file has no archive column.
            archive = "archive" if has_column(connection, "history", "archive") else "NULL"
            rows = connection.execute(
                "SELECT generation, started, seconds, evaluated, failed, best, "
                f"{archive} FROM history "
                "WHERE run_id = ? ORDER BY generation",
                (run_id,),
            ).fetchall()
        entries = []
        for generation, started, seconds, evaluated, failed, best_json, archive in rows:
            best = {
                (tuple(cell) if isinstance(cell, list) else cell): {
                    "val_acc": val,
                    "test_acc": test,
                }
                for cell, val, test in json.loads(best_json)
            }
            entries.append(
                {
                    "generation": generation,
                    "started": started,
                    "seconds": seconds,
                    "evaluated": evaluated,
                    "failed": failed,
                    "best": best,
                    "archive": None if archive is None else json.loads(archive),
                }
            )
        return entries


def _json_array(value: Any) -> Any:
    # Some bit generators (MT19937) keep their key as a numpy array.
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"cannot store {describe(value)} in a checkpoint")


# -- the current workspace ------------------------------------------------------------

_current_lock = threading.Lock()
_current: Workspace | None = None
_current_is_default = False


def open(  # noqa: A001 - gn.workspace.open(path) reads naturally
    path: str | os.PathLike[str] | None = None, *, read_only: bool | None = None
) -> Workspace:
    """Opens a workspace and makes it the current one (the shared Library and Selection use it).

    Opening the file that is already current returns it; another current one is closed.

    Args:
        path: The workspace file; the default (see :func:`default_path`) when None.
        read_only: As for :class:`Workspace`.

    Returns:
        The open workspace.
    """
    global _current, _current_is_default
    target = default_path() if path is None else path
    if not isinstance(target, (str, os.PathLike)) or not os.fspath(target):
        raise ValueError(f"path must be a non-empty str or os.PathLike, got {describe(path)}")
    resolved = Path(target).expanduser().absolute()
    with _current_lock:
        if (
            _current is not None
            and not _current.closed
            and _current.path == resolved
            and read_only is None
        ):
            _current_is_default = path is None
            return _current
        opened = Workspace(resolved, read_only=read_only)
        if _current is not None:
            _current.close()
        _current, _current_is_default = opened, path is None
        return opened


def current() -> Workspace | None:
    """The current workspace, or None if none is open (opens nothing)."""
    with _current_lock:
        return None if _current is None or _current.closed else _current


def get() -> Workspace:
    """The current workspace, opening the default one first if needed.

    A default workspace opened implicitly follows ``GN_HOME``: if it changed,
    the old one is closed and the new default opened.
    """
    global _current, _current_is_default
    with _current_lock:
        found = _current
        # An implicitly opened default follows GN_HOME; an explicit open() stays.
        if (
            found is not None
            and not found.closed
            and (not _current_is_default or found.path == default_path().absolute())
        ):
            return found
    return open()


def close() -> None:
    """Closes the current workspace (if any); the next :func:`get` opens the default again."""
    global _current
    with _current_lock:
        if _current is not None:
            _current.close()
            _current = None


atexit.register(close)
