"""The workspace's exceptions: a refused request, another writer, a damaged file."""

from __future__ import annotations

from galapagos_nao.store.codec import CorruptFileError

__all__ = ["WorkspaceCorrupt", "WorkspaceError", "WorkspaceLocked"]


class WorkspaceError(RuntimeError):
    """A workspace cannot do what was asked (read-only view, closed, write failed)."""


class WorkspaceLocked(WorkspaceError):
    """Another process is writing the workspace."""


class WorkspaceCorrupt(CorruptFileError):
    """The workspace file is damaged; the message names the file and the damage."""
