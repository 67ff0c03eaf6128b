"""The ``journal`` table: the session's steering actions, one row each, in order."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from galapagos_nao.store.workspace.connection import WorkspaceConnection
from galapagos_nao.store.workspace.schema import has_table

__all__ = ["JournalTable", "journal_entry"]


class JournalTable(WorkspaceConnection):
    """Appends and reads journal rows: a part of :class:`.Workspace`."""

    def append_journal(self, rows: list[tuple[float, int, str, dict[str, Any]]]) -> None:
        """Appends ``(time, generation, action, arguments)`` rows in one transaction.

        Raises:
            WorkspaceLocked: on a read-only view.
            WorkspaceError: if the write fails.
        """
        encoded = [(t, g, action, json.dumps(arguments)) for t, g, action, arguments in rows]
        with self._writing("journal entries") as connection:
            connection.executemany(
                "INSERT INTO journal (time, generation, action, arguments) VALUES (?, ?, ?, ?)",
                encoded,
            )

    def journal_rows(self) -> list[dict[str, Any]]:
        """Every row, oldest first, as plain values; the arguments are untrusted JSON.

        A row whose arguments do not parse comes back with ``{"unreadable": text}``.
        """
        with self._reading("journal") as connection:
            if not has_table(connection, "journal"):
                return []  # a read-only view of a file older than the journal
            rows = connection.execute(
                "SELECT seq, time, generation, action, arguments FROM journal ORDER BY seq"
            ).fetchall()
        return [journal_entry(row) for row in rows]


def journal_entry(row: Sequence[Any]) -> dict[str, Any]:
    """A ``journal`` row (seq, time, generation, action, arguments) as plain values.

    The arguments are untrusted JSON: text that does not parse to an object comes
    back as ``{"unreadable": text}``.
    """
    seq, time, generation, action, text = row
    try:
        arguments = json.loads(text)
    except (TypeError, ValueError):
        arguments = None
    if not isinstance(arguments, dict):
        arguments = {"unreadable": str(text)[:200]}
    return {
        "seq": seq,
        "time": time,
        "generation": generation,
        "action": action,
        "arguments": arguments,
    }
