"""Named experiments: switching in one session, a fresh process, two writers at once."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

import galapagos_nao as gn
from galapagos_nao.core import datasets
from galapagos_nao.store.watch_reader import WorkspaceReader
from galapagos_nao.store.workspace import Workspace

REPO = Path(__file__).resolve().parents[2]
START = [("dense", [8, "relu"])]


@pytest.fixture(scope="module")
def tiny_task(small_mnist) -> datasets.Task:
    return datasets.subset(small_mnist, 300, 100, seed=0)


@pytest.fixture
def fresh_gn():
    """The shared session on default, empty, with quick settings; put back afterwards."""
    _forget()
    gn.Parameters.put(gn.orchestration, {"generation_size": 2, "workers": 1})
    gn.Parameters.put(gn.training, {"batch_size": 50, "device": "cpu"})
    yield gn
    run = gn.Selection.run
    if run is not None:
        run.stop()
        run.join(60)
    _forget()


def _forget() -> None:
    gn.workspace.close()  # back to experiment "default" of the next test's GN_HOME
    gn.session.journal._pending.clear()  # earlier tests' actions, kept in memory
    gn.session._parked.clear()
    gn.session._entered.clear()
    gn.Selection.restore({}, {}, gn.selection.CurationState())
    gn.Selection.restore_history([])
    gn.Parameters.reset()


def state(selection=gn.Selection) -> dict:
    """What identifies an archive: elite ids by cell, queue, marks, history length."""
    return {
        "elites": {cell: net.id for cell, net in selection.elites().items()},
        "queue": [net.id for net in selection.queued().values()],
        "curation": selection.curation(),
        "history": [entry.stats.generation for entry in selection.history()],
    }


def test_switching_back_and_forth_loses_and_mixes_nothing(fresh_gn, tiny_task):
    gn.evolve(START, 2, tiny_task, seed=1).result(timeout=300)
    first_cell = next(iter(gn.Selection.elites()))
    gn.Selection.pin(first_cell)
    gn.Selection.favor(first_cell, 3)
    gn.Parameters.put(gn.training, {"epochs": 1})
    default = state()
    default_settings = gn.Parameters.snapshot()

    info = gn.experiment("b")
    assert (info.name, info.runs) == ("b", 0)
    assert state() == {"elites": {}, "queue": [], "curation": state()["curation"], "history": []}
    assert gn.Selection.curation().pinned == () and not gn.Selection.curation().favored
    assert gn.Parameters.snapshot() == default_settings  # a new experiment keeps the settings
    assert len(gn.journal()) == 0  # b's journal: none of default's actions
    gn.Parameters.put(gn.orchestration, {"generation_size": 3})
    gn.evolve([("dense", [4, "tanh"])], 1, tiny_task, seed=2).result(timeout=300)
    b = state()
    b_settings = gn.Parameters.snapshot()
    assert b["elites"] and set(b["elites"].values()).isdisjoint(default["elites"].values())

    for _ in range(2):  # back and forth twice: each time as it was left
        gn.experiment("default")
        assert state() == default and gn.Parameters.snapshot() == default_settings
        gn.experiment("b")
        assert state() == b and gn.Parameters.snapshot() == b_settings

    gn.Selection.clear()  # clears b only
    assert len(gn.Selection) == 0
    gn.experiment("default")
    assert state() == default

    listed = gn.experiments()
    assert listed.names() == ["default", "b"] and listed.current == "default"
    assert [listed[name].runs for name in ("default", "b")] == [1, 1]
    assert listed["default"].cells == len(default["elites"])
    default_actions = [entry.action for entry in gn.journal()]
    assert default_actions.count("evolve") == 1 and "Selection.clear" not in default_actions
    gn.experiment("b")
    b_actions = [entry.action for entry in gn.journal()]
    assert b_actions.count("evolve") == 1 and b_actions[-1] == "Selection.clear"
    assert "Selection.pin" not in b_actions

    # watch reads each experiment by name and agrees with the Selection
    path = gn.workspace.current().path
    with WorkspaceReader(path, experiment="default") as reader:
        shown = reader.poll()
    assert {v.cell: v.network_id for v in shown.cells if v.network_id} == default["elites"]
    assert [(v.cell, v.favor) for v in shown.cells if v.pinned] == [(first_cell, 3.0)]
    with WorkspaceReader(path, experiment="b") as reader:
        shown = reader.poll()
    assert shown.filled == 0 and not any(v.pinned for v in shown.cells)  # cleared, as gn.Selection


def test_bad_names_and_a_live_run_change_nothing(fresh_gn, tiny_task):
    for bad in ("", "../x", ".hidden", "a b", 3, "x" * 65):
        with pytest.raises(ValueError, match="name must be an experiment name"):
            gn.experiment(bad)
    run = gn.evolve_continual(START, tiny_task, seed=0)
    try:
        with pytest.raises(RuntimeError, match="a run of experiment 'default' is in progress"):
            gn.experiment("other")
        assert gn.session.current_experiment() == "default"
    finally:
        run.stop()
        run.join(120)
    assert "other" not in gn.experiments().names()


FRESH_PROCESS = textwrap.dedent(
    """
    import galapagos_nao as gn
    actions = [entry.action for entry in gn.journal()]  # no open(): the default experiment's
    print("default journal", actions.count("evolve"), actions.count("Selection.pin"))
    info = gn.experiment("b")
    print("b", info.runs, sorted(net.id for net in gn.Selection.elites().values()))
    print("b journal", [entry.action for entry in gn.journal()].count("evolve"))
    """
)


def test_a_fresh_process_shows_the_journal_and_opens_an_experiment_by_name(fresh_gn, tiny_task):
    gn.evolve(START, 1, tiny_task, seed=1).result(timeout=300)
    gn.Selection.pin(next(iter(gn.Selection.elites())))
    gn.experiment("b")
    gn.evolve(START, 1, tiny_task, seed=2).result(timeout=300)
    b_ids = sorted(net.id for net in gn.Selection.elites().values())
    gn.workspace.close()  # as when the process ends

    env = {k: v for k, v in os.environ.items() if k != "PYTEST_CURRENT_TEST"}
    result = subprocess.run(
        [sys.executable, "-c", FRESH_PROCESS],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=env,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "default journal 1 1"
    assert lines[1] == f"b 1 {b_ids}"
    assert lines[2] == "b journal 1"


WRITER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    import numpy as np
    import galapagos_nao as gn
    from galapagos_nao.core import datasets

    name, task_file, stop_file = sys.argv[1], sys.argv[2], Path(sys.argv[3])
    with np.load(task_file) as arrays:
        task = datasets.from_tensors(
            *(arrays[k] for k in ("x_train", "y_train", "x_test", "y_test"))
        )
    gn.experiment(name)
    gn.Parameters.put(gn.orchestration, {"generation_size": 2, "workers": 1})
    gn.Parameters.put(gn.training, {"batch_size": 50, "device": "cpu"})

    def said(report):
        print("generation", report.generation, flush=True)
        if stop_file.exists():
            report.run.stop()

    run = gn.evolve_continual([("dense", [8, "relu"])], task, seed=3, hooks=[said])
    run.join()
    print("elites", sorted(net.id for net in gn.Selection.elites().values()), flush=True)
    """
)

