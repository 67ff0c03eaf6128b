"""Which workspace each Selection's runs checkpoint into: a part of the Session.

:class:`Tracking` is a mixin of :class:`~galapagos_nao.run.api.Session`: the
session's own Selection checkpoints into the current workspace; any other one
only once :meth:`Tracking.track` names a workspace for it. The journal is kept
in the workspace of the session's Selection, if one is open.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable

from galapagos_nao.archive.selection import Selection
from galapagos_nao.core.checks import describe
from galapagos_nao.store.workspace import Workspace

__all__ = ["Tracking"]


class Tracking:
    """Selection → workspace, for checkpoints and the journal.

    Args:
        workspace: Returns the workspace that checkpoints runs of the session's
            Selection (``gn.workspace.get``), or None to checkpoint nothing by default.
        open_workspace: Returns that workspace only if it is open already
            (``gn.workspace.current``): where the journal is kept, without
            opening a file for it; None keeps it in memory unless tracked.
    """

    selection: Selection

    def __init__(
        self,
        *,
        workspace: Callable[[], Workspace] | None = None,
        open_workspace: Callable[[], Workspace | None] | None = None,
    ) -> None:
        self._workspace = workspace
        self._open_workspace = open_workspace
        self._lock = threading.Lock()
        self._tracked: weakref.WeakKeyDictionary[Selection, Workspace] = weakref.WeakKeyDictionary()

    def _journal_workspace(self) -> Workspace | None:
        with self._lock:
            found = self._tracked.get(self.selection)
        if found is None and self._open_workspace is not None:
            found = self._open_workspace()
        return found

    def _journal_reading_workspace(self) -> Workspace | None:
        """Where the journal is read: as :meth:`_journal_workspace`, opening the default if none."""
        found = self._journal_workspace()
        if found is None and self._workspace is not None:
            found = self._workspace()
        return found

    def track(self, selection: Selection, into: Workspace | None) -> None:
        """Checkpoints every later run of ``selection`` into ``into`` (None stops tracking it).

        Raises:
            ValueError: if ``selection`` is not a Selection or ``into`` not a Workspace.
        """
        if not isinstance(selection, Selection):
            raise ValueError(f"selection must be a Selection, got {describe(selection)}")
        if into is not None and not isinstance(into, Workspace):
            raise ValueError(f"into must be a Workspace or None, got {describe(into)}")
        with self._lock:
            if into is None:
                self._tracked.pop(selection, None)
            else:
                self._tracked[selection] = into

    def tracking_workspace(self, selection: Selection) -> Workspace | None:
        """The workspace ``selection``'s runs checkpoint into, or None for an untracked one.

        The session's own Selection uses the current workspace, opening the default one.
        """
        with self._lock:
            found = self._tracked.get(selection)
        if found is not None:
            return found
        if selection is self.selection and self._workspace is not None:
            return self._workspace()
        return None
