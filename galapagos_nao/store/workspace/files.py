"""File health: what is checked before SQLite sees a workspace file (the lock is :mod:`.lock`).

A workspace file or side file that is a symbolic link or has a second hard link
is refused; a file that is not SQLite is refused; one shorter than its SQLite
header says is reported, and a read-only view reads what its whole pages still
hold from a salvaged copy.
"""

from __future__ import annotations

import os
import sqlite3
import tempfile
from pathlib import Path

from galapagos_nao.store.workspace.errors import WorkspaceCorrupt, WorkspaceError
from galapagos_nao.store.workspace.lock import link_problem

__all__ = ["SIDE_FILES", "check_file", "check_links", "salvage", "truncation"]

_SQLITE_MAGIC = b"SQLite format 3\x00"
#: The files kept beside a workspace (by suffix): the writer lock's and SQLite's.
SIDE_FILES = {
    ".lock": "lock file",
    "-wal": "WAL file",
    "-shm": "shared-memory file",
    "-journal": "rollback journal",
}


# -- links ---------------------------------------------------------------------------


def check_links(path: Path) -> None:
    """Refuses a workspace whose file or side files are symbolic or hard links.

    SQLite follows links when it opens the database and its WAL, shared-memory
    and journal files, so a link planted under one of those names would have a
    write land elsewhere; each name is checked (without following it) first.

    Raises:
        WorkspaceError: naming the file and the link.
    """
    names = {path: "workspace file"}
    names.update({path.with_name(path.name + suffix): what for suffix, what in SIDE_FILES.items()})
    for name, what in names.items():
        try:
            status = os.lstat(name)
        except FileNotFoundError:
            continue
        problem = link_problem(name, status, what)
        if problem is not None:
            raise WorkspaceError(problem)


# -- damaged files -------------------------------------------------------------------


def check_file(path: Path, *, must_exist: bool) -> str | None:
    """Refuses what is not SQLite; returns what is wrong with a truncated file, else None."""
    if not path.exists():
        if must_exist:
            raise FileNotFoundError(f"path: no workspace file {str(path)!r}")
        return None
    with path.open("rb") as file:
        header = file.read(100)
    if header and not header.startswith(_SQLITE_MAGIC):
        raise WorkspaceCorrupt(f"{path}: not a workspace: the file is not a SQLite database")
    wal = path.with_name(path.name + "-wal")
    if wal.exists() and wal.stat().st_size > 0:
        # Committed pages may still live in the WAL: a checkpoint in progress (a live
        # writer) or cut short (a killed one) leaves the main file shorter than its
        # header says, and SQLite itself recovers it from the WAL. Not truncation.
        return None
    return truncation(path, header)


def _page_size(header: bytes) -> int:
    size = int.from_bytes(header[16:18], "big")
    return 65536 if size == 1 else size  # the format stores 65536 as 1


def truncation(path: Path, header: bytes) -> str | None:
    """What is wrong if ``path`` is shorter than its SQLite header says, else None."""
    if len(header) < 100:
        return (
            f"{path}: truncated: {len(header)} bytes, not even a SQLite header" if header else None
        )
    page_size = _page_size(header)
    pages = int.from_bytes(header[28:32], "big")
    # The in-header page count is only valid when its change counter matches (format spec).
    if header[24:28] != header[92:96] or page_size < 512:
        return None
    size = path.stat().st_size
    if size >= pages * page_size and size % page_size == 0:
        return None
    return f"{path}: truncated: {size} bytes, its header says {pages * page_size}"


def salvage(path: Path) -> sqlite3.Connection:
    """A copy of the whole pages of a truncated file, for a read-only view; the file is untouched.

    SQLite refuses a file shorter than its header says; the copy is cut to whole
    pages and its header told the true page count, so every table and row that
    lies in the surviving pages reads back.
    """
    data = bytearray(path.read_bytes())
    page_size = _page_size(bytes(data[:100]))
    del data[len(data) - len(data) % page_size :]
    data[18:20] = b"\x01\x01"  # rollback-journal format: the copy is not in WAL mode
    data[28:32] = (len(data) // page_size).to_bytes(4, "big")
    connection = sqlite3.connect(":memory:", isolation_level=None, check_same_thread=False)
    deserialize = getattr(connection, "deserialize", None)  # Python 3.11+
    if deserialize is not None:
        deserialize(bytes(data))
    else:  # Python 3.10: copy the memory image through a temporary file
        with tempfile.TemporaryDirectory() as folder:
            copy = Path(folder) / "salvaged.db"
            copy.write_bytes(bytes(data))
            with sqlite3.connect(copy) as source:
                source.backup(connection)
            source.close()
    connection.execute("PRAGMA query_only=ON")
    return connection
