"""The workspace object: an open file with its runs, the Library, the journal and a summary."""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Mapping
from typing import Any

from galapagos_nao.core.network import Network
from galapagos_nao.store.codec import CorruptFileError, from_bytes
from galapagos_nao.store.workspace.experiments import ExperimentTables
from galapagos_nao.store.workspace.journal_table import JournalTable
from galapagos_nao.store.workspace.row_digest import on_disk
from galapagos_nao.store.workspace.runs import RunTables
from galapagos_nao.store.workspace.summary import SummaryTables

__all__ = ["Workspace"]

# Named for the package, not the module: every workspace record comes from one logger.
logger = logging.getLogger("galapagos_nao.store.workspace")


class Workspace(RunTables, JournalTable, SummaryTables, ExperimentTables):
    """One workspace file, open for writing or as a read-only view of one experiment. Thread-safe.

    The file holds named experiments (:meth:`experiments`); this object reads
    and writes one of them at a time (:attr:`experiment`,
    :meth:`use_experiment`), and writes it only while it holds that
    experiment's writer lock. The Library is the whole workspace's.

    Most code uses :func:`~galapagos_nao.store.workspace.open` or
    :func:`~galapagos_nao.store.workspace.get` instead of building one directly.

    Args:
        path: The SQLite file (created with its folder when opened for writing).
        read_only: False: write access or :class:`WorkspaceLocked`; True: a
            read-only view; None: write access if no other process writes the
            experiment, else a read-only view (logged).
        experiment: The experiment to read and write (``default`` when not given).

    Raises:
        ValueError: if ``path`` is not a path.
        WorkspaceLocked: when ``read_only=False`` and another process writes the experiment.
        WorkspaceCorrupt: naming the file and the damage, when opening a damaged
            file for writing (a read-only view opens and lists the damage in
            :attr:`problems`).
        FileNotFoundError: for a read-only view of a file that does not exist.
    """

    # -- Library -----------------------------------------------------------------------

    def put_library(self, blobs: Mapping[str, bytes]) -> None:
        """Stores network files (id → :func:`persistence.to_bytes` bytes) in one transaction."""
        now = time.time()
        with self._writing("library entries") as connection:
            connection.executemany(
                "INSERT OR REPLACE INTO library (id, added, blob) VALUES (?, ?, ?)",
                [(net_id, now, sqlite3.Binary(blob)) for net_id, blob in blobs.items()],
            )

    def remove_library(self, net_id: str) -> None:
        """Deletes one Library entry (no error if it is absent)."""
        with self._writing("library removal") as connection:
            connection.execute("DELETE FROM library WHERE id = ?", (net_id,))

    def clear_library(self) -> None:
        """Deletes every Library entry."""
        with self._writing("library clearing") as connection:
            connection.execute("DELETE FROM library")

    def load_library(self) -> tuple[dict[str, Network], dict[str, str]]:
        """Every Library entry that reads back intact, and what is wrong with the others.

        Returns:
            ``(networks, problems)``: id → Network in the order they were added,
            and id → message naming the file, the entry and the damage.
        """
        found: list[tuple[float, Network]] = []
        problems: dict[str, str] = {}
        # Ids come from the id index alone and each row is read on its own, so
        # a damaged page costs only the entries on it.
        for net_id in self._ids("SELECT id FROM library", "library"):
            source = f"{self.path} (library entry {net_id})"
            try:
                with self._reading(f"library entry {net_id}") as connection:
                    row = connection.execute(
                        "SELECT added, blob FROM library WHERE id = ?", (net_id,)
                    ).fetchone()
                added, blob = (None, None) if row is None else row
                if not isinstance(blob, bytes) or not isinstance(added, (int, float)):
                    raise CorruptFileError(f"{source}: its row is not a Library entry's")
                net = from_bytes(blob, source)
                if net.id != net_id:  # the key is what get/remove use: it must be the net's
                    raise CorruptFileError(f"{source}: holds network {net.id}, not {net_id}")
                found.append((added, net))
            except CorruptFileError as error:
                problems[net_id] = on_disk(error)
                logger.error("%s", error)
        found.sort(key=lambda item: item[0])
        return {net.id: net for _, net in found}, problems

    def _ids(self, query: str, what: str) -> list[Any]:
        with self._reading(what) as connection:
            return [row[0] for row in connection.execute(query)]
