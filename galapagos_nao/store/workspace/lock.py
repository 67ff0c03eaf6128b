"""The writer lock: one process writes each experiment, and the OS frees the lock with it.

A workspace holds named experiments; each has one writer at a time, and
writers of different experiments share the file (SQLite serialises their
transactions). A writer holds:

- an exclusive ``flock`` on the experiment's lock file (:func:`lock_path`:
  ``<workspace>.lock`` for ``default``, which is what older versions of this
  library lock, ``<workspace>.<name>.lock`` for the others), which also notes
  the writer's pid;
- on Linux, a shared ``flock`` on the database file itself: writers of this
  version share it, and an older version, which locks it exclusively, is kept
  out (and keeps them out). (``flock`` and SQLite's own ``fcntl`` record locks
  do not interact on Linux.)

Both are opened with ``O_CLOEXEC``, so a program the writer executes never holds
them, and a child it forks without executing closes its copies at once
(:func:`os.register_at_fork`), so a helper that outlives a killed writer does
not keep the workspace locked. Both are opened with ``O_NOFOLLOW`` and
``O_NONBLOCK`` and must be regular files with one name: a symbolic link or a
hard link planted in their place is refused, never written through (its target
is not truncated, and no database is created outside the folder).
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import sys
import threading
from pathlib import Path

from galapagos_nao.store.workspace.errors import WorkspaceError

__all__ = ["WriterLock", "link_problem", "lock_path", "process_name", "writer_pid"]

_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_NONBLOCK = getattr(os, "O_NONBLOCK", 0)
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
# Descriptors of every lock this process holds, closed in a forked child (see module doc).
_held: set[int] = set()
_held_lock = threading.Lock()


def _close_in_child() -> None:
    for handle in _held:
        with contextlib.suppress(OSError):
            os.close(handle)
    _held.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_close_in_child)


def lock_path(database: Path, experiment: str) -> Path:
    """The lock file of ``experiment`` (a checked name) in the workspace ``database``."""
    if experiment == "default":
        return database.with_name(database.name + ".lock")
    return database.with_name(f"{database.name}.{experiment}.lock")


class WriterLock:
    """An exclusive lock on one experiment of a workspace that the OS drops if the process dies.

    Args:
        path: The lock file (:func:`lock_path`).
        database: The workspace file (share-locked too on Linux).
    """

    def __init__(self, path: Path, database: Path) -> None:
        self.path = path
        self.database = database
        self._handles: list[int] = []
        self._owner: int | None = None
        self._blocked_by: int | None = None  # a writer whose lock file was deleted

    def acquire(self) -> bool:
        """True if this process now holds the lock; False if another does.

        Raises:
            WorkspaceError: naming the lock file or the database when it is a
                symbolic link, has another hard link or is not a regular file.
        """
        handles: list[int] = []
        try:
            handles.append(_open_regular(self.path, "lock file"))
            if not _try_lock(handles[-1]):
                return False
            if sys.platform.startswith("linux"):
                handles.append(_open_regular(self.database, "workspace file"))
                if not _try_lock(handles[-1], shared=True):
                    return False
                # A lock file deleted under its writer: that writer still holds it.
                self._blocked_by = _deleted_lock_holder(self.path, self.database)
                if self._blocked_by is not None:
                    return False
            note = f"{os.getpid()}\n".encode()
            os.ftruncate(handles[0], 0)
            os.pwrite(handles[0], note, 0)
            with _held_lock:
                _held.update(handles)
            self._handles, handles, self._owner = handles, [], os.getpid()
            return True
        finally:
            for handle in handles:  # left only when the lock was not taken
                os.close(handle)

    def holder(self) -> str:
        """Who holds the lock, for messages: ``process <pid> (<program>)`` where it can be told."""
        pid = self.holder_pid()
        return f"process {pid}{process_name(pid)}" if pid else "another process"

    def holder_pid(self) -> int | None:
        """The pid holding the lock (or an older version's lock on the database), or None."""
        return (
            self._blocked_by
            or _flock_holder(self.path, exclusive_only=False)
            or _flock_holder(self.database)
            or _noted_pid(self.path)
        )

    def release(self) -> None:
        """Drops the lock (closing the handles releases it)."""
        handles, self._handles = self._handles, []
        if self._owner != os.getpid():
            return  # a forked child: its copies were closed at the fork
        with _held_lock:
            _held.difference_update(handles)
        for handle in handles:
            os.close(handle)


def process_name(pid: int | None) -> str:
    """`` (program)`` for a live process where the OS tells its command line, else ``""``."""
    try:
        raw = Path(f"/proc/{int(pid or 0)}/cmdline").read_bytes()[:4096]
    except (OSError, ValueError):
        return ""
    words = [word.decode("utf-8", "replace") for word in raw.split(b"\0") if word]
    if not words:
        return ""
    # "python -m galapagos_nao" is named by its module, "python .venv/bin/ipython" by its script.
    if len(words) >= 3 and words[1] == "-m":
        return f" ({words[2]})"
    if Path(words[0]).name.startswith("python") and len(words) > 1 and words[1][:1] != "-":
        return f" ({Path(words[1]).name})"
    return f" ({Path(words[0]).name})"


def writer_pid(database: Path, experiment: str = "default") -> int | None:
    """The pid of the process writing ``experiment`` of ``database``, or None; takes no lock.

    On Linux the kernel's lock table answers; elsewhere the pid noted in the
    experiment's lock file counts while that process is alive.
    """
    lock = lock_path(database, experiment)
    if Path("/proc/locks").exists():
        return _flock_holder(lock, exclusive_only=False) or _flock_holder(database)
    pid = _noted_pid(lock)
    if pid is None:
        return None
    try:
        os.kill(pid, 0)  # signal 0: only asks whether the process exists
    except PermissionError:
        return pid  # it exists, under another user
    except OSError:
        return None
    return pid


def link_problem(path: Path, status: os.stat_result, what: str) -> str | None:
    """Why a workspace must not write ``path`` (``lstat`` gave ``status``), or None.

    A symbolic link or a second hard link would let a write here change a file
    elsewhere (a pid written over it, a database created outside the folder).
    """
    if stat.S_ISLNK(status.st_mode):
        return (
            f"{path}: the {what} is a symbolic link; refusing to follow it "
            "(remove it if you did not put it there)"
        )
    if not stat.S_ISREG(status.st_mode):
        return f"{path}: the {what} is not a regular file"
    if status.st_nlink > 1:
        return (
            f"{path}: the {what} has {status.st_nlink} hard links; refusing to write a file "
            "that has another name elsewhere (copy it rather than link it)"
        )
    return None


def _open_regular(path: Path, what: str) -> int:
    """Opens ``path`` for locking, refusing anything but a regular file with one name."""
    try:
        handle = os.open(path, os.O_RDWR | os.O_CREAT | _CLOEXEC | _NONBLOCK | _NOFOLLOW, 0o644)
    except OSError as error:
        if error.errno == errno.ELOOP:
            raise WorkspaceError(
                f"{path}: the {what} is a symbolic link; refusing to follow it "
                "(remove it if you did not put it there)"
            ) from None
        if error.errno in (errno.EISDIR, errno.ENXIO):
            raise WorkspaceError(f"{path}: the {what} is not a regular file") from None
        raise
    # Checked on the open descriptor, before anything is written through it.
    problem = link_problem(path, os.fstat(handle), what)
    if problem is not None:
        os.close(handle)
        raise WorkspaceError(problem)
    return handle


def _try_lock(handle: int, *, shared: bool = False) -> bool:
    try:
        if sys.platform == "win32":
            import msvcrt

            msvcrt.locking(handle, msvcrt.LK_NBLCK, 1)
        else:
            import fcntl

            fcntl.flock(handle, (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)
    except OSError:
        return False
    return True


def _flock_holders(path: Path, *, exclusive_only: bool) -> list[int]:
    """The pids holding a ``flock`` on ``path``, from ``/proc/locks`` (Linux; elsewhere none).

    With ``exclusive_only`` only WRITE (exclusive) locks count.
    """
    try:
        status = os.stat(path)
        with open("/proc/locks", encoding="ascii", errors="replace") as table:
            lines = table.read(2**20).splitlines()
    except OSError:
        return []
    inode = f"{os.major(status.st_dev):02x}:{os.minor(status.st_dev):02x}:{status.st_ino}"
    found = []
    for line in lines:
        fields = line.split()
        # "1: FLOCK  ADVISORY  WRITE 1234 08:01:5678 0 EOF"; "->" marks blocked waiters.
        if (
            "->" not in fields
            and len(fields) >= 6
            and fields[1] == "FLOCK"
            and (fields[3] == "WRITE" or not exclusive_only)
            and fields[5] == inode
            and fields[4].isdigit()
            and int(fields[4]) > 0
        ):
            found.append(int(fields[4]))
    return found


def _flock_holder(path: Path, *, exclusive_only: bool = True) -> int | None:
    """The pid holding a ``flock`` on ``path`` (Linux), else None.

    The kernel's table is right even when the lock file was deleted or its
    pid note is stale. With ``exclusive_only`` only a WRITE (exclusive) lock counts:
    the database's shared locks are this version's writers of other experiments.
    """
    holders = _flock_holders(path, exclusive_only=exclusive_only)
    return holders[0] if holders else None


def _deleted_lock_holder(path: Path, database: Path) -> int | None:
    """A writer of ``database`` still holding ``path`` after it was deleted, or None (Linux).

    Every writer share-locks the database, so the kernel's lock table names
    them; a process's open files name a deleted one ``<path> (deleted)``.
    Processes of other users cannot be looked into (they are not counted).
    """
    writers = set(_flock_holders(database, exclusive_only=False))
    gone = f"{path} (deleted)"
    for pid in sorted(writers):
        try:
            names = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue
        for name in names:
            with contextlib.suppress(OSError):
                if os.readlink(f"/proc/{pid}/fd/{name}") == gone:
                    return pid
    return None


def _noted_pid(path: Path) -> int | None:
    """The pid noted in the lock file, read without following links or blocking."""
    try:
        handle = os.open(path, os.O_RDONLY | _CLOEXEC | _NONBLOCK | _NOFOLLOW)
    except OSError:
        return None
    try:
        text = os.read(handle, 32).decode("ascii", errors="replace").strip()
    finally:
        os.close(handle)
    return int(text) if text.isdigit() else None
