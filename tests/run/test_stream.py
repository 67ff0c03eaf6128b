"""Runs across a task stream: switching, re-scoring, replay, R, resume and bad input."""

from __future__ import annotations

import threading
from collections import defaultdict
from typing import Any

import pytest
import torch

import galapagos_nao as gn
from galapagos_nao.archive.selection import Selection
from galapagos_nao.config.parameters import Parameters
from galapagos_nao.core import datasets
from galapagos_nao.core.device_data import DeviceDataCache
from galapagos_nao.core.network import Network, build
from galapagos_nao.core.training import accuracy
from galapagos_nao.run.loop import GenerationReport
from galapagos_nao.store.workspace import Workspace

START = [("dense", [16, "relu"])]


@pytest.fixture(scope="module")
def stream(small_mnist) -> list[datasets.Task]:
    """Split MNIST over 500 training samples: about 100 per task."""
    return datasets.split_mnist(datasets.subset(small_mnist, 500, 250, seed=0))


def quick_selection(replay: int = 0, mixing: str = "balanced") -> Selection:
    selection = Selection(parameters=Parameters())
    selection.parameters.put(
        gn.orchestration, {"generation_size": 2, "workers": 1, "threads_per_worker": 1}
    )
    selection.parameters.put(
        gn.training,
        {"batch_size": 25, "device": "cpu", "replay": replay, "replay_mixing": mixing},
    )
    return selection


def watch(last: int, seen: dict[str, Any]) -> Any:
    """A hook that notes each generation's stream position and stops after generation ``last``."""

    def hook(report: GenerationReport) -> None:
        seen.setdefault("positions", []).append(report.run.stream.position)
        if report.generation >= last:
            report.run.stop()

    return hook


def test_the_run_moves_on_every_g_generations_never_mid_generation(stream):
    seen: dict[str, Any] = {}
    per_candidate: dict[int, set[int]] = defaultdict(set)

    made = threading.Event()  # the first candidate may finish before `run` is bound
    handle: dict[str, Any] = {}

    def candidate(outcome: Any) -> None:
        assert made.wait(30)
        per_candidate[outcome.candidate.generation].add(handle["run"].stream.position)

    run = gn.evolve_continual(
        START,
        selection=quick_selection(),
        tasks=stream[:3],
        generations_per_task=2,
        seed=1,
        hooks=[watch(6, seen)],
        candidate_hooks=[candidate],
    )
    handle["run"] = run
    made.set()
    assert run.join(60) and run.status().error is None
    # after the last task it stays there
    assert seen["positions"] == [0, 0, 1, 1, 2, 2, 2]
    assert {g: sorted(p) for g, p in per_candidate.items()} == {
        g: [p] for g, p in enumerate(seen["positions"])
    }
    metrics = run.task_metrics()
    assert metrics.trained == (0, 1, 2)  # a row after each task's G generations, once
    assert len(metrics.matrix) == 3 and all(len(row) == 3 for row in metrics.matrix)
    assert metrics.matrix[0][0] > 0.9  # two digits, learned
    assert "task 3/3 'split-mnist 4,5'" in repr(run)


def test_cycle_starts_the_stream_over(stream):
    seen: dict[str, Any] = {}
    run = gn.evolve_continual(
        START,
        selection=quick_selection(),
        tasks=stream[:2],
        generations_per_task=1,
        cycle=True,
        seed=1,
        hooks=[watch(3, seen)],
    )
    assert run.join(60) and seen["positions"] == [0, 1, 0, 1]
    assert run.task_metrics().trained == (0, 1, 0, 1)


def test_switch_task_takes_effect_at_the_next_generation(stream):
    seen: dict[str, Any] = {}
    new_task = datasets.permuted_mnist(1, seed=3, base=stream[4])[0]

    def switch(report: GenerationReport) -> None:
        if report.generation == 0:
            report.run.switch_task(stream[3])
        if report.generation == 1:
            report.run.switch_task(new_task)  # not in the stream: appended

    run = gn.evolve_continual(
        START,
        selection=quick_selection(),
        tasks=stream,
        seed=2,
        hooks=[watch(2, seen), switch],
    )
    assert run.join(60) and run.status().error is None
    assert seen["positions"] == [0, 3, 5]
    metrics = run.task_metrics()
    assert metrics.trained == (0, 3) and metrics.task_names[-1] == new_task.name
    assert len(metrics.matrix[0]) == 6


def test_at_a_switch_every_elite_is_rescored_on_the_new_task(stream):
    before: dict[Any, Network] = {}
    rescored: dict[Any, Network] = {}

    def remember(report: GenerationReport) -> None:
        if report.generation == 0:
            before.update(report.elites)
        if report.generation == 1:
            report.run.stop()

    def first_of_generation_1(outcome: Any) -> None:
        if outcome.candidate.generation == 1 and not rescored:
            rescored.update(run.selection.elites())  # after the switch, before selection

    run = gn.evolve_continual(
        START,
        selection=quick_selection(),
        tasks=stream,
        generations_per_task=1,
        seed=3,
        hooks=[remember],
        candidate_hooks=[first_of_generation_1],
    )
    assert run.join(60) and before and list(rescored) == list(before)
    data = DeviceDataCache().get(stream[1], torch.device("cpu"), 0.1)
    for cell, net in rescored.items():
        assert net.id == before[cell].id and before[cell].val_acc > 0.6
        model = build(net.layers, net.input_shape, net.n_classes)
        model.load_state_dict(dict(net.weights))
        assert net.val_acc == accuracy(model, data.x_val, data.y_val) < 0.5  # 0/1 net on 2/3


