"""Runs in the workspace: each run's last archive checkpoint and its generation history.

A checkpoint (elites, queue, the Parameters in force and the run generator's
state) and the generation's history row are written in one transaction; reading
one back leaves out, and names, any network whose bytes are damaged.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from galapagos_nao.core.checks import describe
from galapagos_nao.core.network import Network
from galapagos_nao.store.codec import CorruptFileError, from_bytes
from galapagos_nao.store.workspace.connection import WorkspaceConnection
from galapagos_nao.store.workspace.errors import WorkspaceCorrupt, WorkspaceError
from galapagos_nao.store.workspace.row_digest import (
    DIGEST_COLUMN,
    checkpoint_values,
    on_disk,
    row_problem,
    seal_checkpoint,
    seal_rows,
    skip_damaged,
)
from galapagos_nao.store.workspace.run_rows import cell_from_json, checkpoint_json, history_entry
from galapagos_nao.store.workspace.schema import has_column

__all__ = [
    "Checkpoint",
    "RunInfo",
    "RunTables",
    "cell_from_json",
    "experiment_filter",
    "history_entry",
]

# Named for the package, not the module: every workspace record comes from one logger.
logger = logging.getLogger("galapagos_nao.store.workspace")


@dataclass(frozen=True)
class RunInfo:
    """A run recorded in the workspace.

    Attributes:
        id: The run's number in this workspace.
        started: ``time.time()`` of its first checkpoint.
        seed: The seed it was started with, or None for fresh entropy.
        generation: Its last completed (checkpointed) generation.
        written: ``time.time()`` of that checkpoint.
    """

    id: int
    started: float
    seed: int | None
    generation: int
    written: float


@dataclass(frozen=True)
class Checkpoint:
    """A run's archive at the end of its last completed generation.

    Attributes:
        run_id: The run.
        generation: The generation it closed (0-based, resumed ones counted).
        written: ``time.time()`` when it was committed.
        elites: Cell (int or tuple of ints) → elite, in cell order.
        queue: Negative key → network waiting for the next generation.
        parameters: The Parameters snapshot in force after that generation.
        rng_state: The run generator's ``bit_generator.state``.
        problems: Entries that could not be read (each names the file and entry);
            their cells are missing from ``elites``/``queue``.
        stream: The run's task stream state (position, replay memory, R) as
            ``TaskStream.state()`` made it, or None for a run on one task.
        curation: The archive's pins, favor and vetoes as ``CurationState.as_dict``
            made them, or None (a checkpoint written before they were kept).
    """

    run_id: int
    generation: int
    written: float
    elites: dict[Any, Network]
    queue: dict[int, Network]
    parameters: dict[str, dict[str, Any]]
    rng_state: dict[str, Any]
    problems: tuple[str, ...] = field(default=())
    stream: dict[str, Any] | None = None
    curation: dict[str, Any] | None = None


# -- cell keys as JSON ---------------------------------------------------------------


def _cell_to_json(cell: Any) -> str:
    # Cells are ints for one measure and tuples of ints for several; JSON keeps both.
    return json.dumps(list(cell) if isinstance(cell, tuple) else cell)


def _cell_order(cell: Any) -> tuple[int, ...]:
    return cell if isinstance(cell, tuple) else (cell,)


# -- the tables ----------------------------------------------------------------------


class RunTables(WorkspaceConnection):
    """The ``runs``, ``checkpoints``, ``cells``, ``networks`` and ``history`` tables.

    A part of :class:`~galapagos_nao.store.workspace.Workspace`, which documents
    the arguments.
    """

    # -- checkpoints ------------------------------------------------------------------

    def write_checkpoint(
        self,
        run_id: int | None,
        generation: int,
        *,
        elites: Mapping[Any, str],
        queue: Mapping[int, str],
        blobs: Mapping[str, bytes],
        parameters: Mapping[str, Any],
        rng_state: Mapping[str, Any],
        history: Mapping[str, Any],
        seed: int | None = None,
        stream: Mapping[str, Any] | None = None,
        curation: Mapping[str, Any] | None = None,
    ) -> int:
        """Replaces a run's checkpoint and appends its history row, in one transaction.

        Args:
            run_id: The run, or None to record a new one (with ``seed``).
            generation: The generation just completed; must be later than the
                run's last checkpoint.
            elites: Cell → network id.
            queue: Queue key → network id.
            blobs: Network files (id → bytes) not stored yet; ids in ``elites`` or
                ``queue`` without a blob must already be stored.
            parameters: The Parameters snapshot in force.
            rng_state: The generator's ``bit_generator.state`` (JSON-able).
            history: ``started``, ``seconds``, ``evaluated``, ``failed`` and
                ``best`` (cell → ``[val_acc, test_acc]``) of the generation, and
                optionally ``archive``: the Selection's history entry as
                ``HistoryEntry.as_dict()`` makes it (JSON-able).
            seed: The seed of a new run.
            stream: The run's task stream state (JSON-able), or None.
            curation: The archive's pins, favor and vetoes (JSON-able), or None.

        Returns:
            The run's id.

        Raises:
            WorkspaceError: if the generation does not move forward or the write fails.
            WorkspaceLocked: on a read-only view.
        """
        params_json = json.dumps(parameters)
        rng_json = json.dumps(rng_state, default=_json_array)
        stream_json = None if stream is None else json.dumps(stream)
        curation_json = None if curation is None else json.dumps(curation)
        best_json = json.dumps(
            [[json.loads(_cell_to_json(c)), *v] for c, v in history["best"].items()]
        )
        now = time.time()
        with self._writing("checkpoint") as connection:
            if run_id is None:
                cursor = connection.execute(
                    "INSERT INTO runs (started, seed, experiment) VALUES (?, ?, ?)",
                    (now, seed, self.experiment),
                )
                run_id = int(cursor.lastrowid or 0)
            last = connection.execute(
                "SELECT generation FROM checkpoints WHERE run_id = ?", (run_id,)
            ).fetchone()
            if last is not None and generation <= last[0]:
                raise WorkspaceError(
                    f"{self.path}: run {run_id} is checkpointed at generation {last[0]}; "
                    f"refusing {generation}"
                )
            connection.executemany(
                "INSERT OR REPLACE INTO networks (id, blob) VALUES (?, ?)",
                [(net_id, sqlite3.Binary(blob)) for net_id, blob in blobs.items()],
            )
            connection.execute("DELETE FROM cells WHERE run_id = ?", (run_id,))
            cells = [(run_id, "elite", _cell_to_json(c), n) for c, n in elites.items()]
            cells += [(run_id, "queue", _cell_to_json(k), n) for k, n in queue.items()]
            connection.executemany(
                "INSERT INTO cells (run_id, kind, cell, network_id) VALUES (?, ?, ?, ?)", cells
            )
            connection.execute(
                "INSERT OR REPLACE INTO checkpoints "
                "(run_id, generation, written, parameters, rng_state, stream, curation) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                (run_id, generation, now, params_json, rng_json, stream_json, curation_json),
            )
            connection.execute(
                "INSERT OR REPLACE INTO history "
                "(run_id, generation, started, seconds, evaluated, failed, best, archive) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    run_id,
                    generation,
                    history["started"],
                    history["seconds"],
                    history["evaluated"],
                    history["failed"],
                    best_json,
                    None if history.get("archive") is None else json.dumps(history["archive"]),
                ),
            )
            where = "WHERE run_id = ? AND generation = ?"
            seal_rows(connection, "history", where, run_id, generation)
            seal_checkpoint(connection, run_id)
            # Archive networks no checkpoint refers to any more go with the same commit.
            connection.execute(
                "DELETE FROM networks WHERE id NOT IN (SELECT network_id FROM cells)"
            )
        return run_id

    def runs(self) -> list[RunInfo]:
        """Every run of the current experiment with a checkpoint, oldest first."""
        with self._reading("runs") as connection:
            rows = connection.execute(
                "SELECT r.id, r.started, r.seed, c.generation, c.written FROM runs r "
                f"JOIN checkpoints c ON c.run_id = r.id WHERE {experiment_filter(connection)} "
                "ORDER BY r.id",
                (self.experiment,),
            ).fetchall()
        return [RunInfo(*row) for row in rows]

    def last_run(self) -> RunInfo | None:
        """The current experiment's most recently started run with a checkpoint, or None."""
        runs = self.runs()
        return runs[-1] if runs else None

    def _run_or_last(self, run_id: int | None) -> int | None:
        if run_id is not None:
            return run_id
        last = self.last_run()
        return None if last is None else last.id

    def checkpoint(self, run_id: int | None = None) -> Checkpoint | None:
        """A run's last checkpoint (the last run's when ``run_id`` is None), or None.

        Networks whose bytes are damaged are left out and listed in
        :attr:`Checkpoint.problems`; the rest loads.

        Raises:
            WorkspaceCorrupt: if the checkpoint row itself cannot be read.
        """
        run_id = self._run_or_last(run_id)
        if run_id is None:
            return None
        # the checkpoint and the networks it names, as one commit left them
        with self._snapshot(f"checkpoint of run {run_id}") as connection:
            # The values its digest covers are the values read: nothing unchecked is used.
            # (A read-only view of an older file lacks columns: they read as NULL.)
            values = checkpoint_values(connection, run_id)
            if values is None:
                return None
            if has_column(connection, "checkpoints", DIGEST_COLUMN):
                (digest,) = connection.execute(
                    f"SELECT {DIGEST_COLUMN} FROM checkpoints WHERE run_id = ?", (run_id,)
                ).fetchone()
                problem = row_problem("checkpoints", values, digest)
                if problem is not None:
                    raise WorkspaceCorrupt(f"{self.path}: checkpoint of run {run_id} is {problem}")
            generation, written = values[1], values[2]
            if isinstance(generation, bool) or not isinstance(generation, int) or generation < 0:
                raise WorkspaceCorrupt(
                    f"{self.path}: checkpoint of run {run_id} is damaged on disk: "
                    f"generation {describe(generation)}"
                )
            cells = [tuple(cell) for cell in values[-1]]
            parameters, rng_state, stream_state, curation_state = checkpoint_json(
                f"{self.path}: checkpoint of run {run_id}", values[3:7]
            )
            elites, queue, problems = self._cell_networks(cells)
            return Checkpoint(
                run_id,
                generation,
                written,
                elites,
                queue,
                parameters,
                rng_state,
                tuple(problems),
                stream_state,
                curation_state,
            )

    def damaged_checkpoints(self) -> list[str]:
        """Why each checkpoint of any experiment does not read back.

        One whose run row changed (its id or experiment) is missing from
        :meth:`runs`: this names it as damage on disk, not as "no run".
        """
        with self._reading("checkpoints") as connection:
            if not has_column(connection, "checkpoints", DIGEST_COLUMN):
                return []
            rows = connection.execute(f"SELECT run_id, {DIGEST_COLUMN} FROM checkpoints").fetchall()
            found = []
            for run_id, digest in rows:
                values = checkpoint_values(connection, run_id) or []
                problem = row_problem("checkpoints", values, digest)
                if problem is None and values[-4] is None:  # runs.started is NOT NULL
                    problem = "damaged on disk: its run is missing"
                if problem is not None:
                    found.append(f"{self.path}: checkpoint of run {describe(run_id)} is {problem}")
        return found

    def _cell_networks(
        self, cells: list[tuple[str, str, str]]
    ) -> tuple[dict[Any, Network], dict[int, Network], list[str]]:
        elites: dict[Any, Network] = {}
        queue: dict[int, Network] = {}
        problems: list[str] = []
        for kind, cell_json, net_id in cells:
            source = f"{self.path} (archive network {net_id})"
            try:
                with self._reading(f"archive network {net_id}") as connection:
                    row = connection.execute(
                        "SELECT blob FROM networks WHERE id = ?", (net_id,)
                    ).fetchone()
                if row is None or not isinstance(row[0], bytes):
                    raise CorruptFileError(f"{source}: missing")
                net = from_bytes(row[0], source)
                if net.id != net_id:
                    raise CorruptFileError(f"{source}: holds network {net.id}, not {net_id}")
            except CorruptFileError as error:
                problems.append(on_disk(error))
                logger.error("%s", error)
                continue
            try:
                cell = cell_from_json(cell_json)
            except WorkspaceCorrupt as error:
                problems.append(f"{source}: its cell {describe(cell_json)} is {error}")
                continue
            (elites if kind == "elite" else queue)[cell] = net
        elites = dict(sorted(elites.items(), key=lambda item: _cell_order(item[0])))
        queue = dict(sorted(queue.items(), reverse=True))  # -1, -2, … : the order they were queued
        return elites, queue, problems

    def history(self, run_id: int | None = None) -> list[dict[str, Any]]:
        """A run's generation history (the last run's when ``run_id`` is None), as plain dicts.

        Each dict has ``generation``, ``started`` (``time.time()``), ``seconds``,
        ``evaluated``, ``failed``, ``best``: cell → ``{"val_acc", "test_acc"}``
        of each elite after the generation, and ``archive``: the Selection's
        history entry (``HistoryEntry.as_dict()`` form) or None.
        """
        run_id = self._run_or_last(run_id)
        if run_id is None:
            return []
        with self._reading(f"history of run {run_id}") as connection:
            # A read-only view of a schema 1 file has no archive column.
            archive = "archive" if has_column(connection, "history", "archive") else "NULL"
            sealed = has_column(connection, "history", DIGEST_COLUMN)
            rows = connection.execute(
                "SELECT run_id, generation, started, seconds, evaluated, failed, best, "
                f"{archive}, {DIGEST_COLUMN if sealed else 'NULL'} FROM history "
                "WHERE run_id = ? ORDER BY generation",
                (run_id,),
            ).fetchall()
        entries = []
        for row in rows:
            problem = row_problem("history", row[:-1], row[-1]) if sealed else None
            try:
                if problem is None:
                    entries.append(history_entry(row[1:-1]))
                    continue
            except WorkspaceCorrupt as error:
                problem = str(error)
            skip_damaged(self.path, f"history row of generation {describe(row[1])}", problem)
        return entries


def experiment_filter(connection: sqlite3.Connection, table: str = "runs", alias: str = "r") -> str:
    """A WHERE clause matching one experiment (``?``) on ``table``'s rows.

    A read-only view of a file older than experiments matches its rows for
    ``default`` only, as an upgrade would name them.
    """
    if has_column(connection, table, "experiment"):
        return f"{alias}.experiment = ?"
    return "? = 'default'"


def _json_array(value: Any) -> Any:
    # Some bit generators (MT19937) keep their key as a numpy array.
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"cannot store {describe(value)} in a checkpoint")
