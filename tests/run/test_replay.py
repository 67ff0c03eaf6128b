"""A steered session recorded in the journal replays to the same archive, in a fresh process.

The session is steered from the test's thread while the run trains, as a person
at the prompt would: the moments are whatever the scheduler makes them. The
journal's stamps say where each action took effect; the replay (in a new
process, from the workspace's journal alone) and the script ``to_script``
writes must both end with the same archive: every cell's elite with the same
genome, metrics and weight bytes (its fingerprint).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import signal
import subprocess
import sys
import time

import pytest

import galapagos_nao as gn
from galapagos_nao.archive.selection import Selection
from galapagos_nao.config.parameters import Parameters
from galapagos_nao.core.fingerprint import fingerprint
from galapagos_nao.core.network import Network
from galapagos_nao.run.api import Session
from galapagos_nao.run.records import CANDIDATE_LOGGER
from galapagos_nao.run.session_journal import SessionJournal
from galapagos_nao.store.journal import Journal
from galapagos_nao.store.library import Library
from galapagos_nao.store.workspace import Workspace

GENERATIONS = 20
START = [("dense", [16, "relu"])]
#: Replays a workspace's journal in this (fresh) process; prints the archive as JSON.
CHILD = """
import json, sys
import galapagos_nao as gn
from galapagos_nao.store.journal import Journal
from galapagos_nao.store.workspace import Workspace
path, expression = sys.argv[1], sys.argv[2]
entries = Journal(workspace=lambda: Workspace(path, read_only=True)).entries()
result = gn.journal.replay(eval(expression, {"gn": gn}), entries=entries)
print(json.dumps({
    "archive": {str(cell): fp for cell, fp in result.archive().items()},
    "divergences": [str(d) for d in result.divergences],
}))
"""


@pytest.fixture(scope="module")
def task_expression(mnist_root) -> str:
    """One expression builds the task here, in the child and in the script."""
    source = (
        "gn.datasets.bundled_mnist()"
        if mnist_root is None
        else f"gn.datasets.mnist({str(mnist_root)!r}, download=False)"
    )
    return f"gn.datasets.subset({source}, 600, 200, seed=0)"


@pytest.fixture(scope="module")
def task(task_expression):
    return eval(task_expression, {"gn": gn})  # noqa: S307 - our own expression


def wait_for(run, generation: int) -> None:
    deadline = time.monotonic() + 120
    while run.generation < generation:
        assert not run.done(), run.status()
        assert time.monotonic() < deadline, f"stuck before generation {generation}"
        time.sleep(0.005)


def steer_a_session(session: Session, task) -> list[str]:
    """Twelve actions over twenty generations of a continual run, at the prompt's pace."""
    parameters, selection, library = session.parameters, session.selection, session.library
    parameters.put("orchestration", {"generation_size": 4, "workers": 2})
    parameters.put("selection", {"complexity_levels": 3})
    run = session.evolve_continual(START, task, seed=7)
    wait_for(run, 2)
    parameters.put("evolution", {"mutation_rate": 0.5})
    wait_for(run, 4)
    first = next(iter(selection.elites()))
    selection.pin(first)
    wait_for(run, 6)
    selection.favor(first, 3)
    wait_for(run, 8)
    elites = list(selection.elites().values())
    selection.veto(min(elites, key=lambda net: net.val_acc))
    wait_for(run, 9)
    parents = list(selection.elites().values())
    child = session.breed(parents[0], parents[-1])
    selection.put_unevaluated(child)
    wait_for(run, 11)
    parameters.put("evolution", {"max_layers": 4, "forbid": ["sigmoid"]})
    wait_for(run, 13)
    selection.unpin(first)
    wait_for(run, 15)
    selection.clear_vetoes()
    wait_for(run, 16)
    best = max(selection.elites().values(), key=lambda net: net.val_acc)
    library.put(best)
    wait_for(run, 17)
    selection.put_unevaluated(library.get(best.id))  # the snapshot competes again
    wait_for(run, GENERATIONS)
    run.stop()
    assert run.join(120) and run.status().error is None
    return [entry.action for entry in session.journal.entries()]


