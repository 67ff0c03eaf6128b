"""Damage in workspace rows is detected, named and contained (issue 22, findings 8 and 9).

Every test writes a real workspace, then changes its SQLite file behind the
library's back with plain ``sqlite3``, as a flipped disk bit or a hand edit would.
Journal, history and checkpoint rows carry a digest, so a change is detected;
a damaged row is skipped with a ``WorkspaceCorrupt`` warning and the others stay
readable; errors say "damaged on disk"; and no raw ``JSONDecodeError``,
``TypeError`` or ``KeyError`` escapes even when a forger re-seals the row.
"""

from __future__ import annotations

import json
import random
import sqlite3
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import galapagos_nao as gn
from galapagos_nao.config.parameters import Parameters
from galapagos_nao.config.setting_checks import optional_seed
from galapagos_nao.core.network import Network
from galapagos_nao.run.checkpoint import ResumePoint
from galapagos_nao.store import persistence
from galapagos_nao.store.journal import Journal
from galapagos_nao.store.library import Library
from galapagos_nao.store.workspace import Workspace, WorkspaceCorrupt, WorkspaceError
from galapagos_nao.store.workspace.row_digest import DIGESTED_TABLES, row_digest, seal_rows

LAYERS = [("dense", [4, "relu"])]


def network(val_acc: float) -> Network:
    return Network(LAYERS, val_acc=val_acc, weights=gn.build(LAYERS).state_dict())


def written(path: Path, generations: int = 3) -> Path:
    """A workspace with a run of ``generations`` checkpoints and four journal rows."""
    rng = np.random.default_rng(1)
    with Workspace(path) as store:
        run_id = None
        for generation in range(generations):
            elite = network(0.5 + generation / 10)
            run_id = store.write_checkpoint(
                run_id,
                generation,
                elites={1: elite.id},
                queue={},
                blobs={elite.id: persistence.to_bytes(elite)},
                parameters=Parameters().snapshot(),
                rng_state=rng.bit_generator.state,
                history={
                    "started": 10.0 + generation,
                    "seconds": 1.5,
                    "evaluated": 4,
                    "failed": 0,
                    "best": {1: [elite.val_acc, None]},
                    "archive": {"generation": generation},
                },
                seed=7,
            )
        store.append_journal(
            [(1.0 + i, i, "breeding", "s1", f"Selection.pin{i}", {"cell": i}) for i in range(4)]
        )
    return path


def tamper(path: Path, sql: str, *args: Any) -> None:
    with sqlite3.connect(path) as connection:
        changed = connection.execute(sql, args).rowcount
    connection.close()
    assert changed >= 1, sql


def reseal(path: Path, table: str) -> None:
    """Recomputes every digest of ``table``, as a forger who knows the format would."""
    with sqlite3.connect(path) as connection:
        seal_rows(connection, table)
    connection.close()


# -- finding 8: database flips are detected, not read as altered values -----------------


def test_a_changed_journal_row_is_skipped_with_a_warning_and_the_others_stay(tmp_path, caplog):
    path = written(tmp_path / "w.db")
    tamper(path, "UPDATE journal SET arguments = ? WHERE seq = 2", json.dumps({"cell": 99}))
    with Workspace(path, read_only=True) as view, caplog.at_level("WARNING"):
        actions = [row["action"] for row in view.journal_rows()]
    assert actions == ["Selection.pin0", "Selection.pin2", "Selection.pin3"]
    assert "WorkspaceCorrupt" in caplog.text and "journal row 2" in caplog.text
    assert "damaged on disk" in caplog.text


def test_one_bad_journal_row_does_not_break_the_journal_in_a_new_session(tmp_path, caplog):
    path = written(tmp_path / "w.db")
    tamper(path, "UPDATE journal SET arguments = '{not json', time = 'x' WHERE seq = 3")
    reseal(path, "journal")  # even re-sealed, a row of the wrong types is refused
    with Workspace(path) as store, caplog.at_level("WARNING"):
        view = Journal(workspace=lambda: store)()  # what gn.journal() returns
    assert [entry.action for entry in view] == [
        "Selection.pin0",
        "Selection.pin1",
        "Selection.pin3",
    ]
    assert "journal row 3 is damaged on disk" in caplog.text


def test_a_changed_history_row_is_skipped_and_named(tmp_path, caplog):
    path = written(tmp_path / "w.db")
    tamper(path, "UPDATE history SET evaluated = 40 WHERE generation = 1")
    with Workspace(path, read_only=True) as view, caplog.at_level("WARNING"):
        rows = view.history()
    assert [row["generation"] for row in rows] == [0, 2]
    assert "history row of generation 1 is damaged on disk" in caplog.text


def test_renamed_checkpoint_keys_are_damage_not_defaults(tmp_path):
    path = written(tmp_path / "w.db")
    tamper(
        path,
        "UPDATE checkpoints SET parameters = replace(parameters, '\"selection\"', '\"selectoin\"')",
    )
    with Workspace(path) as store:
        with pytest.raises(
            WorkspaceCorrupt, match=r"w\.db: checkpoint of run 1 is damaged on disk"
        ):
            store.checkpoint()
        with pytest.raises(WorkspaceCorrupt, match="damaged on disk"):
            ResumePoint.read(store, None)
        assert [row["generation"] for row in store.history()] == [0, 1, 2]  # the rest reads


