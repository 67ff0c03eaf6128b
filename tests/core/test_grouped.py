"""Equivalence of grouped training: a member trained in a group equals it trained alone.

Every test trains real networks on real MNIST (a 600/300 sample, one epoch,
tiny widths) twice: with :func:`fit_group` and with :func:`fit` for each
member, same seed. Weights must agree within float tolerance (the batched
matmuls sum in another order), metrics too.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest
import torch
from torch import nn

from galapagos_nao.config.settings import TrainingSettings
from galapagos_nao.core import datasets, genome
from galapagos_nao.core.datasets import Task
from galapagos_nao.core.device_data import DeviceData, DeviceDataCache
from galapagos_nao.core.grouped import (
    GroupMember,
    Unbatchable,
    fit_group,
    group_signature,
    partition,
)
from galapagos_nao.core.training import (
    CandidateStopped,
    CandidateTimeout,
    FitResult,
    NonFiniteLoss,
    TrainSettings,
    fit,
)

#: Weight tolerance: float32 sums in a different order, over one epoch of Adam.
WEIGHT_ATOL = 2e-4
#: Batch-norm running statistics sum the batch means of 784-input dot products, so
#: the weights' last-bit differences reach them amplified (seen: 1.5e-3 on 4.1).
RUNNING_RTOL = 1e-3
#: Accuracies are counts over 270-300 samples: allow one sample to flip on a near tie.
ACC_ABS = 1 / 250

SETTINGS = TrainingSettings(device="cpu").train_settings()


@pytest.fixture(scope="module")
def data(small_mnist: Task) -> DeviceData:
    task = datasets.subset(small_mnist, 600, 300, seed=0)
    return DeviceDataCache().get(task, torch.device("cpu"), 0.1)


def assert_same(grouped: FitResult | Exception, alone: FitResult) -> None:
    assert isinstance(grouped, FitResult), grouped
    assert sorted(grouped.weights) == sorted(alone.weights)
    for name, tensor in alone.weights.items():
        assert grouped.weights[name].shape == tensor.shape, name
        assert grouped.weights[name].dtype == tensor.dtype, name
        rtol = RUNNING_RTOL if "running_" in name else 1e-4
        torch.testing.assert_close(
            grouped.weights[name],
            tensor,
            atol=WEIGHT_ATOL,
            rtol=rtol,
            msg=lambda m, name=name: f"{name}: {m}",
        )
    assert grouped.loss == pytest.approx(alone.loss, rel=1e-5)
    assert grouped.train_acc == pytest.approx(alone.train_acc, abs=ACC_ABS)
    assert grouped.val_acc == pytest.approx(alone.val_acc, abs=ACC_ABS)
    assert grouped.test_acc == pytest.approx(alone.test_acc, abs=ACC_ABS)
    assert (grouped.n_params, grouped.inherited) == (alone.n_params, alone.inherited)


def check_group(
    members: Sequence[GroupMember], data: DeviceData, settings: TrainSettings = SETTINGS
) -> list[Any]:
    results = fit_group(members, data, settings)
    assert len(results) == len(members)
    for member, result in zip(members, results, strict=True):
        alone = fit(
            member.layers,
            data,
            settings,
            seed=member.seed,
            parent_weights=member.parent_weights,
            origins=member.origins,
        )
        assert_same(result, alone)
    return results


#: One genome per built-in layer type (and every activation), each with what varies per member.
LAYER_CASES: dict[str, list[list[Any]]] = {
    "dense": [[("dense", [12, name])] for name in sorted(genome.ACTIVATIONS)],
    "activation": [
        [("dense", [12, "none"]), ("activation", [name])] for name in sorted(genome.ACTIVATIONS)
    ],
    "dropout": [[("dense", [12, "relu"]), ("dropout", [rate])] for rate in (0.5, 0.0, 0.8)],
    "batch_norm": [[("dense", [12, "tanh"]), ("batch_norm", []), ("dense", [10, "relu"])]],
    "leaky_relu": [[("dense", [12, "none"]), ("leaky_relu", [alpha])] for alpha in (0.2, 0.01)],
    "flatten": [[("flatten", []), ("dense", [12, "relu"]), ("flatten", [])]],
}


@pytest.mark.parametrize("layer_type", sorted(LAYER_CASES))
def test_each_built_in_layer_type_trains_in_a_group_as_alone(layer_type, data):
    for layers in LAYER_CASES[layer_type]:
        # Three seeds: different inits, data orders and dropout masks inside one group.
        members = [GroupMember(layers, seed=seed) for seed in (3, 4, 5)]
        check_group(members, data)


def test_members_may_differ_in_dropout_rate_and_leaky_slope(data):
    layers = [("dense", [12, "relu"]), ("dropout", [0.5]), ("leaky_relu", [0.2])]
    variants = [layers, [layers[0], ("dropout", [0.1]), ("leaky_relu", [0.7])]]
    check_group([GroupMember(v, seed=i) for i, v in enumerate(variants)], data)


@pytest.mark.parametrize("optimizer", ["adam", "adamw", "sgd"])
def test_the_seed_genome_matches_with_every_optimizer(optimizer, data):
    layers = [
        ("dense", [16, "relu"]),
        ("batch_norm", []),
        ("activation", ["relu"]),
        ("dropout", [0.5]),
        ("dense", [16, "relu"]),
        ("flatten", []),
        ("leaky_relu", [0.2]),
        ("dense", [16, "none"]),
    ]
    settings = TrainingSettings(device="cpu", optimizer=optimizer, epochs=2).train_settings()
    check_group([GroupMember(layers, seed=s) for s in (1, 2)], data, settings)


def test_padded_members_compute_what_the_unpadded_network_computes(data):
    def layers(first: int, second: int) -> list[Any]:
        return [
            ("dense", [first, "softrelu"]),  # softplus(0) != 0: padded units must be masked
            ("batch_norm", []),
            ("dropout", [0.3]),
            ("dense", [second, "sigmoid"]),
        ]

    variants = [layers(20, 9), layers(32, 16), layers(17, 1)]
    keys = {group_signature(v, data.input_shape, data.n_classes) for v in variants}
    assert len(keys) == 1, "widths in one bucket of 16 share a signature"
    assert group_signature(layers(33, 9), data.input_shape, data.n_classes) not in keys
    check_group([GroupMember(v, seed=i) for i, v in enumerate(variants)], data)


def test_members_inherit_their_parents_weights_as_alone(data):
    parent_layers = [("dense", [12, "relu"]), ("batch_norm", []), ("dense", [10, "tanh"])]
    parent = fit(parent_layers, data, SETTINGS, seed=9)
    child = [
        ("dense", [12, "relu"]),
        ("batch_norm", []),
        ("dropout", [0.2]),
        ("dense", [10, "tanh"]),
    ]
    members = [
        GroupMember(child, seed=1, parent_weights=parent.weights, origins=(0, 1, None, 2)),
        GroupMember(child, seed=2, parent_weights=parent.weights, origins=(0, None, None, 2)),
        GroupMember(child, seed=3),
    ]
    results = check_group(members, data)
    assert [r.inherited for r in results] == [11, 6, 0]


def test_a_non_finite_member_fails_alone_and_spoils_nothing(data):
    layers = [("dense", [12, "relu"]), ("batch_norm", []), ("dense", [10, "relu"])]
    poisoned = fit(layers, data, SETTINGS, seed=9).weights
    poisoned = {**poisoned, "layer0.0.weight": torch.full_like(poisoned["layer0.0.weight"], 1e38)}
    bad = GroupMember(layers, seed=2, parent_weights=poisoned, origins=(0, 1, 2))
    with pytest.raises(NonFiniteLoss):
        fit(bad.layers, data, SETTINGS, seed=2, parent_weights=poisoned, origins=bad.origins)
    good = [GroupMember(layers, seed=1), GroupMember(layers, seed=3)]
    results = fit_group([good[0], bad, good[1]], data, SETTINGS)
    assert isinstance(results[1], NonFiniteLoss)
    for member, result in zip(good, [results[0], results[2]], strict=True):
        assert_same(result, fit(member.layers, data, SETTINGS, seed=member.seed))


def test_a_stop_or_a_timeout_ends_every_member_individually(data):
    members = [GroupMember([("dense", [8, "relu"])], seed=s) for s in (1, 2)]
    stopped = fit_group(members, data, SETTINGS, should_stop=lambda: True)
    assert all(isinstance(r, CandidateStopped) for r in stopped)
    late = fit_group(members, data, SETTINGS, deadline=0.0)
    assert all(isinstance(r, CandidateTimeout) for r in late)


class Scale(nn.Module):
    """A user module without a batched form."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return 2 * x


