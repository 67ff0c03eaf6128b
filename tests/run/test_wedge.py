"""Runs that cannot be wedged: stuck candidates, candidates that exit, mutations that raise.

Every fault here is real: a registered layer whose forward blocks on an Event
(released at teardown), one that raises SystemExit, a parameter whose mutate
raises. No mocks.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator

import numpy as np
import pytest
import torch
from torch import nn

import galapagos_nao as gn
from galapagos_nao.archive.selection import Selection
from galapagos_nao.config.parameters import Parameters
from galapagos_nao.core import genome
from galapagos_nao.core.network import Network
from galapagos_nao.run.failures import GenerationsFailing
from galapagos_nao.run.generation import breed
from galapagos_nao.run.records import Outcome

#: Released at teardown so that stuck forward passes return and their threads end.
RELEASE = threading.Event()


@pytest.fixture(autouse=True)
def faulty_layers() -> Iterator[None]:
    """Registers the faulty layer types, from local code, and releases stuck threads after.

    Local classes and functions: Ray workers receive the layer registry by value
    and could not import this test module.
    """
    release = RELEASE

    class Block(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            release.wait()  # a forward pass that does not return until the test lets it
            return x

    class Exit(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            raise SystemExit("bye from a layer")

    def mutate_raises(value, rng, std_dev):
        raise RuntimeError("mutate blew up")

    spec = genome.ParamSpec("size", "an int >= 1", lambda v: isinstance(v, int), mutate_raises)
    genome.register_layer("test_block", [], lambda p, n: ([Block()], n), replace=True)
    genome.register_layer("test_exit", [], lambda p, n: ([Exit()], n), replace=True)
    genome.register_layer(
        "test_bad_mutate", [spec], lambda p, n: ([nn.Identity()], n), replace=True
    )
    RELEASE.clear()
    yield
    RELEASE.set()


@pytest.fixture
def selection() -> Selection:
    parameters = Parameters()
    parameters.put("evolution", {"mutation_rate": 0.0})
    parameters.put("training", {"device": "cpu"})
    return Selection(parameters=parameters)


def test_a_stuck_candidate_is_dropped_and_later_generations_get_workers(selection, tiny_task):
    # One worker: the stuck candidate holds it, so the run must replace the pool.
    selection.parameters.put("orchestration", {"timeout": 0.5, "workers": 1})
    nets = [Network([("test_block", [])], input_shape=(4,), n_classes=2)]
    nets.append(Network([("dense", [4, "relu"])], input_shape=(4,), n_classes=2))
    outcomes: list[Outcome] = []
    started = time.monotonic()
    run = gn.evolve(
        nets, 2, tiny_task, selection=selection, seed=0, candidate_hooks=[outcomes.append]
    )
    assert run.join(60), f"a stuck candidate wedged the run: {run!r}"
    status = run.status()
    assert status.state == "finished" and status.completed == 2, status
    assert status.failed >= 1 and status.evaluated >= 2
    assert time.monotonic() - started < 30
    stuck = [o.failure for o in outcomes if o.failure]
    assert stuck and all("did not return within" in f and "may linger" in f for f in stuck)
    elites = selection.elites()
    assert all(n.layers == (("dense", (4, "relu")),) for n in elites.values())


def test_a_generation_of_stuck_candidates_fails_naming_them(selection, tiny_task):
    selection.parameters.put("orchestration", {"timeout": 0.5, "max_failed_generations": 1})
    nets = [Network([("test_block", [])], input_shape=(4,), n_classes=2)]
    run = gn.evolve(nets, 1, tiny_task, selection=selection, seed=0)
    assert run.join(60), f"a stuck candidate wedged the run: {run!r}"
    with pytest.raises(GenerationsFailing, match="did not return within .*may linger"):
        run.result()


def test_stop_returns_promptly_while_a_candidate_is_stuck(selection, tiny_task):
    selection.parameters.put("orchestration", {"timeout": 3600})
    nets = [Network([("test_block", [])], input_shape=(4,), n_classes=2)]
    run = gn.evolve_continual(nets, tiny_task, selection=selection, seed=0)
    time.sleep(0.5)  # the candidate is inside its forward pass now
    started = time.monotonic()
    run.stop()
    assert run.join(30), f"stop() could not end a run with a stuck candidate: {run!r}"
    assert time.monotonic() - started < 15
    assert run.status().state == "stopped"


def test_a_candidate_raising_system_exit_is_dropped(selection, tiny_task):
    nets = [
        Network([("test_exit", [])], input_shape=(4,), n_classes=2),
        Network([("dense", [4, "relu"])], input_shape=(4,), n_classes=2),
    ]
    run = gn.evolve(nets, 1, tiny_task, selection=selection, seed=0)
    assert run.join(60)
    status = run.status()
    assert (status.state, status.failed, status.evaluated) == ("finished", 2, 2), status


def test_a_mutate_that_raises_drops_the_child_and_the_run_goes_on(tiny_task, caplog):
    caplog.set_level(logging.WARNING, logger="galapagos_nao")
    parameters = Parameters()
    # Replacing a layer needs a type to replace it with; none given, every mutation perturbs.
    parameters.put("evolution", {"mutation_rate": 0.5, "layer_types": {"dropout": [0.1]}})
    parameters.put("orchestration", {"generation_size": 8})
    parameters.put("training", {"device": "cpu"})
    selection = Selection(parameters=parameters)
    nets = [
        Network([("test_bad_mutate", [3])] * 6, input_shape=(4,), n_classes=2),
        Network([("dense", [4, "relu"])], input_shape=(4,), n_classes=2),
    ]
    run = gn.evolve(nets, 2, tiny_task, selection=selection, seed=0)
    assert run.join(60)
    status = run.status()
    assert status.state == "finished" and status.completed == 2, status
    dropped = [r.getMessage() for r in caplog.records if "dropped" in r.getMessage()]
    assert any("('test_bad_mutate')" in m and "mutate blew up" in m for m in dropped), dropped


def test_breeding_stops_when_the_run_is_stopped():
    stop = threading.Event()
    stop.set()
    parameters = Parameters()
    parameters.put("orchestration", {"generation_size": 10_000})
    parent = Network([("dense", [4, "relu"])], input_shape=(4,), n_classes=2)
    children = breed(
        [parent], np.random.default_rng(0), parameters.settings(), 0, should_stop=stop.is_set
    )
    assert children == []
