"""The watch reader: a real run's workspace as snapshots; missing, replaced and locked files."""

from __future__ import annotations

import os
import shutil

from galapagos_nao.store.watch_reader import WorkspaceReader
from galapagos_nao.store.workspace import Workspace


def test_a_real_run_reads_back_as_grid_marks_trends_and_events(watched_workspace):
    elites, pinned = watched_workspace["elites"], watched_workspace["pinned"]
    with WorkspaceReader(watched_workspace["path"]) as reader:
        snapshot = reader.poll()

    assert (snapshot.status, snapshot.state, snapshot.writer) == ("ok", "finished", None)
    assert (snapshot.generation, snapshot.seed, snapshot.levels) == (2, 0, (4,))
    assert [view.cell for view in snapshot.cells] == [1, 2, 3, 4]
    filled = {view.cell: view for view in snapshot.cells if view.network_id is not None}
    assert {cell: view.network_id for cell, view in filled.items()} == {
        cell: net.id for cell, net in elites.items()
    }
    assert all(filled[cell].fitness == net.val_acc for cell, net in elites.items())
    marked = [(view.cell, view.pinned, view.favor) for view in snapshot.cells if view.pinned]
    assert marked == [(pinned, True, 3.0)]
    assert [point.generation for point in snapshot.points] == [0, 1, 2]
    assert snapshot.points[-1].coverage == len(elites) / 4
    assert snapshot.points[-1].best_fitness == max(net.val_acc for net in elites.values())
    assert snapshot.rate is not None and snapshot.rate > 0
    kinds = {event.kind for event in snapshot.events}
    assert {"new", "journal"} <= kinds
    texts = [event.text for event in snapshot.events]
    assert texts[-2:] == [
        f"Selection.pin(cell={pinned})",
        f"Selection.favor(cell={pinned}, weight=3.0)",
    ]


def test_polling_takes_no_lock_and_sees_the_writer(watched_workspace, tmp_path):
    path = tmp_path / "w.db"
    shutil.copy(watched_workspace["path"], path)
    with WorkspaceReader(path) as reader:
        assert reader.poll().writer is None
        # This raises WorkspaceLocked if the reader holds the writer lock.
        writer = Workspace(path, read_only=False)
        try:
            snapshot = reader.poll()
            assert (snapshot.status, snapshot.writer) == ("ok", os.getpid())
            writer.put_library({})  # the writer writes while the reader holds its view open
        finally:
            writer.close()
        assert reader.poll().writer is None


def test_a_missing_file_then_a_garbage_one_then_a_replaced_one(watched_workspace, tmp_path):
    path = tmp_path / "w.db"
    with WorkspaceReader(path) as reader:
        missing = reader.poll()
        assert (missing.status, missing.cells) == ("missing", ())
        path.write_bytes(b"not a database at all" * 10)
        unreadable = reader.poll()
        assert unreadable.status == "unreadable" and "not a SQLite database" in unreadable.message
        empty = tmp_path / "empty.db"
        Workspace(empty).close()
        os.replace(empty, path)
        assert (reader.poll().status, reader.poll().state) == ("ok", "no run yet")
        copy = tmp_path / "copy.db"
        shutil.copy(watched_workspace["path"], copy)
        os.replace(copy, path)  # moved over the open one: a new inode, read afresh
        assert reader.poll().generation == 2
        path.unlink()
        assert reader.poll().status == "missing"


def test_an_unchanged_workspace_is_not_read_again(watched_workspace, tmp_path, monkeypatch):
    path = tmp_path / "w.db"
    shutil.copy(watched_workspace["path"], path)
    calls = []
    original = Workspace.summary

    def counted(self, **kwargs):
        calls.append(kwargs)
        return original(self, **kwargs)

    monkeypatch.setattr(Workspace, "summary", counted)
    with WorkspaceReader(path) as reader:
        first, second = reader.poll(), reader.poll()
        assert len(calls) == 1 and first.cells == second.cells
        writer = Workspace(path, read_only=False)
        # The session writes the archive's marks as they are now (an unpin): the state, not a log.
        writer.put_experiment_state({"pinned": [], "favored": [], "vetoed": []}, cleared=False)
        writer.close()
        third = reader.poll()
    assert len(calls) == 2
    assert not any(view.pinned for view in third.cells)
