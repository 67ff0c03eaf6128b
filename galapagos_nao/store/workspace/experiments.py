"""The ``experiments`` table: the named experiments of a workspace, listed and described.

A workspace holds experiments the way Optuna's storage holds studies: each is a
name with its own runs, checkpoints, history and journal (rows carry the
name), its task (the data its last run used) and the session's latest state of
its archive marks (pins, favor, a ``clear()``), written between checkpoints so
that every reader sees the archive as it is, not as a log of actions re-derives it.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from galapagos_nao.store.workspace.connection import WorkspaceConnection
from galapagos_nao.store.workspace.lock import process_name, writer_pid
from galapagos_nao.store.workspace.runs import experiment_filter
from galapagos_nao.store.workspace.schema import has_column, has_table

__all__ = ["ExperimentInfo", "ExperimentTables"]


@dataclass(frozen=True)
class ExperimentInfo:
    """One experiment of a workspace, as ``gn.experiments()`` lists it (plain values).

    Attributes:
        name: Its name.
        created: ``time.time()`` when it was made.
        runs: Runs with a checkpoint.
        cells: Filled cells after its last checkpoint.
        best_val_acc: The highest validation accuracy (fitness) among those elites.
        best_test_acc: The test accuracy of that elite (reported, never selected on).
        generation: Its last checkpointed archive generation, or None.
        last_activity: ``time.time()`` of its last checkpoint or journal row.
        task: The task its last run used (``{"name", "digest", ...}``), or None.
        writer: The process writing it now (``process 123 (ipython)``), or None.
    """

    name: str
    created: float
    runs: int = 0
    cells: int = 0
    best_val_acc: float | None = None
    best_test_acc: float | None = None
    generation: int | None = None
    last_activity: float | None = None
    task: dict[str, Any] | None = None
    writer: str | None = None

    def __repr__(self) -> str:
        best = "-" if self.best_val_acc is None else f"{self.best_val_acc:.4f}"
        generation = "-" if self.generation is None else str(self.generation)
        task = "-" if self.task is None else repr(self.task.get("name", "?"))
        return (
            f"<Experiment {self.name!r}: {self.cells} cells, best val_acc {best}, "
            f"{self.runs} run(s), generation {generation}, task {task}>"
        )


class ExperimentTables(WorkspaceConnection):
    """Lists experiments and keeps each one's task and state: a part of :class:`.Workspace`."""

    def experiments(self) -> list[ExperimentInfo]:
        """Every experiment of the workspace, oldest first (``default`` always among them)."""
        with self._reading("experiments") as connection:
            if not has_table(connection, "experiments"):
                return [ExperimentInfo("default", 0.0, **self._described(connection, "default"))]
            rows = connection.execute(
                "SELECT name, created, task FROM experiments ORDER BY created, name"
            ).fetchall()
            found = [
                ExperimentInfo(
                    str(name),
                    float(created),
                    task=_object(task),
                    **self._described(connection, str(name)),
                )
                for name, created, task in rows
            ]
        return found

    def _described(self, connection: Any, name: str) -> dict[str, Any]:
        described: dict[str, Any] = {}
        runs, last = connection.execute(
            "SELECT COUNT(*), MAX(r.id) FROM runs r JOIN checkpoints c ON c.run_id = r.id "
            f"WHERE {experiment_filter(connection)}",
            (name,),
        ).fetchone()
        described["runs"] = int(runs)
        pid = writer_pid(self.path, name)
        if pid is not None:
            described["writer"] = f"process {pid}{process_name(pid)}"
        if last is not None:
            generation, written = connection.execute(
                "SELECT generation, written FROM checkpoints WHERE run_id = ?", (last,)
            ).fetchone()
            described.update(generation=int(generation), last_activity=float(written))
            row = connection.execute(
                "SELECT best FROM history WHERE run_id = ? ORDER BY generation DESC LIMIT 1",
                (last,),
            ).fetchone()
            if row is not None:
                described.update(_best(row[0]))
        if has_column(connection, "journal", "experiment"):
            (latest,) = connection.execute(
                "SELECT MAX(time) FROM journal WHERE experiment = ?", (name,)
            ).fetchone()
            if latest is not None:
                described["last_activity"] = max(
                    float(latest), described.get("last_activity") or 0.0
                )
        return described

    def experiment_task(self) -> dict[str, Any] | None:
        """The task the current experiment's last run used (:meth:`put_experiment_task`)."""
        with self._reading("experiment task") as connection:
            if not has_table(connection, "experiments"):
                return None
            row = connection.execute(
                "SELECT task FROM experiments WHERE name = ?", (self.experiment,)
            ).fetchone()
        return None if row is None else _object(row[0])

    def experiment_state(self) -> dict[str, Any] | None:
        """The archive state the session last wrote for the current experiment (untrusted)."""
        with self._reading("experiment state") as connection:
            if not has_column(connection, "experiments", "state"):
                return None
            row = connection.execute(
                "SELECT state FROM experiments WHERE name = ?", (self.experiment,)
            ).fetchone()
        found = None if row is None else _object(row[0])
        if found is not None and not isinstance(found.get("time"), (int, float)):
            return None
        return found

    def put_experiment_task(self, task: Mapping[str, Any]) -> None:
        """Records the task (plain JSON values) the current experiment's runs use now."""
        self._put_column("task", json.dumps(dict(task)))

    def put_experiment_state(self, curation: Mapping[str, Any], *, cleared: bool) -> None:
        """Records the archive's marks as the session has them now.

        Readers prefer it to an older checkpoint's; ``cleared``: the archive was
        emptied since that checkpoint.
        """
        state = {"time": time.time(), "curation": dict(curation), "cleared": bool(cleared)}
        self._put_column("state", json.dumps(state))

    def _put_column(self, column: str, value: str) -> None:
        with self._writing(f"experiment {column}") as connection:
            connection.execute(
                "INSERT OR IGNORE INTO experiments (name, created) VALUES (?, ?)",
                (self.experiment, time.time()),
            )
            connection.execute(
                f"UPDATE experiments SET {column} = ? WHERE name = ?", (value, self.experiment)
            )


def _best(text: str) -> dict[str, Any]:
    """Cells and the best elite's accuracies from a history row's ``best`` JSON."""
    try:
        rows = json.loads(text)
    except ValueError:
        return {}
    scored = [
        (row[1], row[2])
        for row in rows
        if isinstance(row, list) and len(row) == 3 and isinstance(row[1], (int, float))
    ]
    if not scored:
        return {"cells": len(rows) if isinstance(rows, list) else 0}
    val, test = max(scored, key=lambda pair: pair[0])
    return {"cells": len(rows), "best_val_acc": float(val), "best_test_acc": test}


def _object(text: Any) -> dict[str, Any] | None:
    try:
        found = json.loads(text) if isinstance(text, str) else None
    except ValueError:
        return None
    return found if isinstance(found, dict) else None