def test_a_changed_cell_or_seed_is_caught_by_the_checkpoint_digest(tmp_path):
    path = written(tmp_path / "w.db")
    tamper(path, "UPDATE cells SET cell = '2'")
    view = Workspace(path, read_only=True)
    with view, pytest.raises(WorkspaceCorrupt, match="damaged on disk"):
        view.checkpoint()
    path = written(tmp_path / "v.db")
    tamper(path, "UPDATE runs SET seed = 8")
    view = Workspace(path, read_only=True)
    with view, pytest.raises(WorkspaceCorrupt, match="damaged on disk"):
        view.checkpoint()


def test_every_single_value_change_in_a_digested_row_is_detected(tmp_path, caplog):
    """Each column of the first row of each digested table, changed: each change is named."""
    original = written(tmp_path / "w.db")
    generator = random.Random(3)
    tried, detected = 0, []
    for table, columns in DIGESTED_TABLES.items():
        for column in columns:
            path = tmp_path / f"{table}-{column}.db"
            path.write_bytes(original.read_bytes())
            with sqlite3.connect(path) as connection:
                rowid, value = connection.execute(
                    f"SELECT rowid, {column} FROM {table} ORDER BY rowid LIMIT 1"
                ).fetchone()
            connection.close()
            changed = altered(value, generator)
            tamper(path, f"UPDATE {table} SET {column} = ? WHERE rowid = ?", changed, rowid)
            tried += 1
            caplog.clear()
            with Workspace(path, read_only=True) as view, caplog.at_level("WARNING"):
                if table == "journal":
                    named = len(view.journal_rows()) == 3 and (
                        "damaged on disk" in caplog.text or column == "experiment"  # moved away
                    )
                elif table == "history":
                    named = len(view.history(1)) == 2 and (
                        "damaged on disk" in caplog.text or column == "run_id"  # moved away
                    )
                else:
                    run_id = changed if column == "run_id" else 1
                    with pytest.raises(WorkspaceCorrupt, match="damaged on disk"):
                        view.checkpoint(run_id)
                    named = True
            if named:
                detected.append(f"{table}.{column}")
    assert len(detected) == tried == sum(len(c) for c in DIGESTED_TABLES.values()), detected


def altered(value: Any, generator: random.Random) -> Any:
    """``value`` with one small change of the kind a flipped bit makes."""
    if isinstance(value, str) and value:
        index = generator.randrange(len(value))
        return value[:index] + chr(ord(value[index]) ^ 1) + value[index + 1 :]
    if isinstance(value, bool) or value is None:
        return "x"
    if isinstance(value, int):
        return value ^ 1024  # a high bit: a low one may land on another row's key
    if isinstance(value, float):
        return value + 2.0**-20
    return "x"


# -- finding 9: no raw errors, and damage is not blamed on the caller -------------------


@pytest.mark.parametrize(
    ("table", "sql"),
    [
        ("history", "UPDATE history SET best = '[[1, 2]]' WHERE generation = 0"),
        ("history", "UPDATE history SET best = '{' WHERE generation = 0"),
        ("history", "UPDATE history SET archive = '[1]' WHERE generation = 0"),
        ("history", "UPDATE history SET started = 'soon' WHERE generation = 0"),
        ("journal", "UPDATE journal SET generation = 'two' WHERE seq = 1"),
        ("journal", "UPDATE journal SET action = x'00ff' WHERE seq = 1"),
    ],
)
def test_resealed_rows_of_the_wrong_shape_are_damage_not_raw_errors(tmp_path, caplog, table, sql):
    path = written(tmp_path / "w.db")
    tamper(path, sql)
    reseal(path, table)
    with Workspace(path, read_only=True) as view, caplog.at_level("WARNING"):
        kept = view.history() if table == "history" else view.journal_rows()
        view.summary()  # the watcher's glance leaves the row out too
    assert len(kept) == (2 if table == "history" else 3)
    assert "damaged on disk" in caplog.text


@pytest.mark.parametrize(
    "sql",
    [
        'UPDATE checkpoints SET rng_state = \'{"bit_generator": "PCG64"}\'',
        'UPDATE checkpoints SET rng_state = \'{"bit_generator": "MT19937", "state": 3}\'',
        "UPDATE checkpoints SET parameters = '[1, 2]'",
        "UPDATE checkpoints SET stream = '{'",
        "UPDATE runs SET seed = 'x'",
        "UPDATE runs SET seed = -5",
        "UPDATE cells SET cell = '\"one\"'",
    ],
)
def test_a_resealed_damaged_checkpoint_is_named_as_damage_on_disk(tmp_path, sql):
    path = written(tmp_path / "w.db")
    tamper(path, sql)
    reseal(path, "checkpoints")
    store = Workspace(path)
    with store, pytest.raises(WorkspaceCorrupt, match="damaged on disk") as caught:
        ResumePoint.read(store, None)
    assert "seed must be" not in str(caught.value).split("damaged on disk")[0]


