"""The workspace's exceptions: a refused request, another writer, a damaged file."""

from __future__ import annotations

from galapagos_nao.store.codec import CorruptFileError

__all__ = ["WorkspaceCorrupt", "WorkspaceError", "WorkspaceLocked"]


class WorkspaceError(RuntimeError):
    """A workspace cannot do what was asked (read-only view, closed, write failed)."""


class WorkspaceLocked(WorkspaceError):
    """Another process is writing the experiment (or this is a read-only view).

    Attributes:
        experiment: The experiment that could not be written, when known.
        holder: Who writes it (``process 123 (ipython)``), when known.
    """

    def __init__(self, message: str, *, experiment: str | None = None, holder: str | None = None):
        super().__init__(message)
        self.experiment = experiment
        self.holder = holder


class WorkspaceCorrupt(CorruptFileError):
    """The workspace file is damaged; the message names the file and the damage."""
