"""Growth that pays for itself: children stay inside the complexity range, the grid too."""

from __future__ import annotations

import gc
from pathlib import Path

import numpy as np
import pytest
import torch

import galapagos_nao as gn
from galapagos_nao.archive.selection import Selection
from galapagos_nao.config.parameters import Parameters
from galapagos_nao.config.settings import DEFAULT_MAX_LAYERS
from galapagos_nao.core.network import Network
from galapagos_nao.run.api import Session
from galapagos_nao.run.generation import breed
from galapagos_nao.run.records import Outcome
from galapagos_nao.store.library import Library
from galapagos_nao.store.workspace import Workspace


@pytest.fixture
def tiny_task() -> gn.datasets.Task:
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(96, 4, generator=generator)
    y = (x[:, 0] > 0).long()
    return gn.datasets.from_tensors(x[:64], y[:64], x[64:], y[64:], name="tiny")


def test_breeding_from_a_parent_at_the_default_top_never_passes_it():
    parameters = Parameters()
    parameters.put("orchestration", {"generation_size": 400})
    parent = Network([("dense", [4, "relu"])] * DEFAULT_MAX_LAYERS)
    children = breed([parent], np.random.default_rng(0), parameters.settings(), 0)
    lengths = [len(child.layers) for child in children]
    assert len(children) == 400
    assert max(lengths) == DEFAULT_MAX_LAYERS  # the top is reachable, never passed
    assert min(lengths) < DEFAULT_MAX_LAYERS


def test_children_stay_inside_the_range_over_many_generations(tiny_task):
    # Parents start at the top of the range: every duplication would pass it.
    parameters = Parameters()
    parameters.put("evolution", {"max_layers": 3, "layer_types": {"dense": [4, "relu"]}})
    parameters.put("orchestration", {"generation_size": 4, "workers": 1})
    parameters.put("training", {"device": "cpu", "batch_size": 32})
    parameters.put("selection", {"complexity_levels": 3})
    selection = Selection(parameters=parameters)
    lengths: list[int] = []

    def count(outcome: Outcome) -> None:
        lengths.append(len(outcome.candidate.layers))

    run = gn.evolve(
        [("dense", [4, "relu"])] * 3,
        12,
        tiny_task,
        selection=selection,
        parameters=parameters,
        seed=3,
        candidate_hooks=[count],
    )
    run.result(timeout=300)
    assert len(lengths) >= 48
    assert max(lengths) == 3  # the top is bred, never passed
    assert all(n.complexity <= 3 for n in selection.elites().values())
    assert selection.grid().edges[0][-1] <= 3.0


def ctypes_array_types() -> int:
    gc.collect()
    return sum(type(o).__name__ == "PyCArrayType" for o in gc.get_objects())


def test_a_tracked_run_keeps_nothing_per_tensor_size_it_checkpoints(tiny_task, tmp_path: Path):
    # Widths mutate every generation, so checkpoints meet ever-new tensor sizes;
    # safetensors' torch writer kept a ctypes type for each, for good.
    store = Workspace(tmp_path / "w.db")
    parameters = Parameters()
    selection = Selection(parameters=parameters)
    session = Session(parameters=parameters, selection=selection, library=Library(workspace=store))
    session.track(selection, store)
    parameters.put("evolution", {"layer_types": {"dense": [8, "relu"]}, "std_dev": 6})
    parameters.put("orchestration", {"generation_size": 4, "workers": 1})
    parameters.put("training", {"device": "cpu", "batch_size": 32})
    parameters.put("selection", {"complexity_levels": 3})
    sizes: set[int] = set()

    def collect(outcome: Outcome) -> None:
        if outcome.network is not None and outcome.network.weights is not None:
            sizes.update(t.numel() * t.element_size() for t in outcome.network.weights.values())

    session.evolve([("dense", [8, "relu"])] * 2, 1, tiny_task, seed=5).result(timeout=300)
    before, seen = ctypes_array_types(), len(sizes)
    run = session.evolve(None, 8, tiny_task, seed=6, candidate_hooks=[collect])
    run.result(timeout=300)
    assert store.last_run() is not None and run.status().failed == 0
    assert len(sizes) - seen >= 10  # the run did meet many new sizes
    assert ctypes_array_types() - before == 0, "ctypes types made while checkpointing"
    store.close()