def test_a_user_layer_without_a_batched_form_is_unbatchable(monkeypatch, data):
    monkeypatch.setattr(genome, "_registry", dict(genome.layer_types()))  # undone after the test
    genome.register_layer("test_grouped_scale", [], lambda params, n: ([Scale()], n))
    layers = [("dense", [8, "relu"]), ("test_grouped_scale", [])]
    with pytest.raises(Unbatchable, match="layer1.0: Scale has no batched form"):
        group_signature(layers, data.input_shape, data.n_classes)
    with pytest.raises(Unbatchable, match="Scale"):
        fit_group([GroupMember(layers, seed=1)], data, SETTINGS)


def test_a_user_layer_built_of_batchable_modules_is_stacked(monkeypatch, data):
    monkeypatch.setattr(genome, "_registry", dict(genome.layer_types()))
    genome.register_layer(
        "test_grouped_bottleneck",
        [genome.UNITS],
        lambda params, n: ([nn.Linear(n, params[0]), nn.Tanh()], params[0]),
    )
    layers = [("dense", [12, "relu"]), ("test_grouped_bottleneck", [6])]
    check_group([GroupMember(layers, seed=s) for s in (1, 2)], data)


def test_partition_splits_evenly_by_signature_and_isolates_the_unbatchable():
    keys = ["a"] * 9 + [None, "b", None]
    groups = partition(keys, 8)
    assert sorted(map(len, groups)) == [1, 1, 1, 4, 5]
    assert sorted(i for g in groups for i in g) == list(range(12))
    assert [9] in groups and [11] in groups


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_gpu_group_matches_fit_alone_on_the_gpu(small_mnist):
    """On CUDA each member's dropout masks come from its own device generator, as in fit."""
    task = datasets.subset(small_mnist, 600, 300, seed=0)
    cuda = DeviceDataCache().get(task, torch.device("cuda"), 0.1)
    settings = TrainingSettings(device="cuda").train_settings()
    layers = [
        ("dense", [20, "relu"]),
        ("batch_norm", []),
        ("dropout", [0.5]),
        ("dense", [9, "tanh"]),
    ]
    variants = [layers, [("dense", [31, "relu"]), *layers[1:]]]
    check_group([GroupMember(v, seed=i) for i, v in enumerate(variants)], cuda, settings)
