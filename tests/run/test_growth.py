"""Growth that pays for itself: children stay inside the complexity range, the grid too."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import galapagos_nao as gn
from galapagos_nao.archive.selection import Selection
from galapagos_nao.config.parameters import Parameters
from galapagos_nao.config.settings import DEFAULT_MAX_LAYERS
from galapagos_nao.core.network import Network
from galapagos_nao.run.generation import breed
from galapagos_nao.run.records import Outcome


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
