"""Continual runs survive restarts: resume, SIGKILL at random moments, a kill inside a commit."""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

import galapagos_nao as gn
from galapagos_nao.archive.selection import Selection
from galapagos_nao.config.parameters import Parameters
from galapagos_nao.core import datasets
from galapagos_nao.core.network import Network
from galapagos_nao.run.checkpoint import Checkpointer, generator_from_state
from galapagos_nao.run.loop import GenerationReport
from galapagos_nao.store.workspace import Workspace, WorkspaceLocked
from galapagos_nao.store.workspace.row_digest import seal_rows

TESTS = Path(__file__).resolve().parent
sys.path.insert(0, str(TESTS))
from continual_child import START, archive  # noqa: E402

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="fork and SIGKILL are POSIX")

#: SIGKILLs in a row (the issue asks for at least 10).
KILLS = 10
#: Files a workspace folder may hold after a crash: SQLite's own, the lock, the saves.
WORKSPACE_FILES = {"workspace.db", "workspace.db-wal", "workspace.db-shm", "workspace.db.lock"}


@pytest.fixture(scope="module")
def tiny_task(small_mnist) -> datasets.Task:
    return datasets.subset(small_mnist, 300, 100, seed=0)


@pytest.fixture(scope="module")
def task_file(tiny_task, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("task") / "task.npz"
    np.savez(
        path,
        x_train=tiny_task.x_train.numpy(),
        y_train=tiny_task.y_train.numpy(),
        x_test=tiny_task.x_test.numpy(),
        y_test=tiny_task.y_test.numpy(),
    )
    return path


class Zygote:
    """Drives tests/run/continual_child.py: one import, then a forked child per run."""

    def __init__(self, home: Path) -> None:
        env = {k: v for k, v in os.environ.items() if k != "PYTEST_CURRENT_TEST"}
        env["GN_HOME"] = str(home)
        self.process = subprocess.Popen(
            [sys.executable, str(TESTS / "continual_child.py")],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
        # A hung child must fail the test, not hang the suite.
        self._watchdog = threading.Timer(240, self.process.kill)
        self._watchdog.daemon = True
        self._watchdog.start()

    def start(
        self, home: Path, task: Path, log: Path, *, stop_at: int = -1, kill_in_commit: int = -1
    ) -> int:
        request = {
            "home": str(home),
            "task": str(task),
            "log": str(log),
            "seed": 7,
            "stop_at": stop_at,
            "kill_in_commit": kill_in_commit,
        }
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps(request) + "\n")
        self.process.stdin.flush()
        return int(self._reply()["pid"])

    def wait(self) -> int:
        """The wait status of the child that ran last."""
        return int(self._reply()["status"])

    def _reply(self) -> dict[str, Any]:
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        assert line, "the zygote died"
        return json.loads(line)

    def close(self) -> None:
        self._watchdog.cancel()
        if self.process.stdin is not None:
            self.process.stdin.close()
        self.process.wait(30)


@pytest.fixture(scope="module")
def zygote(tmp_path_factory) -> Iterator[Zygote]:
    driver = Zygote(tmp_path_factory.mktemp("zygote_home"))
    yield driver
    driver.close()


def read_log(log: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def killed(status: int, log: Path) -> bool:
    return os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL


def check_workspace_after_kill(
    home: Path, records: list[dict[str, Any]], previous: int, library: set[str]
) -> int:
    """Every promise of the issue after one kill; returns the checkpointed generation."""
    assert not [r for r in records if "error" in r], records
    with Workspace(home / "workspace.db", read_only=True) as store:
        assert store.problems == ()
        checkpoint = store.checkpoint()
        logged = [r for r in records if "generation" in r]
        generation = -1 if checkpoint is None else checkpoint.generation
        # never backwards; at most one generation committed but not yet logged
        assert generation >= previous
        last_logged = logged[-1]["generation"] if logged else previous
        assert generation in (last_logged, last_logged + 1)
        if checkpoint is not None:
            assert checkpoint.problems == ()
            if logged and generation == last_logged:
                assert archive(checkpoint.elites) == logged[-1]["archive"]
            history = store.history()
            assert [h["generation"] for h in history] == list(range(generation + 1))
            assert {c: h["val_acc"] for c, h in history[-1]["best"].items()} == {
                c: n.val_acc for c, n in checkpoint.elites.items()
            }
        nets, problems = store.load_library()
        assert problems == {}
        library.update(r["library"] for r in records if "library" in r)
        assert library <= set(nets), "a Library put that returned before the kill is missing"
    leftovers = {p.name for p in home.iterdir()} - WORKSPACE_FILES - {"saves"}
    assert not leftovers, f"unexpected files after the kill: {leftovers}"
    for saved in (home / "saves").iterdir():
        assert saved.suffix == ".safetensors", f"partial file left: {saved.name}"
        gn.load(saved)  # every saved file is whole
    return generation


def test_sigkill_at_random_moments_loses_nothing(zygote, task_file, tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    moments = random.Random()
    generation, library = -1, set()
    progress = []
    for attempt in range(KILLS):
        log = tmp_path / f"log{attempt}.jsonl"
        pid = zygote.start(home, task_file, log)
        if attempt == 0:
            check_second_process_is_kept_out(home, log, pid)
        time.sleep(moments.uniform(0.0, 1.0))
        os.kill(pid, signal.SIGKILL)
        status = zygote.wait()
        records = read_log(log)
        assert killed(status, log), f"attempt {attempt}: the child ended on its own: {records}"
        generation = check_workspace_after_kill(home, records, generation, library)
        progress.append(generation)
    assert progress[-1] >= 1, f"the runs made no progress between kills: {progress}"
    # and the run goes on from there
    log = tmp_path / "final.jsonl"
    zygote.start(home, task_file, log, stop_at=progress[-1] + 1)
    assert zygote.wait() == 0
    records = read_log(log)
    assert records[0] == {"started": progress[-1] + 1} and records[-1]["final"] == progress[-1] + 1


def check_second_process_is_kept_out(home: Path, log: Path, pid: int) -> None:
    """While the child writes, this process gets a clear error or a read-only view."""
    deadline = time.monotonic() + 60
    while not any("generation" in r for r in read_log(log)):
        assert time.monotonic() < deadline, f"no generation completed: {read_log(log)}"
        time.sleep(0.02)
    with pytest.raises(WorkspaceLocked, match=f"being written by process {pid}"):
        Workspace(home / "workspace.db", read_only=False)
    with Workspace(home / "workspace.db") as view:
        assert view.read_only and view.checkpoint() is not None
        with pytest.raises(WorkspaceLocked, match=f"process {pid}"):
            view.put_library({})


def test_a_kill_between_checkpoint_write_and_commit_keeps_the_previous_checkpoint(
    zygote, task_file, tmp_path
):
    home = tmp_path / "home"
    home.mkdir()
    log = tmp_path / "killed.jsonl"
    zygote.start(home, task_file, log, kill_in_commit=3)  # dies inside generation 2's commit
    status = zygote.wait()
    records = read_log(log)
    assert killed(status, log), records
    assert [r["generation"] for r in records if "generation" in r] == [0, 1]
    assert check_workspace_after_kill(home, records, -1, set()) == 1
    # resumed after the kill, it reaches what an uninterrupted run with the same seed reaches
    zygote.start(home, task_file, tmp_path / "resumed.jsonl", stop_at=4)
    assert zygote.wait() == 0
    resumed = read_log(tmp_path / "resumed.jsonl")
    other = tmp_path / "uninterrupted"
    other.mkdir()
    zygote.start(other, task_file, tmp_path / "straight.jsonl", stop_at=4)
    assert zygote.wait() == 0
    straight = read_log(tmp_path / "straight.jsonl")
    assert resumed[0] == {"started": 2} and resumed[-1]["final"] == straight[-1]["final"] == 4
    assert without_ids(resumed[-1]["archive"]) == without_ids(straight[-1]["archive"])


def without_ids(cells: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {cell: {k: v for k, v in elite.items() if k != "id"} for cell, elite in cells.items()}


# -- in one process ------------------------------------------------------------------


def stop_after(generation: int) -> Callable[[GenerationReport], None]:
    """A hook that stops its run once generation ``generation`` is checkpointed."""

    def hook(report: GenerationReport) -> None:
        if report.generation == generation:
            report.run.stop()

    return hook


def fresh_selection(store: Workspace) -> Selection:
    """A Selection with default Parameters, as a new session has, checkpointed into ``store``."""
    selection = Selection(parameters=Parameters())
    gn.session.track(selection, store)
    return selection


def settle(selection: Selection) -> None:
    selection.parameters.put(
        gn.orchestration, {"generation_size": 3, "workers": 2, "threads_per_worker": 1}
    )
    selection.parameters.put(gn.training, {"batch_size": 50, "device": "cpu"})
    selection.parameters.put(gn.Selection, {"complexity_levels": 3})


def test_a_resumed_seeded_run_reaches_the_same_archive_as_an_uninterrupted_one(tiny_task, tmp_path):
    straight_store, resumed_store = Workspace(tmp_path / "a.db"), Workspace(tmp_path / "b.db")
    straight = fresh_selection(straight_store)
    settle(straight)
    hooks = [stop_after(4)]
    assert gn.evolve_continual(START, tiny_task, selection=straight, seed=5, hooks=hooks).join(120)

    first = fresh_selection(resumed_store)
    settle(first)
    hooks = [stop_after(1)]
    assert gn.evolve_continual(START, tiny_task, selection=first, seed=5, hooks=hooks).join(120)
    later = fresh_selection(resumed_store)  # as after a restart: empty, default Parameters
    run = gn.evolve_continual(task=tiny_task, selection=later, resume=True, hooks=[stop_after(4)])
    assert later.parameters.snapshot() == first.parameters.snapshot()
    assert run.join(120) and run.status().error is None
    assert run.generation == 5 and run.status().generation == 4  # the archive's last one
    assert run.status().completed == 3

    a, b = straight.elites(), later.elites()
    assert list(a) == list(b) and a
    for cell in a:
        assert (a[cell].layers, a[cell].val_acc) == (b[cell].layers, b[cell].val_acc), cell
        for name, tensor in a[cell].weights.items():
            assert torch.equal(tensor, b[cell].weights[name]), (cell, name)
    assert straight_store.last_run().generation == resumed_store.last_run().generation == 4
    assert len(resumed_store.runs()) == 1  # the resumed run went on writing the same run
    assert [h["generation"] for h in resumed_store.history()] == [0, 1, 2, 3, 4]
    # the archive's own history came back from the workspace and went on
    assert [e.stats.generation for e in later.history()] == [0, 1, 2, 3, 4]
    assert [e.stats.qd_score for e in later.history()] == [
        e.stats.qd_score for e in straight.history()
    ]


def test_resume_checks_its_arguments_before_changing_anything(tiny_task, tmp_path):
    store = Workspace(tmp_path / "w.db")
    selection = fresh_selection(store)
    with pytest.raises(ValueError, match="holds no run"):
        gn.evolve_continual(task=tiny_task, selection=selection, resume=True)
    with pytest.raises(ValueError, match="conflicts with net and seed"):
        gn.evolve_continual(START, tiny_task, selection=selection, resume=True)
    with pytest.raises(ValueError, match="conflicts with net and seed"):
        gn.evolve_continual(task=tiny_task, selection=selection, seed=3, resume=True)
    with pytest.raises(ValueError, match="resume must be True or False"):
        gn.evolve_continual(task=tiny_task, selection=selection, resume="yes")
    untracked = Selection(parameters=Parameters())
    with pytest.raises(ValueError, match="no workspace"):
        gn.evolve_continual(task=tiny_task, selection=untracked, resume=True)
    assert len(selection) == 0 and selection.run is None and store.runs() == []


def test_an_untracked_selection_is_not_checkpointed(tiny_task):
    selection = Selection(parameters=Parameters())
    settle(selection)
    run = gn.evolve([("dense", [4, "relu"])], 1, tiny_task, selection=selection, seed=1)
    assert run.join(60)
    assert not any(isinstance(h, Checkpointer) for h in run.hooks)
    assert not (Path(os.environ["GN_HOME"]) / "workspace.db").exists()


def test_shared_selection_checkpoints_into_the_default_workspace(tiny_task):
    gn.Selection.clear()
    settle(gn.Selection)
    try:
        run = gn.evolve([("dense", [4, "relu"])], 2, tiny_task, seed=1)
        assert run.join(60) and run.status().error is None
        store = gn.workspace.current()
        assert store is not None and store.path == Path(os.environ["GN_HOME"]) / "workspace.db"
        checkpoint = store.checkpoint()
        assert checkpoint.generation == 1
        assert {c: n.id for c, n in checkpoint.elites.items()} == {
            c: n.id for c, n in gn.Selection.elites().items()
        }
        assert checkpoint.parameters == gn.Parameters.snapshot()
    finally:
        gn.Selection.clear()
        gn.Parameters.reset()
        gn.workspace.close()


def test_a_failed_checkpoint_is_logged_and_the_run_goes_on(tiny_task, tmp_path, caplog):
    store = Workspace(tmp_path / "w.db")
    selection = fresh_selection(store)
    settle(selection)

    def refuse(what: str) -> None:
        raise OSError("disk full")

    store._before_commit = refuse
    run = gn.evolve([("dense", [4, "relu"])], 2, tiny_task, selection=selection, seed=1)
    assert run.join(60) and run.status().state == "finished"
    assert store.checkpoint() is None  # rolled back: nothing half-written
    assert "Checkpoint of generation 1 not written: disk full" in caplog.text
    checkpointer = next(h for h in run.hooks if isinstance(h, Checkpointer))
    assert isinstance(checkpointer.error, OSError)


def test_generator_state_round_trips_exactly():
    rng = np.random.default_rng(12)
    rng.integers(100, size=7)
    state = json.loads(json.dumps(rng.bit_generator.state))
    restored = generator_from_state(state)
    assert np.array_equal(restored.integers(2**62, size=5), rng.integers(2**62, size=5))
    legacy = np.random.Generator(np.random.MT19937(3))
    state = json.loads(json.dumps(legacy.bit_generator.state, default=lambda a: a.tolist()))
    assert generator_from_state(state).random() == legacy.random()
    with pytest.raises(ValueError, match="unknown bit generator 'os.system'"):
        generator_from_state({"bit_generator": "os.system"})


def test_a_resumed_run_keeps_the_pins_favor_and_vetoes(tiny_task, tmp_path):
    store = Workspace(tmp_path / "w.db")
    first = fresh_selection(store)
    settle(first)
    assert gn.evolve(START, 2, tiny_task, selection=first, seed=3).join(120)
    cells = list(first.elites())
    first.pin(cells[0])
    first.favor(cells[0], 3)
    banned = Network([("dense", [12, "tanh"])])
    first.veto(banned)
    # The next generation's checkpoint carries the curation with it.
    assert gn.evolve(None, 1, tiny_task, selection=first, seed=4).join(120)
    expected = first.curation()

    later = fresh_selection(store)  # as after a restart: no pins, favor or vetoes
    run = gn.evolve_continual(task=tiny_task, selection=later, resume=True, hooks=[stop_after(3)])
    assert run.join(120) and run.status().error is None
    assert later.curation() == expected
    assert later.elites()[cells[0]] is not None
    with pytest.raises(ValueError, match="vetoed"):
        later.put_unevaluated(Network(banned.genome))


def test_a_checkpoint_with_damaged_curation_is_refused_naming_it(tiny_task, tmp_path):
    store = Workspace(tmp_path / "w.db")
    first = fresh_selection(store)
    settle(first)
    assert gn.evolve(START, 1, tiny_task, selection=first, seed=3).join(120)
    with sqlite3.connect(store.path) as other:  # as a file someone else wrote
        other.execute("UPDATE checkpoints SET curation = ?", ('{"pinned": ["one"]}',))
    later = fresh_selection(store)
    with pytest.raises(gn.workspace.WorkspaceCorrupt, match=r"run 1 is damaged on disk: its val"):
        gn.evolve_continual(task=tiny_task, selection=later, resume=True)  # the row's digest
    with sqlite3.connect(store.path) as other:  # re-sealed, as a forger would
        seal_rows(other, "checkpoints")
    with pytest.raises(
        gn.workspace.WorkspaceCorrupt, match=r"damaged on disk: curation\.pinned\[0\]"
    ):
        gn.evolve_continual(task=tiny_task, selection=later, resume=True)
    assert len(later) == 0 and later.curation().pinned == ()
