"""The session journal: a scripted steered session recorded, read back after reopening."""

from __future__ import annotations

import sqlite3

import pytest

from galapagos_nao.config.parameters import Parameters
from galapagos_nao.core import datasets
from galapagos_nao.core.clock import Stamp
from galapagos_nao.core.fingerprint import fingerprint
from galapagos_nao.core.network import Network
from galapagos_nao.store.journal import Journal
from galapagos_nao.store.workspace import SCHEMA_VERSION, Workspace

TINY = [("dense", [8, "relu"])]


@pytest.fixture
def tracked(tmp_path, tracked_session):
    store = Workspace(tmp_path / "w.db")
    yield tracked_session(store), store
    store.close()


def test_a_scripted_session_is_journaled_and_reads_back_after_reopening(tracked, small_mnist):
    session, store = tracked
    task = datasets.subset(small_mnist, 600, 200)
    selection, parameters, library = session.selection, session.parameters, session.library
    parameters.put("orchestration", {"generation_size": 3, "workers": 2})
    parameters.put("evolution", {"max_layers": 4, "forbid": ["sigmoid"]})
    session.evolve(TINY, 2, task, seed=0).result(timeout=300)
    cell, elite = next(iter(selection.elites().items()))
    selection.pin(cell)
    selection.favor(cell, 2)
    library.put(elite)
    other = Network([("dense", [12, "tanh"])])
    child = session.breed(elite, other, seed=1)
    selection.put_unevaluated(child)
    selection.unpin(cell)
    selection.veto(child.id)
    selection.clear_vetoes()
    library.remove(elite.id)
    run = session.evolve_continual(None, task, seed=1)
    run.stop()
    run.join(300)

    actions = [entry.action for entry in session.journal.entries()]
    expected = [
        "Parameters.put",
        "Parameters.put",
        "evolve",
        "Selection.put_unevaluated",  # the evolve's starting network
        "Selection.pin",
        "Selection.favor",
        "Library.put",
        "breed",
        "Selection.put_unevaluated",
        "Selection.unpin",
        "Selection.veto",
        "Selection.clear_vetoes",
        "Library.remove",
        "evolve_continual",
        "Run.stop",
    ]
    assert actions == expected
    store.close()

    reopened = Journal(workspace=lambda: Workspace(store.path, read_only=True)).entries()
    assert [entry.action for entry in reopened] == expected
    by_action = {entry.action: entry for entry in reopened}
    assert by_action["Parameters.put"].arguments == {
        "section": "evolution",
        "values": {"max_layers": 4, "forbid": ["sigmoid"]},
    }
    assert by_action["Library.put"].arguments["net"] == {
        "id": elite.id,
        "layers": [[name, list(params)] for name, params in elite.layers],
        "input_shape": [1, 28, 28],
        "n_classes": 10,
        "trained": True,
        "fingerprint": fingerprint(elite),
    }
    assert by_action["breed"].arguments["child"]["id"] == child.id
    assert by_action["Selection.pin"].generation == 2  # two generations were recorded before
    assert by_action["evolve"].generation == 0
    # The continual run went on from the archive's generation count, and its stop came
    # before it bred (or, had it bred already, before its selection).
    assert by_action["evolve_continual"].stamp == Stamp(2, "breeding")
    assert by_action["Run.stop"].stamp in (Stamp(2, "breeding"), Stamp(2, "selection"))
    assert {entry.session for entry in reopened} == {session.journal.session}
    assert [e.seq for e in reopened] == list(range(1, len(expected) + 1))
    assert all(a.time <= b.time for a, b in zip(reopened, reopened[1:], strict=False))


def test_an_untracked_journal_stays_in_memory_then_moves_into_a_workspace(tmp_path):
    holder: list[Workspace] = []
    parameters = Parameters()
    journal = Journal(workspace=lambda: holder[0] if holder else None)
    parameters.listeners.append(journal.listener("Parameters"))
    parameters.put("training", {"epochs": 2})
    assert [e.action for e in journal.entries()] == ["Parameters.put"]
    with Workspace(tmp_path / "w.db") as store:
        holder.append(store)
        parameters.put("training", {"epochs": 3})
        rows = store.journal_rows()
    assert [row["arguments"]["values"] for row in rows] == [{"epochs": 2}, {"epochs": 3}]


def test_a_schema_2_workspace_gains_the_journal_table(tmp_path):
    path = tmp_path / "old.db"
    Workspace(path).close()
    with sqlite3.connect(path) as old:
        old.execute("DROP TABLE journal")
        old.execute("UPDATE meta SET value = '2' WHERE key = 'schema_version'")
    with Workspace(path, read_only=True) as view:
        assert view.journal_rows() == []
    with Workspace(path) as store:
        store.append_journal([(1.0, 0, "breeding", "s1", "Parameters.put", {"section": "x"})])
        assert [row["action"] for row in store.journal_rows()] == ["Parameters.put"]
    with sqlite3.connect(path) as upgraded:
        version = upgraded.execute("SELECT value FROM meta WHERE key = 'schema_version'")
        assert version.fetchone()[0] == str(SCHEMA_VERSION) == "7"


def test_a_schema_4_journal_gains_its_boundary_columns_and_old_rows_read_as_unknown(tmp_path):
    path = tmp_path / "old.db"
    Workspace(path).close()
    with sqlite3.connect(path) as old:
        old.execute("DROP TABLE journal")
        old.execute(
            "CREATE TABLE journal (seq INTEGER PRIMARY KEY AUTOINCREMENT, time REAL NOT NULL, "
            "generation INTEGER NOT NULL, action TEXT NOT NULL, arguments TEXT NOT NULL)"
        )
        old.execute(
            "INSERT INTO journal (time, generation, action, arguments) "
            "VALUES (1.0, 3, 'Selection.pin', '{\"cell\": 1}')"
        )
        old.execute("UPDATE meta SET value = '4' WHERE key = 'schema_version'")
    with Workspace(path, read_only=True) as view:
        (row,) = view.journal_rows()
        assert (row["generation"], row["phase"], row["session"]) == (3, None, None)
    journal = Journal(workspace=lambda: Workspace(path))
    journal.record("Selection.unpin", {"cell": 1})
    old_entry, new_entry = journal.entries()
    assert old_entry.stamp is None and new_entry.stamp == Stamp(0, "breeding")
    assert new_entry.session == journal.session


def test_a_journal_row_with_a_phase_of_its_own_reads_as_unrecorded(tmp_path):
    path = tmp_path / "w.db"
    with Workspace(path) as store:
        store.append_journal([(1.0, 2, "whenever", "s" * 200, "Selection.pin", {"cell": 1})])
    (entry,) = Journal(workspace=lambda: Workspace(path, read_only=True)).entries()
    assert entry.phase is None and entry.stamp is None and len(entry.session or "") == 64