@pytest.mark.parametrize("mixing", ["balanced", "appended"])
def test_replay_keeps_past_tasks_and_fitness_averages_over_them(stream, mixing):
    seen: dict[str, Any] = {}
    run = gn.evolve_continual(
        START,
        selection=quick_selection(replay=10, mixing=mixing),
        tasks=stream[:3],
        generations_per_task=1,
        seed=4,
        hooks=[watch(2, seen)],
    )
    assert run.join(60) and seen["positions"] == [0, 1, 2]
    assert run.stream.replay_size() == 20  # 10 of each past task, not of the current one
    task = run.stream.begin_generation(run.selection, run.parameters.settings(), DeviceDataCache())
    assert set(task.y_train.tolist()) == {0, 1, 2, 3, 4, 5}
    assert task.val_groups.unique().tolist() == [0, 1, 2]
    n_current = int(torch.isin(task.y_train, torch.tensor([4, 5])).sum())
    # balanced: each past task's 10 samples repeated to the current task's count
    assert task.n_train == (3 * n_current if mixing == "balanced" else n_current + 20)


def test_resume_continues_the_stream_with_its_replay_memory_and_r(stream, tmp_path):
    store = Workspace(tmp_path / "w.db")
    first = quick_selection(replay=10)
    gn.session.track(first, store)
    run = gn.evolve_continual(
        START,
        selection=first,
        tasks=stream,
        generations_per_task=2,
        seed=5,
        hooks=[watch(2, {})],
    )
    assert run.join(60) and run.status().error is None
    state = run.stream.state()
    assert state["position"] == 1 and state["on_task"] == 1 and len(state["metrics"]["matrix"]) == 1
    assert store.checkpoint().stream == state

    later = Selection(parameters=Parameters())  # as after a restart
    gn.session.track(later, store)
    with pytest.raises(ValueError, match="pass tasks="):
        gn.evolve_continual(selection=later, resume=True)
    with pytest.raises(ValueError, match="stream of 5 tasks, got 4"):
        gn.evolve_continual(selection=later, resume=True, tasks=stream[:4])
    with pytest.raises(ValueError, match=r"tasks\[0\]"):
        gn.evolve_continual(selection=later, resume=True, tasks=[stream[1], *stream[1:]])
    assert len(later) == 0 and later.run is None  # nothing changed
    seen: dict[str, Any] = {}
    resumed = gn.evolve_continual(
        selection=later, resume=True, tasks=stream, hooks=[watch(4, seen)]
    )
    assert resumed.stream.state()["replay"] == state["replay"]
    assert resumed.join(60) and resumed.status().error is None
    assert seen["positions"] == [1, 2]  # generation 3 finishes task 1, 4 starts task 2
    metrics = resumed.task_metrics()
    assert metrics.trained == (0, 1)
    assert metrics.matrix[0] == tuple(state["metrics"]["matrix"][0])
    assert resumed.stream.replay_size() == 20


def test_bad_stream_input_is_named_and_changes_nothing(stream, small_mnist):
    selection = quick_selection()
    other = datasets.from_tensors(
        small_mnist.x_train[:50, :, :14, :14],
        small_mnist.y_train[:50],
        small_mnist.x_test[:20, :, :14, :14],
        small_mnist.y_test[:20],
        n_classes=10,
    )
    with pytest.raises(ValueError, match=r"tasks\[2\]"):
        gn.evolve_continual(START, selection=selection, tasks=[*stream[:2], other])
    with pytest.raises(ValueError, match="generations_per_task"):
        gn.evolve_continual(START, selection=selection, tasks=stream, generations_per_task=0)
    with pytest.raises(ValueError, match="task and tasks conflict"):
        gn.evolve_continual(START, stream[0], selection=selection, tasks=stream)
    with pytest.raises(ValueError, match="training.replay"):
        selection.parameters.put(gn.training, {"replay": -1})
    assert len(selection) == 0 and selection.run is None
    assert selection.parameters.settings().training.replay == 0


def test_switch_task_needs_a_stream_and_a_task_that_fits(stream, small_mnist):
    run = gn.evolve(START, 1, stream[0], selection=quick_selection(), seed=1)
    with pytest.raises(ValueError, match="no task stream"):
        run.switch_task(stream[1])
    assert run.join(60) and run.task_metrics() is None
    streaming = gn.evolve_continual(START, selection=quick_selection(), tasks=stream, seed=1)
    bad = datasets.from_tensors(
        small_mnist.x_train[:50], small_mnist.y_train[:50], small_mnist.x_test[:20],
        small_mnist.y_test[:20], n_classes=11,
    )  # fmt: skip
    with pytest.raises(ValueError, match=r"tasks\[5\].*n_classes 11"):
        streaming.switch_task(bad)
    streaming.stop()
    assert streaming.join(60) and len(streaming.stream.tasks) == 5
