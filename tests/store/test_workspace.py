"""The SQLite workspace: where it lives, durability, one writer, damaged files."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
import torch

import galapagos_nao as gn
from galapagos_nao.archive.selection import Selection
from galapagos_nao.config.parameters import Parameters
from galapagos_nao.core.network import Network
from galapagos_nao.run.checkpoint import generator_from_state
from galapagos_nao.store import persistence, workspace
from galapagos_nao.store.library import Library
from galapagos_nao.store.persistence import CorruptFileError
from galapagos_nao.store.workspace import (
    Workspace,
    WorkspaceCorrupt,
    WorkspaceError,
    WorkspaceLocked,
)

LAYERS = [("dense", [32, "relu"]), ("batch_norm", [])]


def network(val_acc: float = 0.5, layers=LAYERS) -> Network:
    """A record with real (freshly initialised) weights: no training needed to store one."""
    weights = gn.build(layers).state_dict()
    return Network(layers, val_acc=val_acc, test_acc=val_acc, weights=weights)


def same(a: Network, b: Network) -> bool:
    return (
        (a.id, a.layers, a.val_acc) == (b.id, b.layers, b.val_acc)
        and set(a.weights) == set(b.weights)
        and all(torch.equal(a.weights[k], b.weights[k]) for k in a.weights)
    )


@pytest.fixture(autouse=True)
def no_current_workspace():
    yield
    gn.workspace.close()  # never leak an open workspace into another test


def test_a_workspace_file_is_wal_with_full_sync(tmp_path):
    with Workspace(tmp_path / "w.db") as store:
        assert store._connection.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert store._connection.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
        assert not store.read_only and store.problems == ()
    assert store.closed


def test_the_default_workspace_follows_gn_home(tmp_path, monkeypatch):
    monkeypatch.setenv("GN_HOME", str(tmp_path / "one"))
    first = gn.workspace.get()
    assert first.path == tmp_path / "one" / "workspace.db" and first.path.exists()
    assert gn.workspace.get() is first and gn.workspace.current() is first
    monkeypatch.setenv("GN_HOME", str(tmp_path / "two"))
    second = gn.workspace.get()
    assert second.path == tmp_path / "two" / "workspace.db" and first.closed
    chosen = gn.workspace.open(tmp_path / "mine.db")  # an explicit choice stays put
    monkeypatch.setenv("GN_HOME", str(tmp_path / "three"))
    assert gn.workspace.get() is chosen and second.closed
    assert not (tmp_path / "three").exists()


def test_tests_can_never_open_the_users_workspace(monkeypatch):
    monkeypatch.delenv("GN_HOME")
    with pytest.raises(WorkspaceError, match="GN_HOME"):
        gn.workspace.get()
    with pytest.raises(WorkspaceError, match="GN_HOME"):
        gn.Library.put(network())
    assert gn.workspace.current() is None


def test_library_put_is_durable_when_it_returns():
    net = network(0.7)
    gn.Library.put(net)
    path = gn.workspace.current().path
    # another connection sees it at once: it is committed, not buffered
    with Workspace(path, read_only=True) as view:
        stored, problems = view.load_library()
    assert problems == {} and same(stored[net.id], net)
    # and a new session (the workspace closed and reopened) finds it
    gn.workspace.close()
    fresh = Library(workspace=gn.workspace.get)
    assert same(fresh.get(net.id), net) and len(fresh) == 1


def test_library_remove_and_clear_are_durable():
    nets = [network(i / 10) for i in range(3)]
    for net in nets:
        gn.Library.put(net)
    gn.Library.remove(nets[0].id)
    gn.workspace.close()
    assert set(gn.Library.get_all()) == {nets[1].id, nets[2].id}
    gn.Library.clear()
    gn.workspace.close()
    assert len(gn.Library) == 0


def test_a_second_writer_gets_a_clear_error_or_a_read_only_view(tmp_path):
    # flock locks belong to an open file, so a second open in this process meets
    # the lock as another process would (test_resume does it across processes).
    writer = Workspace(tmp_path / "w.db")
    net = network()
    Library(workspace=writer).put(net)
    with pytest.raises(WorkspaceLocked, match=f"being written by process {os.getpid()}"):
        Workspace(tmp_path / "w.db", read_only=False)
    view = Workspace(tmp_path / "w.db")
    assert view.read_only
    reader = Library(workspace=view)
    assert same(reader.get(net.id), net)
    with pytest.raises(WorkspaceLocked, match="experiment .default. is being written by process"):
        reader.put(network())
    assert len(reader) == 1
    later = network(0.9)
    Library(workspace=writer).put(later)
    assert later.id in reader  # the view notices the writer's commits
    selection = Selection(parameters=Parameters())
    gn.session.track(selection, view)
    with pytest.raises(WorkspaceLocked, match="read-only view"):
        gn.evolve(LAYERS, 1, selection=selection)
    assert len(selection) == 0
    writer.close()
    assert Workspace(tmp_path / "w.db", read_only=False).read_only is False  # lock released


def test_a_damaged_library_entry_is_named_and_the_rest_loads(tmp_path, caplog):
    store = Workspace(tmp_path / "w.db")
    library = Library(workspace=store)
    good, altered, bomb = network(0.1), network(0.2), network(0.3)
    for net in (good, altered, bomb):
        library.put(net)
    store.close()
    sentinel = tmp_path / "pwned"
    with sqlite3.connect(tmp_path / "w.db") as connection:
        blob = bytearray(
            connection.execute("SELECT blob FROM library WHERE id = ?", (altered.id,)).fetchone()[0]
        )
        blob[-3] ^= 0x10
        connection.execute("UPDATE library SET blob = ? WHERE id = ?", (bytes(blob), altered.id))
        hostile = (
            f"c__builtin__\nopen\n(V{sentinel}\nVw\ntR.".encode()
        )  # unpickling would create it
        connection.execute("UPDATE library SET blob = ? WHERE id = ?", (hostile, bomb.id))
    reopened = Library(workspace=Workspace(tmp_path / "w.db"))
    assert list(reopened.get_all()) == [good.id]
    assert same(reopened.get(good.id), good)
    with pytest.raises(CorruptFileError, match=rf"w\.db \(library entry {altered.id}\).*SHA-256"):
        reopened.get(altered.id)
    with pytest.raises(
        CorruptFileError, match=rf"w\.db \(library entry {bomb.id}\).*not a safetensors"
    ):
        reopened.get(bomb.id)
    assert altered.id in caplog.text and bomb.id in caplog.text
    assert not sentinel.exists()


def test_a_truncated_workspace_is_named_and_what_is_intact_still_loads(tmp_path):
    path = tmp_path / "w.db"
    nets = [network(i / 10, [("dense", [64, "relu"])]) for i in range(8)]
    with Workspace(path) as store:
        library = Library(workspace=store)
        for net in nets:
            library.put(net)
    whole = path.read_bytes()
    path.write_bytes(whole[: len(whole) * 6 // 10])
    truncated = path.read_bytes()
    with pytest.raises(WorkspaceCorrupt, match=rf"{path}: truncated: {len(truncated)} bytes"):
        Workspace(path)
    with Workspace(path, read_only=True) as view:
        assert any("truncated" in problem for problem in view.problems)
        intact, problems = view.load_library()
    assert 0 < len(intact) < len(nets) and len(intact) + len(problems) == len(nets)
    assert all(same(net, intact[net.id]) for net in nets if net.id in intact)
    assert all(str(path) in message and net_id in message for net_id, message in problems.items())
    assert path.read_bytes() == truncated  # looking changed nothing


def test_a_checkpoint_of_the_wal_cut_short_by_a_kill_is_not_truncation(tmp_path):
    # A writer killed while SQLite copies its WAL into the main file leaves the main
    # file shorter than its header says; the WAL still holds every committed page.
    path = tmp_path / "w.db"
    child = (
        "import os, sys\n"
        "from galapagos_nao.store.library import Library\n"
        "from galapagos_nao.core.network import Network\n"
        "from galapagos_nao.store.workspace import Workspace\n"
        "store = Workspace(sys.argv[1])\n"
        "library = Library(workspace=store)\n"
        "print(library.put(Network([('dense', [8, 'relu'])], val_acc=0.5)), flush=True)\n"
        "os._exit(0)  # dies without closing: the WAL is left behind, as after SIGKILL\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", child, str(path)], capture_output=True, text=True, check=True
    )
    net_id = done.stdout.strip()
    wal = path.with_name(path.name + "-wal")
    assert wal.stat().st_size > 0
    header = bytearray(path.read_bytes()[:100])
    page_size = int.from_bytes(header[16:18], "big")
    # the header of a checkpoint that got further than the pages it announces
    header[28:32] = (path.stat().st_size // page_size + 3).to_bytes(4, "big")
    header[92:96] = header[24:28]
    with path.open("r+b") as file:
        file.write(bytes(header))
    with Workspace(path, read_only=True) as view:
        assert view.problems == ()
        assert net_id in view.load_library()[0]
    with Workspace(path) as store:  # and the next writer opens it as SQLite recovers it
        assert net_id in store.load_library()[0]


def test_a_file_that_is_not_a_workspace_is_refused_untouched(tmp_path):
    path = tmp_path / "notes.db"
    path.write_text("my notes, not a database\n" * 10)
    with pytest.raises(WorkspaceCorrupt, match="not a SQLite database"):
        Workspace(path)
    with pytest.raises(FileNotFoundError, match="no workspace file"):
        Workspace(tmp_path / "missing.db", read_only=True)
    with pytest.raises(ValueError, match="path must be"):
        Workspace(3)  # type: ignore[arg-type]
    assert path.read_text() == "my notes, not a database\n" * 10


def checkpoint_args(nets: dict, queue: dict, rng: np.random.Generator) -> dict:
    return {
        "elites": {cell: net.id for cell, net in nets.items()},
        "queue": {key: net.id for key, net in queue.items()},
        "blobs": {net.id: persistence.to_bytes(net) for net in [*nets.values(), *queue.values()]},
        "parameters": Parameters().snapshot(),
        "rng_state": rng.bit_generator.state,
        "history": {
            "started": 1.0,
            "seconds": 2.0,
            "evaluated": 4,
            "failed": 1,
            "best": {cell: [net.val_acc, net.test_acc] for cell, net in nets.items()},
        },
    }


def test_checkpoints_keep_tuple_cells_queue_generator_and_history(tmp_path):
    store = Workspace(tmp_path / "w.db")
    elites = {(1, 2): network(0.6), (2, 1): network(0.8)}
    queue = {-1: Network([("dense", [3, "tanh"])])}
    rng = np.random.default_rng(4)
    rng.random(3)
    run_id = store.write_checkpoint(None, 0, seed=4, **checkpoint_args(elites, queue, rng))
    checkpoint = store.checkpoint()
    assert (checkpoint.run_id, checkpoint.generation, checkpoint.problems) == (run_id, 0, ())
    assert list(checkpoint.elites) == [(1, 2), (2, 1)]
    assert all(same(checkpoint.elites[c], elites[c]) for c in elites)
    assert checkpoint.queue[-1].id == queue[-1].id and checkpoint.queue[-1].weights is None
    assert checkpoint.parameters == Parameters().snapshot()
    restored = generator_from_state(checkpoint.rng_state)
    assert restored.random() == rng.random()
    assert store.history() == [
        {
            "generation": 0,
            "started": 1.0,
            "seconds": 2.0,
            "evaluated": 4,
            "failed": 1,
            "best": {
                (1, 2): {"val_acc": 0.6, "test_acc": 0.6},
                (2, 1): {"val_acc": 0.8, "test_acc": 0.8},
            },
            "archive": None,  # no Selection history entry was given
        }
    ]
    # never backwards, and a refused write leaves the previous checkpoint whole
    with pytest.raises(WorkspaceError, match="checkpointed at generation 0; refusing 0"):
        store.write_checkpoint(run_id, 0, **checkpoint_args({(1, 1): network()}, {}, rng))
    assert list(store.checkpoint().elites) == [(1, 2), (2, 1)]
    # a later checkpoint drops the networks no checkpoint refers to any more
    kept = {(1, 2): elites[(1, 2)]}
    store.write_checkpoint(run_id, 1, **checkpoint_args(kept, {}, rng))
    stored = {row[0] for row in store._connection.execute("SELECT id FROM networks")}
    assert stored == {elites[(1, 2)].id}
    assert [r.generation for r in store.runs()] == [1] and store.last_run().seed == 4


def test_a_damaged_archive_network_is_named_and_resume_refuses(tmp_path):
    store = Workspace(tmp_path / "w.db")
    elites = {1: network(0.6), 2: network(0.8)}
    store.write_checkpoint(None, 0, **checkpoint_args(elites, {}, np.random.default_rng(1)))
    store._connection.execute("UPDATE networks SET blob = ? WHERE id = ?", (b"junk", elites[2].id))
    checkpoint = store.checkpoint()
    assert list(checkpoint.elites) == [1] and len(checkpoint.problems) == 1
    assert f"(archive network {elites[2].id})" in checkpoint.problems[0]
    selection = Selection(parameters=Parameters())
    gn.session.track(selection, store)
    with pytest.raises(WorkspaceCorrupt, match=elites[2].id):
        gn.evolve_continual(resume=True, selection=selection)
    assert len(selection) == 0 and selection.run is None


def test_history_of_an_unknown_or_empty_workspace_is_empty(tmp_path):
    store = Workspace(tmp_path / "w.db")
    assert store.history() == [] and store.checkpoint() is None and store.last_run() is None
    assert store.history(42) == [] and store.checkpoint(42) is None


def test_closed_workspaces_say_so(tmp_path):
    store = Workspace(tmp_path / "w.db")
    store.close()
    store.close()  # idempotent
    with pytest.raises(WorkspaceError, match="closed"):
        store.runs()
    with pytest.raises(WorkspaceError, match="closed"):
        store.put_library({})
    assert repr(store).endswith("closed)")


def test_open_returns_the_current_workspace_for_the_same_file(tmp_path):
    first = workspace.open(tmp_path / "w.db")
    assert workspace.open(Path(tmp_path) / "w.db") is first
    other = workspace.open(tmp_path / "other.db")
    assert first.closed and workspace.current() is other


def test_a_schema_1_workspace_is_upgraded_and_keeps_its_history(tmp_path):
    path = tmp_path / "old.db"
    with Workspace(path) as store:
        store.write_checkpoint(
            None, 0, seed=1, **checkpoint_args({1: network(0.5)}, {}, np.random.default_rng(0))
        )
    # make it the layout schema 1 wrote: no archive column in history
    with sqlite3.connect(path) as old:
        old.execute("ALTER TABLE history DROP COLUMN archive")
        old.execute("UPDATE meta SET value = '1' WHERE key = 'schema_version'")
    with Workspace(path, read_only=True) as view:
        assert [h["archive"] for h in view.history()] == [None]
    with Workspace(path) as store:
        assert [h["generation"] for h in store.history()] == [0]
        store.write_checkpoint(
            store.last_run().id,
            1,
            **checkpoint_args({1: network(0.6)}, {}, np.random.default_rng(1)),
        )
        assert [h["generation"] for h in store.history()] == [0, 1]


def test_a_schema_2_workspace_gains_the_stream_column_and_its_runs_had_no_stream(tmp_path):
    path = tmp_path / "old.db"
    with Workspace(path) as store:
        store.write_checkpoint(
            None, 0, seed=1, **checkpoint_args({1: network(0.5)}, {}, np.random.default_rng(0))
        )
    with sqlite3.connect(path) as old:
        old.execute("ALTER TABLE checkpoints DROP COLUMN stream")
        old.execute("UPDATE meta SET value = '2' WHERE key = 'schema_version'")
    with Workspace(path, read_only=True) as view:
        assert view.checkpoint().stream is None
    with Workspace(path) as store:
        store.write_checkpoint(
            store.last_run().id,
            1,
            stream={"position": 2},
            **checkpoint_args({1: network(0.6)}, {}, np.random.default_rng(1)),
        )
        assert store.checkpoint().stream == {"position": 2}


def test_a_view_reads_a_checkpoint_whole_while_the_writer_replaces_it(tmp_path):
    """A checkpoint and its networks are read in one snapshot, never half of each.

    The writer replaces the elite at every checkpoint and its old network goes;
    a read-only view (another connection, as another process has) reads meanwhile.
    """
    path = tmp_path / "w.db"
    writer = Workspace(path)
    rng = np.random.default_rng(0)
    nets = [network(0.5 + i / 1000) for i in range(60)]
    run_id = writer.write_checkpoint(None, 0, seed=1, **checkpoint_args({(1, 1): nets[0]}, {}, rng))
    view = Workspace(path, read_only=True)
    done = threading.Event()

    def replace_the_elite() -> None:
        for generation, net in enumerate(nets[1:], start=1):
            writer.write_checkpoint(run_id, generation, **checkpoint_args({(1, 1): net}, {}, rng))
        done.set()

    thread = threading.Thread(target=replace_the_elite)
    thread.start()
    reads = []
    try:
        while not done.is_set():
            checkpoint = view.checkpoint()
            assert checkpoint is not None and checkpoint.problems == (), checkpoint.problems
            assert checkpoint.elites[(1, 1)].id == nets[checkpoint.generation].id
            reads.append(checkpoint.generation)
    finally:
        thread.join()
        view.close()
        writer.close()
    assert len(set(reads)) > 3  # the reads met several of the writer's checkpoints