SECOND_WRITER = textwrap.dedent(
    """
    import sys
    import galapagos_nao as gn
    gn.experiment(sys.argv[1])
    try:
        gn.evolve([("dense", [8, "relu"])], 1)
    except gn.workspace.WorkspaceLocked as error:
        print("refused:", error)
    """
)


@pytest.mark.timeout(600)
def test_two_processes_write_two_experiments_at_once(tmp_path, tiny_task):
    task_file = tmp_path / "task.npz"
    np.savez(
        task_file,
        **{k: getattr(tiny_task, k).numpy() for k in ("x_train", "y_train", "x_test", "y_test")},
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTEST_CURRENT_TEST"}
    env["GN_HOME"] = str(tmp_path)
    stops = {name: tmp_path / f"stop-{name}" for name in ("a", "b")}
    writers = {
        name: subprocess.Popen(
            [sys.executable, "-c", WRITER, name, str(task_file), str(stops[name])],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=REPO,
            env=env,
        )
        for name in ("a", "b")
    }
    try:
        for writer in writers.values():  # both have checkpointed while the other runs
            assert writer.stdout is not None
            line = writer.stdout.readline()
            assert line.startswith("generation"), (line, writer.stderr and writer.stderr.read())
        # A second writer on a running experiment: refused, naming the process and the way out.
        refused = subprocess.run(
            [sys.executable, "-c", SECOND_WRITER, "a"],
            capture_output=True,
            text=True,
            cwd=REPO,
            env=env,
            timeout=300,
        )
        assert f"being written by process {writers['a'].pid}" in refused.stdout, refused.stderr
        assert "gn.experiment(" in refused.stdout
        cli = subprocess.run(
            [sys.executable, "-m", "galapagos_nao", "--experiment", "b", "--generations", "1"],
            capture_output=True,
            text=True,
            cwd=REPO,
            env=env,
            timeout=300,
        )
        assert cli.returncode == 2
        assert f"process {writers['b'].pid}" in cli.stderr and "--experiment" in cli.stderr
        assert "gn.experiment" not in cli.stderr
    finally:
        for stop in stops.values():
            stop.touch()
        outputs = {name: writer.communicate(timeout=300) for name, writer in writers.items()}
    elites = {}
    for name, (out, err) in outputs.items():
        assert writers[name].returncode == 0, err
        elites[name] = out.splitlines()[-1]
    with Workspace(tmp_path / "workspace.db", read_only=True) as view:
        names = [info.name for info in view.experiments()]
        assert set(names) == {"default", "a", "b"}
        for name in ("a", "b"):
            view.use_experiment(name)
            checkpoint = view.checkpoint()
            assert len(view.runs()) == 1 and checkpoint is not None
            ids = sorted(net.id for net in checkpoint.elites.values())
            assert elites[name] == f"elites {ids}"
            starts = [row["action"] for row in view.journal_rows()].count("evolve_continual")
            assert starts == 1
    assert elites["a"] != elites["b"]


def test_an_old_workspace_becomes_experiment_default(tmp_path, tiny_task):
    import sqlite3

    store = Workspace(tmp_path / "w.db")
    session = _session(store)
    session.evolve(START, 1, tiny_task, seed=0).result(timeout=300)
    store.close()
    with sqlite3.connect(tmp_path / "w.db") as old:  # as schema 5 left it
        old.execute("DROP TABLE experiments")
        old.execute("DROP INDEX runs_by_experiment")
        old.execute("DROP INDEX journal_by_experiment")
        old.execute("ALTER TABLE runs DROP COLUMN experiment")
        old.execute("ALTER TABLE journal DROP COLUMN experiment")
        old.execute("UPDATE meta SET value = '5' WHERE key = 'schema_version'")
    with Workspace(tmp_path / "w.db", read_only=True) as view:
        assert [info.name for info in view.experiments()] == ["default"]
        assert len(view.runs()) == 1
    with Workspace(tmp_path / "w.db") as upgraded:
        assert [(info.name, info.runs) for info in upgraded.experiments()] == [("default", 1)]
        assert len(upgraded.journal_rows()) >= 1
        upgraded.use_experiment("other")
        assert upgraded.runs() == [] and upgraded.journal_rows() == []


def _session(store):
    from galapagos_nao.archive.selection import Selection
    from galapagos_nao.config.parameters import Parameters
    from galapagos_nao.run.api import Session
    from galapagos_nao.store.library import Library

    parameters = Parameters()
    parameters.put("orchestration", {"generation_size": 2, "workers": 1})
    selection = Selection(parameters=parameters)
    session = Session(parameters=parameters, selection=selection, library=Library(workspace=store))
    session.track(selection, store)
    return session


def wait_for(predicate, timeout=120.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline
        time.sleep(0.05)


def test_a_run_on_other_data_says_what_carries_over_and_the_ways_out(
    fresh_gn, tiny_task, small_mnist, caplog
):
    from galapagos_nao.core.fingerprint import task_fingerprint

    gn.evolve(START, 1, tiny_task, seed=1).result(timeout=300)
    cell = next(iter(gn.Selection.elites()))
    gn.Selection.pin(cell)
    gn.Selection.favor(cell, 2)
    elites = len(gn.Selection.elites())
    other = datasets.subset(small_mnist, 200, 100, seed=7)
    with caplog.at_level("WARNING", logger="galapagos_nao"):
        gn.evolve(None, 1, other, seed=2).result(timeout=300)
    lines = [r.getMessage() for r in caplog.records if "carry over" in r.getMessage()]
    assert len(lines) == 1, caplog.text
    line = lines[0]
    assert f"{elites} elite(s), 1 pin(s), favor on 1 cell(s) carry over" in line
    assert task_fingerprint(other)[:8] in line and task_fingerprint(tiny_task)[:8] in line
    assert line.index(task_fingerprint(other)[:8]) < line.index(task_fingerprint(tiny_task)[:8])
    assert "gn.experiment('new-name')" in line and "gn.Selection.clear()" in line
    caplog.clear()
    with caplog.at_level("WARNING", logger="galapagos_nao"):
        gn.evolve(None, 1, other, seed=3).result(timeout=300)  # the same data: nothing to say
        gn.experiment("clean")
        gn.evolve(START, 1, tiny_task, seed=4).result(timeout=300)  # nothing carried
    assert "carry over" not in caplog.text


def test_resume_refuses_other_data_and_names_each_setting_it_restores(fresh_gn, tiny_task, caplog):
    gn.Parameters.put(gn.training, {"epochs": 1})
    run = gn.evolve_continual(START, tiny_task, seed=0)
    wait_for(lambda: len(gn.Selection.history()) >= 1, timeout=300)
    run.stop()
    run.join(120)
    gn.Parameters.put(gn.training, {"epochs": 3})
    gn.Parameters.put(gn.orchestration, {"generation_size": 2})  # as checkpointed: not named
    before = state()
    with pytest.raises(ValueError, match=r"resume: experiment 'default' was trained on .*task="):
        gn.evolve_continual(resume=True)
    assert state() == before and gn.Parameters.get(gn.training, "epochs") == 3
    with caplog.at_level("WARNING", logger="galapagos_nao"):
        run = gn.evolve_continual(resume=True, task=tiny_task)
        run.stop()
        run.join(120)
    restored = [r.getMessage() for r in caplog.records if r.getMessage().startswith("resume:")]
    assert restored == [
        "resume: training.epochs is back to the checkpoint's 1 over the 3 you put since; "
        "put it again to change it"
    ]


def stop_after(count):
    def hook(report):
        if report.generation - report.run.first_generation + 1 >= count:
            report.run.stop()

    return hook


def test_one_generation_number_in_every_view_after_a_resume(fresh_gn, tiny_task, caplog):
    import re

    import matplotlib

    matplotlib.use("Agg")
    first = gn.evolve_continual(START, tiny_task, seed=0, hooks=[stop_after(2)])
    first.join(300)
    before = first.status().generation  # the checkpoint the resume continues
    gn.Selection.restore({}, {}, gn.selection.CurationState())  # as a new process finds it
    gn.Selection.restore_history([])
    with caplog.at_level("INFO", logger="galapagos_nao"):
        run = gn.evolve_continual(resume=True, task=tiny_task, hooks=[stop_after(2)])
        run.join(300)
    logged = re.findall(r"Generation (\d+) \(this run (\d+)/∞\)", caplog.text)
    completed = run.status().completed
    number = before + completed
    assert [int(n) for n, _ in logged] == list(range(before + 1, number + 1))
    assert [int(k) for _, k in logged] == list(range(1, completed + 1))
    assert f"generation {number} (this run {completed}/∞)" in repr(run)
    assert run.status().generation == number
    assert gn.Selection.stats().generation == number
    assert [e.stats.generation for e in gn.Selection.history()] == list(range(number + 1))
    resumed = [e for e in gn.journal() if e.action == "resume"][-1]
    assert (resumed.arguments["after"], resumed.generation) == (before, before + 1)
    with WorkspaceReader(gn.workspace.current().path) as reader:
        shown = reader.poll()
    assert shown.generation == number and shown.points[-1].generation == number
    assert gn.experiments()["default"].generation == number
    figure = gn.plot.history()
    xs = figure.axes[0].lines[0].get_xdata()
    assert list(xs) == [float(g) for g in range(number + 1)]


def watched_marks(shown) -> dict:
    """What watch draws: filled cells, pins with their favor, every cell in the grid."""
    return {
        "elites": {v.cell: v.network_id for v in shown.cells if v.network_id},
        "pins": {v.cell: v.favor for v in shown.cells if v.pinned},
        "favor": {v.cell: v.favor for v in shown.cells if v.favor != 1.0},
    }


def selection_marks() -> dict:
    curation = gn.Selection.curation()
    return {
        "elites": {cell: net.id for cell, net in gn.Selection.elites().items()},
        "pins": {cell: curation.favored.get(cell, 1.0) for cell in curation.pinned},
        "favor": dict(curation.favored),
    }


def test_watch_matches_the_selection_after_clear_and_after_a_change_of_measures(
    fresh_gn, tiny_task, caplog
):
    gn.Parameters.put(gn.Selection, {"complexity_levels": 2})
    gn.evolve([("dense", [8, "relu"]), ("dense", [8, "relu"])], 2, tiny_task, seed=1).result(300)
    cell = next(iter(gn.Selection.elites()))
    gn.Selection.pin(cell)
    gn.Selection.favor(cell, 3)
    path = gn.workspace.current().path
    with WorkspaceReader(path) as reader:
        assert watched_marks(reader.poll()) == selection_marks()  # between runs: the state

        # Two axes now: the pin follows its elite into the 2×3 grid (said), none outside it.
        gn.Parameters.put(
            gn.Selection, {"measures": ["layers", "params"], "measure_levels": {"params": 3}}
        )
        with caplog.at_level("WARNING", logger="galapagos_nao"):
            gn.evolve(None, 1, tiny_task, seed=2).result(300)
        assert "re-binned" in caplog.text and f"pin on cell {cell} moved" in caplog.text
        shown = reader.poll()
        marks = selection_marks()
        assert watched_marks(shown) == marks and len(marks["pins"]) == 1
        (pinned,) = marks["pins"]
        assert isinstance(pinned, tuple) and marks["pins"][pinned] == 3.0
        assert shown.levels == (2, 3) and len(shown.cells) == 6
        assert all(isinstance(v.cell, tuple) for v in shown.cells)
        assert shown.filled == len(gn.Selection.elites())

        gn.Selection.clear()
        cleared = reader.poll()
        assert (
            watched_marks(cleared) == selection_marks() == {"elites": {}, "pins": {}, "favor": {}}
        )
        gn.evolve(START, 1, tiny_task, seed=3).result(300)  # a new run after the clear
        assert watched_marks(reader.poll()) == selection_marks()
        assert not selection_marks()["pins"]
