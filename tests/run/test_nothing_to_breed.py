"""The archive never loses its last networks (issue 22, findings 4 and 5).

Finding 4: a generation in which every child is dropped at breeding
(``max_layers``, ``forbid``, vetoes, a failing ``mutate``) keeps its parents and
its queue, says why in one line, and waits; steering lets it breed again.
Finding 5: favor 0 on every cell (documented: "0 keeps the cell but breeds
nothing from it"), or an empty Selection, leaves the run waiting, not failed.
Real runs on real threads; the steering is the public API's.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator

import pytest
from torch import nn

import galapagos_nao as gn
from galapagos_nao.archive.selection import Selection
from galapagos_nao.config.parameters import Parameters
from galapagos_nao.core import datasets, genome
from galapagos_nao.core.network import Network
from galapagos_nao.run.reports import GenerationReport


@pytest.fixture(autouse=True)
def failing_mutate() -> Iterator[None]:
    """Registers a layer whose ``mutate`` always raises."""

    def mutate_raises(value, rng, std_dev):
        raise RuntimeError("mutate blew up")

    spec = genome.ParamSpec("size", "an int >= 1", lambda v: isinstance(v, int), mutate_raises)
    identity = lambda p, n: ([nn.Identity()], n)  # noqa: E731
    genome.register_layer("test_mutate_fails", [spec], identity, replace=True)
    yield


def selection_with(**evolution: object) -> Selection:
    parameters = Parameters()
    parameters.put("evolution", {"mutation_rate": 0.0, **evolution})
    parameters.put("training", {"device": "cpu"})
    parameters.put("orchestration", {"generation_size": 2})
    return Selection(parameters=parameters)


def wait_until(predicate: Callable[[], bool], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def said(caplog: pytest.LogCaptureFixture, text: str) -> list[str]:
    return [r.getMessage() for r in caplog.records if text in r.getMessage()]


THREE = [("dense", [4, "relu"]), ("dense", [4, "relu"]), ("dense", [4, "relu"])]


# Vetoes: a veto removes every network of its genome, so with mutation_rate 0 it
# cannot drop every child while their parent stays; the tabu list is the same
# check as forbid's redraws (run/generation.py::_draw_child), covered below.
@pytest.mark.parametrize(
    ("constraint", "steer_back", "reason"),
    [
        (
            {"max_layers": 2},
            lambda s: s.parameters.put("evolution", {"max_layers": None}),
            "max_layers 2: the child has 3 layers",
        ),
        (
            {"forbid": ["dense"]},
            lambda s: s.parameters.put("evolution", {"forbid": []}),
            "forbid 'dense'",
        ),
    ],
    ids=["max_layers", "forbid"],
)
def test_a_generation_with_no_child_keeps_its_queue_and_waits(
    tiny_task, caplog, constraint, steer_back, reason
):
    caplog.set_level(logging.WARNING, logger="galapagos_nao")
    selection = selection_with(**constraint)
    start = Network(THREE, input_shape=(4,), n_classes=2)
    selection.put_unevaluated(start)
    run = gn.evolve(None, 2, tiny_task, selection=selection, seed=0)
    try:
        wait_until(lambda: len(said(caplog, "no child could be bred")) >= 2)
        lines = said(caplog, "no child could be bred")
        assert reason in lines[0] and "its parents and queue stay" in lines[0], lines[0]
        status = run.status()
        assert (status.state, status.completed, status.evaluated) == ("running", 0, 0), status
        assert [n.layers for n in selection.queued().values()] == [start.layers]
        steer_back(selection)
        assert run.join(60), f"the run did not breed again after steering: {run!r}"
    finally:
        run.stop()
    status = run.status()
    assert (status.state, status.completed) == ("finished", 2), status
    assert selection.elites()


def test_a_failing_mutate_on_every_child_keeps_the_elites(tiny_task, caplog):
    caplog.set_level(logging.WARNING, logger="galapagos_nao")
    # Every kept layer is perturbed with probability 0.5: with 12, every child (seed 0) hits one.
    selection = selection_with(mutation_rate=0.5, layer_types={"dropout": [0.1]})
    bad = Network([("test_mutate_fails", [3])] * 12, input_shape=(4,), n_classes=2)
    selection.put_unevaluated(bad)
    run = gn.evolve(None, 1, tiny_task, selection=selection, seed=0)
    try:
        wait_until(lambda: bool(said(caplog, "no child could be bred")))
        assert "mutate blew up" in said(caplog, "no child could be bred")[0]
        assert run.status().state == "running"
        assert [n.id for n in selection.queued().values()] == [bad.id]
    finally:
        run.stop()
    assert run.join(30) and run.status().state == "stopped"
    assert [n.id for n in selection.queued().values()] == [bad.id]


def trained_archive(task: datasets.Task) -> Selection:
    """A Selection with elites in two cells, from a real one-generation run."""
    selection = selection_with(mutation_rate=0.0)
    nets = [
        Network([("dense", [4, "relu"])], input_shape=(4,), n_classes=2),
        Network(THREE + THREE, input_shape=(4,), n_classes=2),
    ]
    run = gn.evolve(nets, 1, task, selection=selection, seed=0)
    assert run.join(60) and run.status().state == "finished"
    assert len(selection.elites()) == 2
    return selection


def test_favor_zero_on_every_cell_breeds_nothing_and_the_run_waits(tiny_task, caplog):
    caplog.set_level(logging.WARNING, logger="galapagos_nao")
    selection = trained_archive(tiny_task)
    elites = selection.elites()
    for cell in elites:
        selection.favor(cell, 0)
    run = gn.evolve_continual(None, tiny_task, selection=selection, seed=1)
    try:
        wait_until(lambda: bool(said(caplog, "has favor 0")))
        time.sleep(1.5)  # several looks later: still waiting, said once
        assert run.status().state == "running" and run.status().completed == 0
        assert len(said(caplog, "has favor 0")) == 1
        assert selection.elites() == elites
        first = next(iter(elites))
        selection.favor(first, 1)  # steering: one cell breeds again
        wait_until(lambda: run.status().completed >= 1)
    finally:
        run.stop()
    assert run.join(30) and run.status().state == "stopped"


def test_an_emptied_selection_waits_for_a_network(tiny_task, caplog):
    caplog.set_level(logging.WARNING, logger="galapagos_nao")
    selection = trained_archive(tiny_task)
    cleared: list[int] = []

    def clear_once(report: GenerationReport) -> None:
        # Between generations, on the run's thread: no generation in flight refills it.
        if not cleared:
            cleared.append(report.generation)
            selection.clear()

    run = gn.evolve_continual(None, tiny_task, selection=selection, seed=1, hooks=[clear_once])
    try:
        wait_until(lambda: bool(said(caplog, "the Selection is empty")))
        time.sleep(1)
        assert run.status().state == "running" and not selection.elites()
        selection.put_unevaluated(Network([("dense", [4, "relu"])], input_shape=(4,), n_classes=2))
        wait_until(lambda: bool(selection.elites()))
    finally:
        run.stop()
    assert run.join(30) and run.status().state == "stopped"


def test_a_queued_network_none_of_whose_children_was_bred_stays_queued(tiny_task, caplog):
    # Found by the steering attack: its child dropped while another parent's bred,
    # a queued network left the queue with nothing of it archived.
    caplog.set_level(logging.WARNING, logger="galapagos_nao")
    selection = trained_archive(tiny_task)  # mutation_rate 0: children are clones
    with_dropout = Network(
        [("dense", [6, "tanh"]), ("dropout", [0.2])], input_shape=(4,), n_classes=2
    )
    selection.put_unevaluated(with_dropout)
    selection.parameters.put("evolution", {"forbid": ["dropout"]})
    run = gn.evolve(None, 1, tiny_task, selection=selection, seed=1)
    assert run.join(60) and run.status().state == "finished"
    assert run.status().evaluated >= 1, "the elites' children were bred and trained"
    assert said(caplog, f"dropped after {20} draws: forbid 'dropout'")
    # the generation bred nothing from it: it waits for the next, as the docstring says
    assert [n.id for n in selection.queued().values()] == [with_dropout.id]
    selection.parameters.put("evolution", {"forbid": []})
    run = gn.evolve(None, 1, tiny_task, selection=selection, seed=2)
    assert run.join(60) and run.status().state == "finished"
    assert not selection.queued(), "bred from at last, it leaves the queue"
