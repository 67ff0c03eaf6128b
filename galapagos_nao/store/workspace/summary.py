"""A run at a glance: what a dashboard needs, read in one short transaction, no weights decoded.

``gn watch`` polls this once a second from another process while a run
writes the file, so the read must be cheap and consistent: one deferred read
transaction (it never blocks the writer in WAL mode), network ids instead of
network bytes, and only the last rows of the history and the journal.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from galapagos_nao.store.workspace.connection import WorkspaceConnection
from galapagos_nao.store.workspace.journal_table import journal_entry
from galapagos_nao.store.workspace.runs import cell_from_json, history_entry
from galapagos_nao.store.workspace.schema import has_column, has_table

__all__ = ["CURATION_ACTIONS", "LIFECYCLE_ACTIONS", "RunSummary", "SummaryTables"]

#: Journal actions that change the marks on cells (pins and favor), replayed by readers.
CURATION_ACTIONS = ("Selection.pin", "Selection.unpin", "Selection.favor")
#: Journal actions that start or stop a run: the last one tells a reader the run's state.
LIFECYCLE_ACTIONS = ("evolve", "evolve_continual", "resume", "Run.stop")


@dataclass(frozen=True)
class RunSummary:
    """The last run of a workspace, as plain values (all of it untrusted file content).

    Attributes:
        run_id: The run, or None when the workspace holds no checkpoint yet.
        started: ``time.time()`` of its first checkpoint.
        seed: Its seed, or None.
        generation: Its last checkpointed generation.
        written: ``time.time()`` of that checkpoint.
        selection: The ``selection`` section of the Parameters in force (axes, levels).
        elites: Cell → network id of each elite.
        queued: Networks waiting in the queue.
        history: The last history rows, oldest first, as ``RunTables.history`` makes them.
        journal: The last journal rows, oldest first, as ``JournalTable.journal_rows`` makes them.
        curation: Every journal row in :data:`CURATION_ACTIONS`, oldest first.
        lifecycle: The last journal row in :data:`LIFECYCLE_ACTIONS`, or None.
    """

    run_id: int | None = None
    started: float | None = None
    seed: int | None = None
    generation: int | None = None
    written: float | None = None
    selection: dict[str, Any] = field(default_factory=dict)
    elites: dict[Any, str] = field(default_factory=dict)
    queued: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)
    journal: list[dict[str, Any]] = field(default_factory=list)
    curation: list[dict[str, Any]] = field(default_factory=list)
    lifecycle: dict[str, Any] | None = None


class SummaryTables(WorkspaceConnection):
    """Reads :class:`RunSummary`: a part of :class:`.Workspace`."""

    def summary(self, *, history_rows: int = 120, journal_rows: int = 50) -> RunSummary:
        """The last run at a glance, read in one transaction.

        Args:
            history_rows: How many of the last generations to read.
            journal_rows: How many of the last journal rows to read.

        Raises:
            WorkspaceCorrupt: if the tables cannot be read.
        """
        with self._reading("run summary") as connection:
            # One snapshot of every table: a checkpoint committed between two
            # SELECTs cannot pair one generation's cells with another's history.
            began = not connection.in_transaction
            if began:
                connection.execute("BEGIN")
            try:
                return self._summary(connection, history_rows, journal_rows)
            finally:
                if began and connection.in_transaction:
                    connection.execute("COMMIT")

    def _summary(self, connection: Any, history_rows: int, journal_rows: int) -> RunSummary:
        steering: dict[str, Any] = {}
        if has_table(connection, "journal"):
            steering = _journal(connection, journal_rows)
        if not has_table(connection, "checkpoints"):
            return RunSummary(**steering)  # a file no run wrote yet
        found = connection.execute(
            "SELECT r.id, r.started, r.seed, c.generation, c.written, c.parameters FROM runs r "
            "JOIN checkpoints c ON c.run_id = r.id ORDER BY r.id DESC LIMIT 1"
        ).fetchone()
        if found is None:
            return RunSummary(**steering)
        run_id, started, seed, generation, written, parameters = found
        elites: dict[Any, str] = {}
        queued = 0
        for kind, cell, net_id in connection.execute(
            "SELECT kind, cell, network_id FROM cells WHERE run_id = ?", (run_id,)
        ):
            if kind == "elite":
                elites[cell_from_json(cell)] = str(net_id)
            else:
                queued += 1
        archive = "archive" if has_column(connection, "history", "archive") else "NULL"
        rows = connection.execute(
            "SELECT generation, started, seconds, evaluated, failed, best, "
            f"{archive} FROM history WHERE run_id = ? ORDER BY generation DESC LIMIT ?",
            (run_id, history_rows),
        ).fetchall()
        return RunSummary(
            run_id=run_id,
            started=started,
            seed=seed,
            generation=generation,
            written=written,
            selection=_selection_section(parameters),
            elites=elites,
            queued=queued,
            history=[history_entry(row) for row in reversed(rows)],
            **steering,
        )


def _journal(connection: Any, rows: int) -> dict[str, Any]:
    """The journal's part of a summary: its last rows, the marks and the last start or stop."""
    columns = "SELECT seq, time, generation, action, arguments FROM journal"
    last = connection.execute(f"{columns} ORDER BY seq DESC LIMIT ?", (rows,)).fetchall()
    marks = ", ".join("?" * len(CURATION_ACTIONS))
    curation = connection.execute(
        f"{columns} WHERE action IN ({marks}) ORDER BY seq", CURATION_ACTIONS
    ).fetchall()
    starts = ", ".join("?" * len(LIFECYCLE_ACTIONS))
    lifecycle = connection.execute(
        f"{columns} WHERE action IN ({starts}) ORDER BY seq DESC LIMIT 1", LIFECYCLE_ACTIONS
    ).fetchone()
    return {
        "journal": [journal_entry(row) for row in reversed(last)],
        "curation": [journal_entry(row) for row in curation],
        "lifecycle": None if lifecycle is None else journal_entry(lifecycle),
    }


def _selection_section(text: str) -> dict[str, Any]:
    try:
        found = json.loads(text).get("selection")
    except (TypeError, ValueError, AttributeError):
        return {}
    return found if isinstance(found, dict) else {}
