"""Grouped training of convolutional genomes: a conv member in a group equals it alone.

Real networks on real MNIST (a 600/300 sample, one epoch, few channels), trained
with :func:`fit_group` and with :func:`fit` (a group of one) for each member,
same seed. On the CPU a member of an exact group (every convolution slot's
members share their channels) computes the same bits as alone; a loose group,
whose channels are padded, and the grouped-convolution form agree within float
tolerance. The stacked path is also checked against the plain ``nn.Sequential``
of torch modules, which shares its random streams.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest
import torch

from galapagos_nao.config.settings import TrainingSettings
from galapagos_nao.core import counter_rng, datasets, genome, stacked_conv
from galapagos_nao.core.datasets import Task
from galapagos_nao.core.device_data import DeviceData, DeviceDataCache
from galapagos_nao.core.group_forming import plan_group
from galapagos_nao.core.group_plan import group_macs, is_exact
from galapagos_nao.core.grouped import (
    GroupMember,
    _inherit,
    fit_group,
    member_plan,
    partition,
    single_thread_on_cpu,
)
from galapagos_nao.core.inheritance import inherit_weights
from galapagos_nao.core.network import build
from galapagos_nao.core.stacked import StackedModel
from galapagos_nao.core.training import (
    FitResult,
    NonFiniteLoss,
    _fit_module,
    counter_init,
    fit,
    make_optimizer,
)

SETTINGS = TrainingSettings(device="cpu").train_settings()
SHAPE = (1, 28, 28)
#: The issue's bound on a member's val_acc against alone.
VAL_ACC_BOUND = 0.001


@pytest.fixture(scope="module")
def data(small_mnist: Task) -> DeviceData:
    task = datasets.subset(small_mnist, 600, 300, seed=0)
    return DeviceDataCache().get(task, torch.device("cpu"), 0.1)


def conv_net(channels: int = 6, pool: str = "max_pool", **changes: Any) -> list[Any]:
    """A small CNN; ``changes`` replace its layers by position (None removes one)."""
    layers: dict[int, Any] = {
        0: ("conv2d", [channels, 3, "relu"]),
        1: (pool, [2]),
        2: ("conv2d", [8, 5, "tanh"]),
        3: ("batch_norm", []),
        4: ("dropout", [0.3]),
        5: (pool, [2]),
        6: ("dense", [24, "relu"]),
    }
    for position, layer in changes.items():
        layers[int(position.removeprefix("at"))] = layer
    return [layer for _, layer in sorted(layers.items()) if layer is not None]


def plan_of(*genomes: Sequence[Any]) -> Any:
    return plan_group([member_plan(g, SHAPE, 10) for g in genomes])


def compare(grouped: FitResult | Exception, alone: FitResult, *, exact: bool) -> None:
    """The same bits when ``exact``; else float tolerance and val_acc within the bound."""
    assert isinstance(grouped, FitResult), grouped
    assert list(grouped.weights) == list(alone.weights)
    for name, tensor in alone.weights.items():
        if exact:
            assert torch.equal(grouped.weights[name], tensor), name
        else:
            torch.testing.assert_close(grouped.weights[name], tensor, atol=2e-4, rtol=1e-3)
    assert abs(grouped.val_acc - alone.val_acc) <= VAL_ACC_BOUND
    if exact:
        assert (grouped.loss, grouped.test_acc) == (alone.loss, alone.test_acc)
    assert (grouped.n_params, grouped.inherited) == (alone.n_params, alone.inherited)


def trains_as_alone(members: Sequence[GroupMember], data: DeviceData, *, exact: bool) -> list[Any]:
    results = fit_group(members, data, SETTINGS)
    for member, result in zip(members, results, strict=True):
        alone = fit(
            member.layers,
            data,
            SETTINGS,
            seed=member.seed,
            parent_weights=member.parent_weights,
            origins=member.origins,
        )
        compare(result, alone, exact=exact)
    return results


@pytest.mark.parametrize("pool", ["max_pool", "avg_pool"])
def test_conv_and_pool_members_train_in_a_group_as_alone(pool, data):
    members = [GroupMember(conv_net(pool=pool), seed=seed) for seed in (3, 4, 5)]
    assert is_exact(plan_of(*(m.layers for m in members)), 784)
    trains_as_alone(members, data, exact=True)


def test_a_heterogeneous_exact_conv_group_trains_each_member_as_alone(data):
    variants = [
        conv_net(),
        conv_net(at2=("conv2d", [8, 5, "softrelu"]), at4=("dropout", [0.1])),  # other kinds, rate
        conv_net(at4=None, at6=("dense", [30, "sigmoid"])),  # no dropout; 30 units in 17-32
        # one convolution deeper (6 -> 6 channels: the others pass it through) and a leaky ReLU
        [("conv2d", [6, 3, "relu"]), ("conv2d", [6, 3, "none"]), ("leaky_relu", [0.2])]
        + conv_net()[1:],
    ]
    plan = plan_of(*variants)
    assert is_exact(plan, 784)
    assert any(None in column for column in plan.slots), "some members pass a slot through"
    trains_as_alone([GroupMember(v, seed=i) for i, v in enumerate(variants)], data, exact=True)


def test_members_of_different_channels_train_as_alone_in_a_loose_group(data):
    variants = [conv_net(6), conv_net(3, at2=("conv2d", [12, 5, "softrelu"])), conv_net(1)]
    assert not is_exact(plan_of(*variants), 784), "their channels are padded"
    trains_as_alone([GroupMember(v, seed=i) for i, v in enumerate(variants)], data, exact=False)


def test_the_grouped_convolution_form_trains_as_alone_within_tolerance(monkeypatch, data):
    monkeypatch.setattr(stacked_conv, "GROUPED_ON_CPU", True)  # the form other devices run
    variants = [conv_net(6), conv_net(4)]
    results = fit_group([GroupMember(v, seed=i) for i, v in enumerate(variants)], data, SETTINGS)
    monkeypatch.setattr(stacked_conv, "GROUPED_ON_CPU", False)
    for seed, (layers, result) in enumerate(zip(variants, results, strict=True)):
        compare(result, fit(layers, data, SETTINGS, seed=seed), exact=False)


def test_padded_channels_hold_exact_zeros_through_training(data):
    # 2 and 5 channels padded to 5; softplus maps 0 to 0.69, so its padded units are masked
    variants = [conv_net(2, at0=("conv2d", [2, 3, "softrelu"])), conv_net(5)]
    plan = plan_of(*variants)
    model = StackedModel(plan, 784, counter_rng.member_keys([1, 2]), torch.device("cpu"))
    optimizer = make_optimizer(SETTINGS, model)
    x = data.x_train[:64].reshape(64, -1).expand(2, -1, -1)
    with single_thread_on_cpu(data.device):
        for _ in range(3):
            optimizer.zero_grad()
            logits = model(x).reshape(128, -1)
            torch.nn.functional.cross_entropy(logits, data.y_train[:64].repeat(2)).backward()
            optimizer.step()
    first, second = model.slots[1], model.slots[4]  # the two convolutions
    assert (first.kind, second.kind) == ("conv", "conv")
    weight = getattr(model, f"{first.key}_weight")
    assert weight.shape[1] == 5
    # member 0's output channels 2..4, their biases, and the next kernels reading them
    assert torch.all(weight[0, 2:] == 0) and torch.all(weight.grad[0, 2:] == 0)
    assert torch.all(getattr(model, f"{first.key}_bias")[0, 2:] == 0)
    after = stacked_conv.conv_weight(getattr(model, f"{second.key}_weight"), 5, 5)
    assert torch.all(after[0, :, 2:] == 0)
    assert torch.any(after[0, :, :2] != 0) and torch.any(after[1, :, 2:] != 0)
    grad = stacked_conv.conv_weight(getattr(model, f"{second.key}_weight").grad, 5, 5)
    assert torch.all(grad[0, :, 2:] == 0), "no padded channel reached the next convolution"


def test_the_stacked_path_computes_what_the_torch_modules_compute(data):
    layers = conv_net(pool="avg_pool")
    module = build(layers, SHAPE, 10)
    counter_init(module, 11)
    stacked = StackedModel(plan_of(layers), 784, counter_rng.member_keys([11]), torch.device("cpu"))
    start = stacked.member_state(0)
    assert start.keys() == module.state_dict().keys()
    for name, tensor in module.state_dict().items():
        assert torch.equal(start[name], tensor), f"{name}: the same initial values alone"
    ours = fit(layers, data, SETTINGS, seed=11)
    with single_thread_on_cpu(data.device):  # as fit trains it
        torch_modules = _fit_module(GroupMember(layers, 11), data, SETTINGS, lambda: False, None)
    compare(ours, torch_modules, exact=False)


def test_a_grouped_conv_member_inherits_its_parents_kernels_as_alone(data):
    parent = fit(conv_net(6), data, SETTINGS, seed=9)
    child = conv_net(8, at4=None)  # 8 channels in the first convolution, no dropout
    origins = (0, 1, 2, 3, 5, 6)
    # the stacked member starts from what inherit_weights gives its network alone
    member = GroupMember(child, seed=1, parent_weights=parent.weights, origins=origins)
    stacked = StackedModel(plan_of(child), 784, counter_rng.member_keys([1]), torch.device("cpu"))
    copied = _inherit(stacked, 0, member)
    module = build(child, SHAPE, 10)
    counter_init(module, 1)
    assert copied == inherit_weights(module, parent.weights, origins) > 0
    for name, tensor in module.state_dict().items():
        assert torch.equal(stacked.member_state(0)[name], tensor), name
    kernels = stacked.member_state(0)["layer0.0.weight"]
    assert torch.equal(kernels[:6], parent.weights["layer0.0.weight"])
    members = [member, GroupMember(child, seed=2, parent_weights=parent.weights, origins=origins)]
    results = trains_as_alone([*members, GroupMember(child, seed=3)], data, exact=True)
    assert [r.inherited > 0 for r in results] == [True, True, False]


def test_a_non_finite_conv_member_fails_alone_and_spoils_nothing(data):
    layers = conv_net(at2=("conv2d", [8, 5, "relu"]))  # unbounded: 1e38 kernels overflow
    trained = fit(layers, data, SETTINGS, seed=9).weights
    poisoned = {**trained, "layer2.0.weight": torch.full_like(trained["layer2.0.weight"], 1e38)}
    origins = tuple(range(len(layers)))
    with pytest.raises(NonFiniteLoss):
        fit(layers, data, SETTINGS, seed=2, parent_weights=poisoned, origins=origins)
    good = [GroupMember(layers, seed=1), GroupMember(layers, seed=3)]
    bad = GroupMember(layers, seed=2, parent_weights=poisoned, origins=origins)
    results = fit_group([good[0], bad, good[1]], data, SETTINGS)
    assert isinstance(results[1], NonFiniteLoss)
    for member, result in zip(good, [results[0], results[2]], strict=True):
        compare(result, fit(member.layers, data, SETTINGS, seed=member.seed), exact=True)


def test_partition_groups_conv_members_only_with_the_same_spatial_structure():
    genomes = {
        "a": conv_net(6),
        "b": conv_net(6, at6=("dense", [20, "tanh"])),  # 20 units: the same bucket as 24
        "channels": conv_net(4),
        "pool size": conv_net(6, at1=("max_pool", [3])),
        "pool kind": conv_net(6, at1=("avg_pool", [2])),
        "kernel": conv_net(6, at0=("conv2d", [6, 5, "relu"])),
        "no pool": conv_net(6, at1=None),
        "flat": [("dense", [24, "relu"])],
    }
    names = list(genomes)
    plans = [member_plan(g, SHAPE, 10) for g in genomes.values()]
    exact = partition(plans, 8, 784)
    assert sorted(names[i] for g in exact if 0 in g for i in g) == ["a", "b"]
    loose = partition(plans, 8, 784, exact=False)
    together = {names[i] for g in loose if 0 in g for i in g}
    assert {"a", "b", "channels"} <= together, "channels padded in a loose group"
    assert not together & {"pool size", "pool kind", "no pool", "flat"}, "pools line up"
    assert sum(map(len, loose)) == len(names)
    for group in loose:
        plan_group([plans[i] for i in group])  # every group lines up


def test_group_macs_count_convolutions_as_the_flops_measure_does():
    wide, narrow = [("conv2d", [8, 3, "relu"])], [("conv2d", [4, 3, "relu"])]
    real, padded = group_macs(plan_of(wide, narrow), 784)
    assert real == genome.macs(wide, SHAPE, 10) + genome.macs(narrow, SHAPE, 10)
    # both members at 8 channels, and the head's 10 logits padded to 16 lanes
    assert padded == 2 * (8 * 9 * 28 * 28 + 8 * 28 * 28 * 16)
