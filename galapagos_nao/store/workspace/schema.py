"""The workspace's SQL layout: its tables, their version, and the upgrade of older files."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

from galapagos_nao.store.workspace.errors import WorkspaceCorrupt, WorkspaceError
from galapagos_nao.store.workspace.row_digest import DIGEST_COLUMN, DIGESTED_TABLES, seal_rows

__all__ = [
    "DEFAULT_EXPERIMENT",
    "SCHEMA_VERSION",
    "check_schema",
    "create_schema",
    "has_column",
    "has_table",
]

#: Layout version written in the ``meta`` table; newer files are refused, older ones
#: upgraded when opened for writing (2 added ``history.archive``, 3 the ``journal``,
#: 4 ``checkpoints.stream``, 5 ``journal.phase``, ``journal.session`` and
#: ``checkpoints.curation``, 6 the ``experiments`` table and ``runs.experiment``,
#: ``journal.experiment``: the rows of older files become experiment ``default``;
#: 7 a ``digest`` column in ``journal``, ``history`` and ``checkpoints`` (see
#: :mod:`.row_digest`): the rows of older files are sealed as they are; each is
#: detected, not inferred from the number).
SCHEMA_VERSION = 7

#: The experiment every workspace starts with, and the one older files' rows belong to.
DEFAULT_EXPERIMENT = "default"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS library (id TEXT PRIMARY KEY, added REAL NOT NULL, blob BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS experiments (
    name TEXT PRIMARY KEY, created REAL NOT NULL, task TEXT, state TEXT
);
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT, started REAL NOT NULL, seed INTEGER,
    experiment TEXT NOT NULL DEFAULT 'default'
);
CREATE TABLE IF NOT EXISTS networks (id TEXT PRIMARY KEY, blob BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS checkpoints (
    run_id INTEGER PRIMARY KEY REFERENCES runs(id),
    generation INTEGER NOT NULL,
    written REAL NOT NULL,
    parameters TEXT NOT NULL,
    rng_state TEXT NOT NULL,
    stream TEXT,
    curation TEXT
);
CREATE TABLE IF NOT EXISTS cells (
    run_id INTEGER NOT NULL REFERENCES runs(id),
    kind TEXT NOT NULL CHECK (kind IN ('elite', 'queue')),
    cell TEXT NOT NULL,
    network_id TEXT NOT NULL REFERENCES networks(id),
    PRIMARY KEY (run_id, kind, cell)
);
CREATE TABLE IF NOT EXISTS history (
    run_id INTEGER NOT NULL REFERENCES runs(id),
    generation INTEGER NOT NULL,
    started REAL NOT NULL,
    seconds REAL NOT NULL,
    evaluated INTEGER NOT NULL,
    failed INTEGER NOT NULL,
    best TEXT NOT NULL,
    archive TEXT,
    PRIMARY KEY (run_id, generation)
);
CREATE TABLE IF NOT EXISTS journal (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    time REAL NOT NULL,
    generation INTEGER NOT NULL,
    action TEXT NOT NULL,
    arguments TEXT NOT NULL,
    phase TEXT,
    session TEXT,
    experiment TEXT NOT NULL DEFAULT 'default'
);
"""


def create_schema(connection: sqlite3.Connection, path: Path) -> None:
    """Creates the tables a writable workspace needs, upgrading an older layout in place.

    One IMMEDIATE transaction: processes writing other experiments of the same
    file may open it at once, and only one of them upgrades it.

    Raises:
        WorkspaceError: if the file was written by a newer schema.
        WorkspaceCorrupt: if its ``meta`` table cannot be read.
    """
    connection.execute("BEGIN IMMEDIATE")
    try:
        for statement in _SCHEMA.split(";"):
            if statement.strip():
                connection.execute(statement)
        check_schema(connection, path)
        _upgrade(connection)
        connection.execute(
            "INSERT OR REPLACE INTO meta (key, value) VALUES ('schema_version', ?)",
            (str(SCHEMA_VERSION),),
        )
        connection.execute("COMMIT")
    except BaseException:
        if connection.in_transaction:
            connection.execute("ROLLBACK")
        raise


def _upgrade(connection: sqlite3.Connection) -> None:
    """Adds what older files lack; every row they hold is kept."""
    # Older files gain the tables they lack (the journal: schema 3) from CREATE IF NOT
    # EXISTS above. Schema 1 files predate the history's archive column.
    if not has_column(connection, "history", "archive"):
        connection.execute("ALTER TABLE history ADD COLUMN archive TEXT")
    # Files before schema 4 predate task streams: their runs had none (NULL).
    if not has_column(connection, "checkpoints", "stream"):
        connection.execute("ALTER TABLE checkpoints ADD COLUMN stream TEXT")
    # Files before schema 5: journal rows without their boundary and process (NULL:
    # unknown), checkpoints without pins, favor and vetoes (NULL: none).
    for table, column in (
        ("journal", "phase"),
        ("journal", "session"),
        ("checkpoints", "curation"),
    ):
        if not has_column(connection, table, column):
            connection.execute(f"ALTER TABLE {table} ADD COLUMN {column} TEXT")
    # Files before schema 6 held one implicit experiment: its rows become "default".
    for table in ("runs", "journal"):
        if not has_column(connection, table, "experiment"):
            connection.execute(
                f"ALTER TABLE {table} ADD COLUMN experiment TEXT NOT NULL DEFAULT 'default'"
            )
        connection.execute(
            f"CREATE INDEX IF NOT EXISTS {table}_by_experiment ON {table} (experiment)"
        )
    # Files before schema 7: rows without digests, sealed as they are now (this
    # transaction: a file is upgraded whole or not at all). After the columns above,
    # which the digests cover.
    for table in DIGESTED_TABLES:
        if not has_column(connection, table, DIGEST_COLUMN):
            connection.execute(f"ALTER TABLE {table} ADD COLUMN {DIGEST_COLUMN} TEXT")
            seal_rows(connection, table)
    connection.execute(
        "INSERT OR IGNORE INTO experiments (name, created) "
        "SELECT 'default', COALESCE(MIN(started), ?) FROM runs",
        (time.time(),),
    )


def check_schema(connection: sqlite3.Connection, path: Path) -> None:
    """Refuses a file written by a newer galapagos_nao; a file without a schema passes.

    Raises:
        WorkspaceError: if the file's schema is newer than :data:`SCHEMA_VERSION`.
        WorkspaceCorrupt: if its ``meta`` table cannot be read.
    """
    try:
        row = connection.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
    except sqlite3.OperationalError:
        row = None  # a file that was never a workspace, or a fresh one seen read-only
    except sqlite3.DatabaseError as error:
        raise WorkspaceCorrupt(f"{path}: damaged ({error})") from None
    if row is None:
        return
    version = row[0]
    if not isinstance(version, (str, int)) or not str(version).isdigit():
        raise WorkspaceCorrupt(f"{path}: damaged on disk: schema_version is {version!r}")
    if int(version) > SCHEMA_VERSION:
        raise WorkspaceError(
            f"{path}: written by a newer galapagos_nao "
            f"(schema {version}, this one reads {SCHEMA_VERSION})"
        )


def has_column(connection: sqlite3.Connection, table: str, column: str) -> bool:
    """True if ``table`` has ``column`` (read-only views of old files may lack one)."""
    return any(row[1] == column for row in connection.execute(f"PRAGMA table_info({table})"))


def has_table(connection: sqlite3.Connection, table: str) -> bool:
    """True if ``table`` exists (a read-only view of an old file may lack one)."""
    query = "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?"
    return connection.execute(query, (table,)).fetchone() is not None