@pytest.fixture(scope="module")
def recorded(task, tmp_path_factory, tracked_session):
    """The steered session, recorded in a workspace: (workspace path, archive fingerprints)."""
    path = tmp_path_factory.mktemp("recorded") / "session.db"
    store = Workspace(path)
    session = tracked_session(store)
    actions = steer_a_session(session, task)
    archive = {str(cell): fingerprint(net) for cell, net in session.selection.elites().items()}
    entries = session.journal.entries()
    store.close()
    return path, archive, actions, entries


def run_child(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTEST_CURRENT_TEST"}
    return subprocess.run(
        [sys.executable, *args], capture_output=True, text=True, timeout=300, env=env
    )


def test_the_steered_session_has_ten_actions_over_twenty_generations(recorded):
    _, archive, actions, entries = recorded
    steering = [a for a in actions if a not in ("evolve_continual", "Run.stop")]
    assert len(steering) >= 10 and len(archive) >= 2
    assert entries[-1].action == "Run.stop" and entries[-1].generation >= GENERATIONS
    assert {e.phase for e in entries} <= {"breeding", "selection"}


def test_a_fresh_process_replays_the_journal_to_the_same_archive(recorded, task_expression):
    path, archive, _, _ = recorded
    done = run_child("-c", CHILD, str(path), task_expression)
    assert done.returncode == 0, done.stderr[-3000:]
    replayed = json.loads(done.stdout.strip().splitlines()[-1])
    assert replayed["divergences"] == []
    assert replayed["archive"] == archive


def test_the_script_to_script_writes_gives_the_same_archive(recorded, task_expression, tmp_path):
    path, archive, _, _ = recorded
    entries = Journal(workspace=lambda: Workspace(path, read_only=True)).entries()
    script = gn.journal.to_script(tmp_path / "session.py", task=task_expression, entries=entries)
    text = script.read_text()
    assert "script.step(" in text and "'Selection.pin'" in text
    done = run_child(str(script), "--save", str(tmp_path / "elites"))
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    lines = done.stdout.splitlines()
    printed = {line.split()[1]: line.split()[2] for line in lines if line.startswith("cell ")}
    assert printed == archive
    saved = sorted((tmp_path / "elites").glob("*.safetensors"))
    assert sorted(fingerprint(gn.load(p)) for p in saved) == sorted(archive.values())


def test_a_replay_on_another_task_says_which_step_diverged(recorded, task):
    _, archive, _, entries = recorded
    # The same name, sizes and source, the samples in another order: only the data tells.
    other = dataclasses.replace(task, x_train=task.x_train.flip(0), y_train=task.y_train.flip(0))
    assert repr(other) == repr(task)
    result = gn.journal.replay(other, entries=entries)
    assert not result.exact
    first = result.divergences[0]
    assert first.action == "evolve_continual" and "task" in first.reason
    assert result.archive() != {int(c): f for c, f in archive.items()}


def test_a_network_from_outside_the_session_is_named_as_the_divergence(task, train_network):
    parameters = Parameters()
    selection = Selection(parameters=parameters)
    session = Session(parameters=parameters, selection=selection, library=Library())
    parameters.put("orchestration", {"generation_size": 2, "workers": 1})
    outsider = train_network(task, [("dense", [8, "relu"])], seed=3)  # as if loaded from a file
    session.evolve([Network(START)], 1, task, seed=1).result(timeout=120)
    selection.put_unevaluated(outsider)
    session.evolve(None, 1, task, seed=2).result(timeout=120)
    result = SessionJournal(session).replay(task)
    (divergence,) = result.divergences
    assert divergence.action == "Selection.put_unevaluated"
    assert outsider.id[:8] in divergence.reason and "outside" in divergence.reason


def test_steps_after_a_divergence_name_it_as_their_cause(task, train_network, caplog):
    parameters = Parameters()
    selection = Selection(parameters=parameters)
    library = Library()
    session = Session(parameters=parameters, selection=selection, library=library)
    parameters.put("orchestration", {"generation_size": 2, "workers": 1})
    parameters.put("evolution", {"mutation_rate": 0.0})  # children are their parents' genomes
    outsider = train_network(task, [("dense", [8, "relu"])], seed=3)
    selection.put_unevaluated(outsider)  # step 3: the first cause
    session.evolve(None, 1, task, seed=2).result(timeout=120)
    library.put(next(iter(selection.elites().values())))  # made from the outsider's line
    with caplog.at_level("INFO", logger="galapagos_nao"):
        result = SessionJournal(session).replay(task)
    first, *later = result.divergences
    assert first.action == "Selection.put_unevaluated" and "outside" in first.reason
    assert later and all("outside" not in d.reason for d in later)
    library_put = next(d for d in later if d.action == "Library.put")
    assert f"depends on step {first.seq} (Selection.put_unevaluated)" in library_put.reason
    assert "Replay: step 4 of " in caplog.text  # where a long replay is


def test_to_script_asks_for_the_task_a_recorded_run_used(recorded, tmp_path):
    *_, entries = recorded
    with pytest.raises(ValueError, match=r"step 3 \(evolve_continual\) ran on Task\(.*pass task="):
        gn.journal.to_script(tmp_path / "s.py", entries=entries)
    assert not (tmp_path / "s.py").exists()


def test_put_clear_and_reset_are_journaled_and_replayed(task):
    parameters = Parameters()
    selection = Selection(parameters=parameters)
    session = Session(parameters=parameters, selection=selection, library=Library())
    parameters.put("orchestration", {"generation_size": 3, "workers": 2})
    first = session.evolve(START, 2, task, seed=4)
    first.result(timeout=120)
    first.stop()  # on a run that has ended: journaled, and replayed as the no-op it was
    best = max(selection.elites().values(), key=lambda net: net.val_acc)
    selection.clear()
    parameters.reset()
    parameters.put("orchestration", {"generation_size": 2, "workers": 2})
    selection.put(2, best)
    session.evolve(None, 2, task, seed=5).result(timeout=120)
    actions = [e.action for e in session.journal.entries()]
    assert {"Selection.clear", "Parameters.reset", "Selection.put", "Run.stop"} <= set(actions)
    result = SessionJournal(session).replay(task)
    assert result.exact, result.divergences
    assert result.differences(selection) == [] and result.archive()


def test_a_session_that_restarted_and_resumed_replays_across_the_restart(
    task, tmp_path, tracked_session
):
    def stop_after(generation):
        def hook(report):
            if report.generation == generation:
                report.run.stop()

        return hook

    path = tmp_path / "w.db"
    store = Workspace(path)
    before = tracked_session(store)  # the first process
    before.parameters.put("orchestration", {"generation_size": 3, "workers": 2})
    run = before.evolve_continual(START, task, seed=2, hooks=[stop_after(2)])
    assert run.join(120) and run.status().error is None
    cell = next(iter(before.selection.elites()))
    before.selection.pin(cell)  # after the last checkpoint: the restart loses it
    store.close()

    store = Workspace(path)
    after = tracked_session(store)  # a new process: fresh objects, the same workspace
    run = after.evolve_continual(task=task, resume=True, hooks=[stop_after(5)])
    wait_for(run, 4)
    after.selection.favor(cell, 2)
    assert run.join(120) and run.status().error is None
    entries = after.journal.entries()
    mine = SessionJournal(after).entries(this_process=True)
    store.close()

    assert len({e.session for e in entries}) == 2
    assert mine and mine == [e for e in entries if e.session == after.journal.session]
    assert mine[0].action == "resume"
    result = gn.journal.replay(task, entries=entries)
    assert result.exact, result.divergences
    assert result.differences(after.selection) == []
    assert result.selection.curation() == after.selection.curation()


def test_a_task_stream_with_a_switch_by_hand_replays_exactly(task):
    tasks = gn.datasets.split_mnist(task)[:3]
    parameters = Parameters()
    selection = Selection(parameters=parameters)
    session = Session(parameters=parameters, selection=selection, library=Library())
    parameters.put("orchestration", {"generation_size": 3, "workers": 2})
    run = session.evolve_continual(START, tasks=tasks, generations_per_task=2, seed=6)
    wait_for(run, 1)
    run.switch_task(tasks[2])  # a person skips ahead
    wait_for(run, 4)
    run.stop()
    assert run.join(120) and run.status().error is None
    actions = [e.action for e in session.journal.entries()]
    assert "Run.switch_task" in actions
    result = SessionJournal(session).replay(tasks=tasks)
    assert result.exact, result.divergences
    assert result.differences(selection) == []
    without = SessionJournal(session).replay()
    assert not without.exact and "pass tasks=" in str(without.divergences[0])


class CtrlCAtTrainingLine(logging.Handler):
    """Sends this process a SIGINT at the ``nth`` candidate line it sees: a run is training."""

    def __init__(self, nth: int) -> None:
        super().__init__(logging.INFO)
        self.nth, self.seen, self.pressed = nth, 0, False

    def emit(self, record: logging.LogRecord) -> None:
        self.seen += 1
        if self.seen == self.nth:
            self.pressed = True
            os.kill(os.getpid(), signal.SIGINT)


def test_ctrl_c_stops_a_replay_and_returns_what_was_replayed(task, capsys):
    parameters = Parameters()
    selection = Selection(parameters=parameters)
    session = Session(parameters=parameters, selection=selection, library=Library())
    parameters.put("orchestration", {"generation_size": 2, "workers": 2})
    run = session.evolve_continual(START, task, seed=8)
    wait_for(run, 20)
    run.stop()
    assert run.join(120)
    # A real SIGINT, as Ctrl-C sends, once the replayed run trains (its second generation).
    press = CtrlCAtTrainingLine(4)
    candidates = logging.getLogger(CANDIDATE_LOGGER)
    candidates.setLevel(logging.INFO)  # the per-candidate lines; conftest resets the level
    candidates.addHandler(press)
    started = time.monotonic()
    try:
        result = SessionJournal(session).replay(task)
    finally:
        candidates.removeHandler(press)
    assert press.pressed
    assert time.monotonic() - started < 30
    assert not result.complete and not result.exact
    assert "stopped by Ctrl-C" in repr(result)
    assert "replay stopped" in capsys.readouterr().err
    assert selection.run is run  # the recorded objects were not touched


def test_the_same_data_read_from_elsewhere_is_the_same_task(task):
    parameters = Parameters()
    selection = Selection(parameters=parameters)
    session = Session(parameters=parameters, selection=selection, library=Library())
    parameters.put("orchestration", {"generation_size": 2, "workers": 2})
    session.evolve(START, 2, task, seed=9).result(timeout=120)
    moved = dataclasses.replace(task, source="another machine's copy")
    result = SessionJournal(session).replay(moved)
    assert result.exact, result.divergences
    assert result.differences(selection) == []


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda j: j.replay("mnist"), "task must be a datasets.Task or None, got 'mnist'"),
        (lambda j: j.replay(tasks=["a"]), r"tasks\[0\] must be a datasets.Task"),
        (
            lambda j: j.replay(entries=[{"action": "evolve"}]),
            r"entries\[0\] must be a JournalEntry",
        ),
        (lambda j: j.to_script("s.py", task=gn.datasets), "task must be a Python expression"),
        (lambda j: j.to_script(3), "path must be a file path, got 3"),
    ],
)
def test_bad_arguments_to_replay_and_to_script_are_named(call, match, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    journal = SessionJournal(
        Session(parameters=Parameters(), selection=Selection(), library=Library())
    )
    with pytest.raises(ValueError, match=match):
        call(journal)
    assert list(tmp_path.iterdir()) == []
