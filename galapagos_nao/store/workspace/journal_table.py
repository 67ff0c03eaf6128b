"""The ``journal`` table: the session's steering actions, one row each, in order."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from galapagos_nao.core.checks import describe
from galapagos_nao.store.workspace.connection import WorkspaceConnection
from galapagos_nao.store.workspace.errors import WorkspaceCorrupt
from galapagos_nao.store.workspace.row_digest import (
    DIGEST_COLUMN,
    row_problem,
    seal_rows,
    skip_damaged,
)
from galapagos_nao.store.workspace.runs import experiment_filter
from galapagos_nao.store.workspace.schema import has_column, has_table

__all__ = ["JournalRow", "JournalTable", "journal_entry"]

#: ``(time, generation, phase, session, action, arguments)``: one row to append.
JournalRow = tuple[float, int, str | None, str | None, str, dict[str, Any]]


class JournalTable(WorkspaceConnection):
    """Appends and reads journal rows: a part of :class:`.Workspace`."""

    def append_journal(self, rows: list[JournalRow], *, experiment: str | None = None) -> None:
        """Appends rows (see :data:`JournalRow`) to an experiment's journal in one transaction.

        Args:
            rows: The rows.
            experiment: Whose journal; the current experiment when None.

        Raises:
            WorkspaceLocked: on a read-only view.
            WorkspaceError: if the write fails.
        """
        name = self.experiment if experiment is None else experiment
        encoded = [
            (t, g, action, json.dumps(arguments), phase, session, name)
            for t, g, phase, session, action, arguments in rows
        ]
        with self._writing("journal entries") as connection:
            last = connection.execute("SELECT COALESCE(MAX(seq), 0) FROM journal").fetchone()[0]
            connection.executemany(
                "INSERT INTO journal "
                "(time, generation, action, arguments, phase, session, experiment) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                encoded,
            )
            seal_rows(connection, "journal", "WHERE seq > ?", last)

    def journal_rows(self) -> list[dict[str, Any]]:
        """Every row of the current experiment, oldest first; the arguments are untrusted JSON.

        A row damaged on disk (its digest does not match, or its values are not
        a journal row's) is skipped with a ``WorkspaceCorrupt`` warning; the
        others are returned. A row whose arguments do not parse as an object
        comes back with ``{"unreadable": text}``.
        """
        with self._reading("journal") as connection:
            if not has_table(connection, "journal"):
                return []  # a read-only view of a file older than the journal
            # A read-only view of a schema 3 or 4 file lacks the boundary columns.
            more = ", phase, session" if has_column(connection, "journal", "session") else ""
            more = more or ", NULL, NULL"
            # The digest covers the experiment too: a row moved to another is damage.
            more += ", experiment" if has_column(connection, "journal", "experiment") else ", NULL"
            sealed = has_column(connection, "journal", DIGEST_COLUMN)
            digest = f", {DIGEST_COLUMN}" if sealed else ""
            where = experiment_filter(connection, "journal", "journal")
            rows = connection.execute(
                f"SELECT seq, time, generation, action, arguments{more}{digest} FROM journal "
                f"WHERE {where} ORDER BY seq",
                (self.experiment,),
            ).fetchall()
        entries = []
        for row in rows:
            values = row[:-1] if sealed else row
            problem = row_problem("journal", values, row[-1]) if sealed else None
            try:
                if problem is None:
                    entries.append(journal_entry(values[:7]))
                    continue
            except WorkspaceCorrupt as error:
                problem = str(error)
            skip_damaged(self.path, f"journal row {describe(row[0])}", problem)
        return entries


def journal_entry(row: Sequence[Any]) -> dict[str, Any]:
    """A ``journal`` row (seq, time, generation, action, arguments[, phase, session]) as values.

    The arguments are untrusted JSON: text that does not parse to an object comes
    back as ``{"unreadable": text}``. A row without phase and session (an older
    file, or a query that did not ask) has None for both.

    Raises:
        WorkspaceCorrupt: saying "damaged on disk" when a value is not of its
            column's type (the row cannot be a journal row).
    """
    seq, time, generation, action, text = row[:5]
    phase, session = (row[5], row[6]) if len(row) >= 7 else (None, None)
    wrong = [
        name
        for name, value, kinds in (
            ("seq", seq, (int,)),
            ("time", time, (int, float)),
            ("generation", generation, (int,)),
            ("action", action, (str,)),
            ("phase", phase, (str, type(None))),
            ("session", session, (str, type(None))),
        )
        if isinstance(value, bool) or not isinstance(value, kinds)
    ]
    if wrong:
        raise WorkspaceCorrupt(f"damaged on disk: {', '.join(wrong)} of the wrong type")
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
        "phase": phase,
        "session": session,
    }
