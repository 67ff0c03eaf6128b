"""An experiment at a glance: what a dashboard needs, read in one short transaction.

``gn watch`` polls this once a second from another process while a run
writes the file, so the read must be cheap and consistent: one deferred read
transaction (it never blocks the writer in WAL mode), network ids instead of
network bytes, and only the last rows of the history and the journal.

The archive is read from the experiment's state, never re-derived from the
journal: the last checkpoint (elites, pins, favor), unless the session wrote
a newer state since (a pin, a favor or a ``clear()`` between runs), which then
wins.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from galapagos_nao.store.workspace.connection import WorkspaceConnection
from galapagos_nao.store.workspace.errors import WorkspaceCorrupt
from galapagos_nao.store.workspace.journal_table import journal_entry
from galapagos_nao.store.workspace.run_rows import cell_from_json, history_entry
from galapagos_nao.store.workspace.runs import experiment_filter
from galapagos_nao.store.workspace.schema import has_column, has_table

__all__ = ["LIFECYCLE_ACTIONS", "RunSummary", "SummaryTables"]

#: Journal actions that start or stop a run: the last one tells a reader the run's state.
LIFECYCLE_ACTIONS = ("evolve", "evolve_continual", "resume", "Run.stop")


@dataclass(frozen=True)
class RunSummary:
    """An experiment's last run, as plain values (all of it untrusted file content).

    Attributes:
        experiment: The experiment.
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
        curation: The archive's pins, favor and vetoes as ``CurationState.as_dict``
            made them (the checkpoint's, or the session's newer state), or None.
        lifecycle: The last journal row in :data:`LIFECYCLE_ACTIONS`, or None.
        cleared: True when the session emptied the archive after the last checkpoint
            (``elites`` is then empty).
    """

    experiment: str = "default"
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
    curation: dict[str, Any] | None = None
    lifecycle: dict[str, Any] | None = None
    cleared: bool = False


class SummaryTables(WorkspaceConnection):
    """Reads :class:`RunSummary`: a part of :class:`.Workspace`."""

    def summary(self, *, history_rows: int = 120, journal_rows: int = 50) -> RunSummary:
        """The current experiment's last run at a glance, read in one transaction.

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
        steering: dict[str, Any] = {"experiment": self.experiment}
        if has_table(connection, "journal"):
            steering.update(_journal(connection, journal_rows, self.experiment))
        state = _experiment_state(connection, self.experiment)
        if not has_table(connection, "checkpoints"):
            return RunSummary(**steering, **_state_only(state))  # a file no run wrote yet
        column = "c.curation" if has_column(connection, "checkpoints", "curation") else "NULL"
        where = experiment_filter(connection)
        found = connection.execute(
            f"SELECT r.id, r.started, r.seed, c.generation, c.written, c.parameters, {column} "
            f"FROM runs r JOIN checkpoints c ON c.run_id = r.id WHERE {where} "
            "ORDER BY r.id DESC LIMIT 1",
            (self.experiment,),
        ).fetchone()
        if found is None:
            return RunSummary(**steering, **_state_only(state))
        run_id, started, seed, generation, written, parameters, curation = found
        elites: dict[Any, str] = {}
        queued = 0
        for kind, cell, net_id in connection.execute(
            "SELECT kind, cell, network_id FROM cells WHERE run_id = ?", (run_id,)
        ):
            if kind == "elite":
                with contextlib.suppress(WorkspaceCorrupt):  # a damaged cell is left out
                    elites[cell_from_json(cell)] = str(net_id)
            else:
                queued += 1
        archive = "archive" if has_column(connection, "history", "archive") else "NULL"
        rows = connection.execute(
            "SELECT generation, started, seconds, evaluated, failed, best, "
            f"{archive} FROM history WHERE run_id = ? ORDER BY generation DESC LIMIT ?",
            (run_id, history_rows),
        ).fetchall()
        marks = _object(curation)
        cleared = False
        if state is not None and _number(state.get("time")) > float(written):
            # The session changed the archive after this checkpoint: its state wins.
            marks, cleared = _object(state.get("curation")), state.get("cleared") is True
        return RunSummary(
            run_id=run_id,
            started=started,
            seed=seed,
            generation=generation,
            written=written,
            selection=_selection_section(parameters),
            elites={} if cleared else elites,
            queued=0 if cleared else queued,
            history=_readable(history_entry, reversed(rows)),
            curation=marks,
            cleared=cleared,
            **steering,
        )


def _experiment_state(connection: Any, experiment: str) -> dict[str, Any] | None:
    """The state the session last wrote for ``experiment`` (untrusted JSON), or None."""
    if not has_table(connection, "experiments"):
        return None
    row = connection.execute("SELECT state FROM experiments WHERE name = ?", (experiment,))
    found = row.fetchone()
    return None if found is None else _object(found[0])


def _state_only(state: dict[str, Any] | None) -> dict[str, Any]:
    if state is None:
        return {}
    return {"curation": _object(state.get("curation")), "cleared": state.get("cleared") is True}


def _object(text: Any) -> dict[str, Any] | None:
    if isinstance(text, dict):
        return text
    try:
        found = json.loads(text) if isinstance(text, str) else None
    except ValueError:
        return None
    return found if isinstance(found, dict) else None


def _number(value: Any) -> float:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    return float(value) if ok else float("-inf")


def _journal(connection: Any, rows: int, experiment: str) -> dict[str, Any]:
    """The journal's part of a summary: its last rows and the last start or stop."""
    where = experiment_filter(connection, "journal", "journal")
    columns = f"SELECT seq, time, generation, action, arguments FROM journal WHERE {where}"
    last = connection.execute(f"{columns} ORDER BY seq DESC LIMIT ?", (experiment, rows)).fetchall()
    starts = ", ".join("?" * len(LIFECYCLE_ACTIONS))
    lifecycle = connection.execute(
        f"{columns} AND action IN ({starts}) ORDER BY seq DESC LIMIT 1",
        (experiment, *LIFECYCLE_ACTIONS),
    ).fetchone()
    found = _readable(journal_entry, [] if lifecycle is None else [lifecycle])
    return {
        "journal": _readable(journal_entry, reversed(last)),
        "lifecycle": found[0] if found else None,
    }


def _readable(
    parse: Callable[[Sequence[Any]], dict[str, Any]], rows: Iterable[Sequence[Any]]
) -> list[dict[str, Any]]:
    """The rows ``parse`` can read; one damaged on disk is left out of a glance, unlogged.

    (A watcher polls every second: the table readers are where damage is reported.)
    """
    parsed = []
    for row in rows:
        with contextlib.suppress(WorkspaceCorrupt):
            parsed.append(parse(row))
    return parsed


def _selection_section(text: str) -> dict[str, Any]:
    try:
        found = json.loads(text).get("selection")
    except (TypeError, ValueError, AttributeError):
        return {}
    return found if isinstance(found, dict) else {}
