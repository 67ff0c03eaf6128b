"""Row digests: journal, history and checkpoint rows carry a SHA-256 of their own values.

Networks are sealed by their codec; the rows around them were plain SQLite
values, so a flipped bit in a journal row, a history row or a checkpoint's
settings changed what a later session read, with no error. Each such row now
stores the digest of its values (for a checkpoint: with its run's seed and its
cells), written in the same transaction as the row, and readers compare it
before believing the row. A row that does not match is *damaged on disk*:
readers of many rows skip it with a ``WorkspaceCorrupt`` warning and keep the
others; a damaged checkpoint is refused, naming it.

Files from before digests gain them when first opened for writing (schema 6);
their rows are sealed as they are then. A read-only view of an older file has
nothing to check.
"""

from __future__ import annotations

import hashlib
import json
import logging
import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from galapagos_nao.store.codec import CorruptFileError, OldFormatError, UnknownLayerError

__all__ = [
    "DIGEST_COLUMN",
    "DIGESTED_TABLES",
    "checkpoint_values",
    "on_disk",
    "row_digest",
    "row_problem",
    "seal_checkpoint",
    "seal_rows",
    "skip_damaged",
]

# Named for the package, not the module: every workspace record comes from one logger.
logger = logging.getLogger("galapagos_nao.store.workspace")

#: The column each digested table keeps its rows' digests in.
DIGEST_COLUMN = "digest"
#: The digested tables and the columns each digest covers, in order.
DIGESTED_TABLES = {
    "journal": (
        "seq",
        "time",
        "generation",
        "action",
        "arguments",
        "phase",
        "session",
        "experiment",
    ),
    "history": (
        "run_id",
        "generation",
        "started",
        "seconds",
        "evaluated",
        "failed",
        "best",
        "archive",
    ),
    "checkpoints": (
        "run_id",
        "generation",
        "written",
        "parameters",
        "rng_state",
        "stream",
        "curation",
    ),
}


def row_digest(table: str, values: Sequence[Any]) -> str:
    """SHA-256 of a row's values as SQLite returns them (type and value both count)."""
    # JSON keeps 3 and "3" and 3.0 apart, and floats round-trip exactly through repr.
    text = json.dumps([table, *values], separators=(",", ":"), default=_unexpected)
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def _unexpected(value: Any) -> Any:
    if isinstance(value, bytes):  # a TEXT column turned BLOB is damage, and still hashes
        return value.hex()
    raise TypeError(f"cannot digest {type(value).__name__}")


def row_problem(table: str, values: Sequence[Any], digest: Any) -> str | None:
    """Why a row does not match its stored digest (damaged on disk), or None when it does."""
    if digest is None:
        return "damaged on disk: its digest is missing"
    if not isinstance(digest, str) or digest != row_digest(table, values):
        return "damaged on disk: its values do not match their SHA-256 digest"
    return None


def on_disk(error: CorruptFileError) -> str:
    """The message of a stored network that cannot be read, saying where the damage is."""
    if isinstance(error, (UnknownLayerError, OldFormatError)):
        return str(error)  # the bytes may be intact: the message says what to do
    return f"{error} (damaged on disk)"


def skip_damaged(path: Path, what: str, problem: str) -> None:
    """Says, once per read, that a damaged row was left out; the other rows stay readable."""
    logger.warning("WorkspaceCorrupt: %s: %s is %s; skipped", path, what, problem)


def checkpoint_values(connection: sqlite3.Connection, run_id: int) -> list[Any] | None:
    """What a checkpoint's digest covers: its row, its run (start, seed, experiment), its cells."""
    present = {row[1] for row in connection.execute("PRAGMA table_info(checkpoints)")}
    # A column an older file lacks reads as NULL, as the checkpoint reader takes it.
    columns = ", ".join(
        f"c.{name}" if name in present else "NULL" for name in DIGESTED_TABLES["checkpoints"]
    )
    has_experiment = any(
        row[1] == "experiment" for row in connection.execute("PRAGMA table_info(runs)")
    )
    experiment = "r.experiment" if has_experiment else "NULL"
    row = connection.execute(
        f"SELECT {columns}, r.started, r.seed, {experiment} FROM checkpoints c "
        "LEFT JOIN runs r ON r.id = c.run_id WHERE c.run_id = ?",
        (run_id,),
    ).fetchone()
    if row is None:
        return None
    cells = connection.execute(
        "SELECT kind, cell, network_id FROM cells WHERE run_id = ? ORDER BY kind, cell",
        (run_id,),
    ).fetchall()
    return [*row, [list(cell) for cell in cells]]


def seal_checkpoint(connection: sqlite3.Connection, run_id: int) -> None:
    """Stores the digest of a checkpoint just written (inside the writing transaction)."""
    values = checkpoint_values(connection, run_id)
    if values is not None:
        connection.execute(
            f"UPDATE checkpoints SET {DIGEST_COLUMN} = ? WHERE run_id = ?",
            (row_digest("checkpoints", values), run_id),
        )


def seal_rows(connection: sqlite3.Connection, table: str, where: str = "", *args: Any) -> None:
    """Stores the digest of each row of ``table`` matching ``where``, as SQLite now holds it.

    Called inside the transaction that wrote the rows (and by the upgrade of a
    file from before digests, with no ``where``: every row). Reading the values
    back, rather than hashing what was passed in, makes the digest cover what a
    reader will see (an int given as a bool is stored as an int).
    """
    if table == "checkpoints":
        found = connection.execute(f"SELECT run_id FROM checkpoints {where}", args).fetchall()
        for (run_id,) in found:
            seal_checkpoint(connection, run_id)
        return
    columns = ", ".join(DIGESTED_TABLES[table])
    rows = connection.execute(f"SELECT rowid, {columns} FROM {table} {where}", args).fetchall()
    connection.executemany(
        f"UPDATE {table} SET {DIGEST_COLUMN} = ? WHERE rowid = ?",
        [(row_digest(table, row[1:]), row[0]) for row in rows],
    )
