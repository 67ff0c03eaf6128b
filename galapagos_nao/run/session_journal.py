"""``gn.journal``: the session's steering actions as a table, a replay, or a script.

The journal itself (:class:`~galapagos_nao.store.journal.Journal`) lives in the
store layer, below the runs it records. This handle sits above them: it shows
the journal (``gn.journal()``), replays it on fresh objects
(:meth:`SessionJournal.replay`) and writes it out as a script
(:meth:`SessionJournal.to_script`).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path

from galapagos_nao.core.datasets import Task
from galapagos_nao.run.api import Session
from galapagos_nao.run.replay import Replayer, ReplayResult
from galapagos_nao.run.script import write_script
from galapagos_nao.store.journal import JournalEntry, JournalView

__all__ = ["SessionJournal"]


class SessionJournal:
    """The journal of a :class:`~galapagos_nao.run.api.Session` (``gn.journal``).

    ``gn.journal()`` is the table of every steering action; ``len(gn.journal)``
    counts them.
    """

    def __init__(self, session: Session) -> None:
        self._journal = session.journal

    def __call__(self) -> JournalView:
        """Every steering action of the session, as a table."""
        return self._journal()

    def entries(self, *, this_process: bool = False) -> list[JournalEntry]:
        """Every steering action, oldest first.

        Args:
            this_process: Only the actions of this Python process (the workspace's
                journal keeps every earlier session's too); pass them to
                :meth:`replay` or :meth:`to_script` as ``entries=``.
        """
        found = self._journal.entries()
        if this_process:
            found = [entry for entry in found if entry.session == self._journal.session]
        return found

    def __len__(self) -> int:
        return len(self._journal)

    def __repr__(self) -> str:
        return repr(self._journal)

    def replay(
        self,
        task: Task | None = None,
        *,
        tasks: Sequence[Task] | None = None,
        entries: Iterable[JournalEntry] | None = None,
    ) -> ReplayResult:
        """Re-runs the recorded session on fresh objects, each action where it took effect.

        Blocks until the replayed runs end (Ctrl-C stops the one going on). The
        shared ``gn.Selection`` and ``gn.Parameters`` are not touched: the result
        holds the replayed ones. On CPU the archive is the same bit for bit;
        ``result.divergences`` names every step that could not be (a network
        from outside the session, another task, another device).

        Args:
            task: The task the recorded runs used; full MNIST when None.
            tasks: The task stream of a recorded continual run, if it had one.
            entries: The steps to replay; the whole journal when None.

        Returns:
            The :class:`~galapagos_nao.run.replay.ReplayResult`: ``.selection``,
            ``.exact``, ``.divergences``, ``.differences(gn.Selection)``.
        """
        steps = self.entries() if entries is None else list(entries)
        return Replayer(steps, task=task, tasks=tasks).run()

    def to_script(
        self,
        path: str | os.PathLike[str],
        *,
        task: str | None = None,
        tasks: str | None = None,
        entries: Iterable[JournalEntry] | None = None,
    ) -> Path:
        """Writes the session as a runnable Python script that replays it.

        Args:
            path: Where to write it.
            task: A Python expression (``gn`` is imported) that builds the task the
                runs used, e.g. ``"gn.datasets.subset(gn.datasets.mnist('data'), 3000, 1000)"``;
                needed unless they used the default.
            tasks: Likewise for a recorded task stream, e.g. ``"gn.datasets.split_mnist()"``.
            entries: The steps to write; the whole journal when None.

        Returns:
            The script's path.

        Raises:
            ValueError: if the runs used a task and no expression builds it.
        """
        steps = self.entries() if entries is None else list(entries)
        return write_script(path, steps, task=task, tasks=tasks)
