"""Weight inheritance: children start from their parent's trained weights where shapes allow."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import galapagos_nao as gn
from galapagos_nao.config.parameters import Parameters
from galapagos_nao.config.settings import TrainingSettings
from galapagos_nao.core import datasets, evolution, inheritance, network
from galapagos_nao.core.network import Network
from galapagos_nao.core.training import DeviceDataCache, fit
from galapagos_nao.run.generation import breed
from galapagos_nao.run.train import train_candidate

PARENT = [("dense", [24, "relu"]), ("batch_norm", []), ("dense", [12, "tanh"]), ("dropout", [0.3])]
SETTINGS = TrainingSettings(batch_size=50, device="cpu").train_settings()


@pytest.fixture(scope="module")
def data(small_mnist):
    task = datasets.subset(small_mnist, 300, 100, seed=0)
    return DeviceDataCache().get(task, torch.device("cpu"), 0.1)


@pytest.fixture(scope="module")
def parent(data) -> Network:
    result = fit(PARENT, data, SETTINGS, seed=3)
    return Network(PARENT, val_acc=result.val_acc, weights=result.weights)


def test_unchanged_layers_start_from_the_parents_trained_weights(parent):
    rng = np.random.default_rng(0)
    copied_any = fresh_any = 0
    for _ in range(40):
        child = evolution.spawn_offspring(parent.layers, rng, mutation_rate=0.4)
        model = network.build(child.layers)
        network.seed_init(model, torch.Generator().manual_seed(1))
        untouched = {k: v.clone() for k, v in model.state_dict().items()}
        copied = inheritance.inherit_weights(model, parent.weights, child.origins)
        blocks = {f"layer{i}": f"layer{j}" for i, j in enumerate(child.origins) if j is not None}
        blocks["head"] = "head"
        expected = 0
        for name, tensor in model.state_dict().items():
            block, _, rest = name.partition(".")
            source = parent.weights.get(f"{blocks.get(block)}.{rest}")
            if source is not None and source.shape == tensor.shape:
                assert torch.equal(tensor, source), (child.mutations, name)
                expected += 1
            elif not torch.equal(tensor, untouched[name]):  # resized: the shared part carries over
                assert source is not None and source.dim() == tensor.dim(), (child.mutations, name)
                shared = tuple(
                    slice(0, min(a, b)) for a, b in zip(tensor.shape, source.shape, strict=True)
                )
                assert torch.equal(tensor[shared], source[shared]), (child.mutations, name)
                expected += 1
            else:  # new or replaced: keeps its fresh init
                fresh_any += 1
        assert copied == expected
        copied_any += copied
    assert copied_any and fresh_any  # both cases were exercised


def test_the_switch_decides_what_training_starts_from(parent, data):
    for inherit in (True, False):
        parameters = Parameters()
        parameters.put(gn.evolution, {"inherit_weights": inherit, "mutation_rate": 0.0})
        candidate = breed([parent], np.random.default_rng(1), parameters.settings(), 0)[0]
        assert candidate.inherit is inherit and candidate.origins == (0, 1, 2, 3)
        outcome = train_candidate(candidate, data, SETTINGS, lambda: False, None)
        reference = fit(
            PARENT,
            data,
            SETTINGS,
            seed=candidate.seed,
            parent_weights=parent.weights if inherit else None,
            origins=candidate.origins if inherit else None,
        )
        assert outcome.network is not None and outcome.network.parent_id == parent.id
        for name, tensor in reference.weights.items():
            assert torch.equal(outcome.network.weights[name], tensor), (inherit, name)
    inherited = fit(
        PARENT, data, SETTINGS, seed=9, parent_weights=parent.weights, origins=(0, 1, 2, 3)
    )
    assert inherited.inherited == len(parent.weights)  # an unmutated child: every tensor