def test_a_digest_covers_the_values_as_stored(tmp_path):
    path = written(tmp_path / "w.db")
    columns = ", ".join(DIGESTED_TABLES["journal"])
    with sqlite3.connect(path) as connection:
        row = connection.execute(f"SELECT {columns} FROM journal WHERE seq = 1").fetchone()
        (digest,) = connection.execute("SELECT digest FROM journal WHERE seq = 1").fetchone()
    connection.close()
    assert digest == row_digest("journal", row)


def test_an_older_workspace_gains_digests_for_the_rows_it_holds(tmp_path):
    path = written(tmp_path / "w.db")
    with sqlite3.connect(path) as connection:
        for table in DIGESTED_TABLES:
            connection.execute(f"ALTER TABLE {table} DROP COLUMN digest")
        connection.execute("UPDATE meta SET value = '5' WHERE key = 'schema_version'")
    connection.close()
    with Workspace(path) as store:  # opened for writing: upgraded, rows sealed as they are
        assert len(store.journal_rows()) == 4 and len(store.history()) == 3
    tamper(path, "UPDATE history SET failed = 3 WHERE generation = 2")
    with Workspace(path, read_only=True) as view:
        assert [row["generation"] for row in view.history()] == [0, 1]


# -- finding 8: an import never silently replaces an entry ------------------------------


def test_import_refuses_an_id_already_present_unless_asked_to_replace(tmp_path):
    library = Library(workspace=Workspace(tmp_path / "w.db"))
    kept = network(0.5)
    library.put(kept)
    other = Network(LAYERS, id=kept.id, val_acc=0.9, weights=gn.build(LAYERS).state_dict())
    persistence.export_networks([other, network(0.6)], tmp_path / "in")
    with pytest.raises(ValueError, match=rf"already holds \['{kept.id}'\].*replace=True"):
        library.import_(tmp_path / "in")
    assert len(library) == 1 and library.get(kept.id).val_acc == 0.5
    assert sorted(library.import_(tmp_path / "in", replace=True)) == sorted(
        [kept.id, *(p.stem for p in (tmp_path / "in").iterdir() if p.stem != kept.id)]
    )
    assert library.get(kept.id).val_acc == 0.9


# -- finding 9: the seed given to evolve is checked like the setting ----------------------


@pytest.mark.parametrize("seed", [2**63, -1, 1.5, "7"])
def test_evolve_refuses_a_seed_no_checkpoint_can_hold_up_front(small_mnist, seed):
    selection = gn.selection.Selection()
    with pytest.raises(ValueError, match="seed must be"):
        gn.evolve(LAYERS, 1, small_mnist, selection=selection, seed=seed)
    assert selection.run is None and len(selection) == 0  # nothing started, nothing queued
    with pytest.raises(ValueError, match="seed must be"):  # the setting says the same
        optional_seed("seed", seed)


#: Values a damaged or hand-edited cell of any column may hold.
HOSTILE_CELLS: list[Any] = ["{", "[1]", b"\x00\xff", -1, 1.5, None]
#: Every column a session reads back, by table.
READ_COLUMNS = {
    **DIGESTED_TABLES,
    "runs": ("started", "seed", "experiment"),
    "cells": ("kind", "cell", "network_id"),
    "library": ("id", "added", "blob"),
    "networks": ("id", "blob"),
    "meta": ("value",),
}


def read_everything(path: Path) -> None:
    """What sessions, resumes and watchers read from a workspace."""
    with Workspace(path, read_only=True) as view:
        view.journal_rows()
        view.runs()
        view.history()
        view.summary()
        view.load_library()
        view.checkpoint()
        ResumePoint.read(view, None)


def test_no_tampered_value_raises_anything_but_workspace_corrupt(tmp_path):
    """Each column x hostile value, as written and re-sealed: damage, never a raw error."""
    original = written(tmp_path / "w.db")
    with Workspace(original) as store:
        Library(workspace=store).put(network(0.5))
    raw, tried = [], 0
    for table, columns in READ_COLUMNS.items():
        for column in columns:
            for value in HOSTILE_CELLS:
                for resealed in (False, True) if table in DIGESTED_TABLES else (False,):
                    path = tmp_path / f"case{tried}.db"
                    path.write_bytes(original.read_bytes())
                    try:
                        tamper(path, f"UPDATE {table} SET {column} = ?", value)
                    except sqlite3.IntegrityError:
                        continue  # NOT NULL or a key: SQLite itself keeps it out
                    if resealed:
                        reseal(path, table)
                    tried += 1
                    try:
                        read_everything(path)
                    except WorkspaceCorrupt:
                        pass
                    except WorkspaceError as error:  # the library's own word, not a raw error
                        assert "newer galapagos_nao" in str(error), error
                    except Exception as error:  # noqa: BLE001 - what the test counts
                        raw.append(f"{table}.{column}={value!r} sealed={resealed}: {error!r}")
    assert tried > 250
    assert raw == [], "\n".join(raw)
