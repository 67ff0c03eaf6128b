"""Equivalence of grouped training: a member trained in a group equals it trained alone.

Every test trains real networks on real MNIST (a 600/300 sample, one epoch,
tiny widths) twice: with :func:`fit_group` and with :func:`fit` for each
member, same seed. On the CPU, a member of an exact group (no one padded past
its own canonical widths) computes the same bits as alone: weights and metrics
must be equal. Loose groups and the GPU agree within float tolerance.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest
import torch
from torch import nn

from galapagos_nao.config.settings import TrainingSettings
from galapagos_nao.core import counter_rng, datasets, genome, stacked_ops
from galapagos_nao.core.datasets import Task
from galapagos_nao.core.device_data import DeviceData, DeviceDataCache
from galapagos_nao.core.group_forming import plan_group
from galapagos_nao.core.group_plan import is_exact, padded_share
from galapagos_nao.core.grouped import (
    GroupMember,
    Unbatchable,
    fit_group,
    member_plan,
    partition,
)
from galapagos_nao.core.network import build
from galapagos_nao.core.stacked import StackedModel
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


@pytest.fixture(params=["addmm per member", "bmm"])
def product_form(request, monkeypatch) -> str:
    """The CPU's dense products (one addmm per member), or the batched form other devices run."""
    monkeypatch.setattr(stacked_ops, "BMM_ON_CPU", request.param == "bmm")
    return str(request.param)


@pytest.fixture(scope="module")
def data(small_mnist: Task) -> DeviceData:
    task = datasets.subset(small_mnist, 600, 300, seed=0)
    return DeviceDataCache().get(task, torch.device("cpu"), 0.1)


def assert_same(grouped: FitResult | Exception, alone: FitResult, *, exact: bool = True) -> None:
    """Equal bits when ``exact``; else float tolerance (sums in another order)."""
    assert isinstance(grouped, FitResult), grouped
    assert list(grouped.weights) == list(alone.weights)
    for name, tensor in alone.weights.items():
        assert grouped.weights[name].shape == tensor.shape, name
        assert grouped.weights[name].dtype == tensor.dtype, name
        if exact:
            assert torch.equal(grouped.weights[name], tensor), name
            continue
        rtol = RUNNING_RTOL if "running_" in name else 1e-4
        torch.testing.assert_close(
            grouped.weights[name],
            tensor,
            atol=WEIGHT_ATOL,
            rtol=rtol,
            msg=lambda m, name=name: f"{name}: {m}",
        )
    if exact:
        assert (grouped.loss, grouped.train_acc) == (alone.loss, alone.train_acc)
        assert (grouped.val_acc, grouped.test_acc) == (alone.val_acc, alone.test_acc)
    else:
        assert grouped.loss == pytest.approx(alone.loss, rel=1e-5)
        assert grouped.train_acc == pytest.approx(alone.train_acc, abs=ACC_ABS)
        assert grouped.val_acc == pytest.approx(alone.val_acc, abs=ACC_ABS)
        assert grouped.test_acc == pytest.approx(alone.test_acc, abs=ACC_ABS)
    assert (grouped.n_params, grouped.inherited) == (alone.n_params, alone.inherited)


def check_group(
    members: Sequence[GroupMember],
    data: DeviceData,
    settings: TrainSettings = SETTINGS,
    *,
    exact: bool | None = None,
) -> list[Any]:
    """Trains ``members`` as a group and each alone; exact unless the plan pads past a width."""
    if exact is None:
        plans = [member_plan(m.layers, data.input_shape, data.n_classes) for m in members]
        exact = data.device.type == "cpu" and is_exact(plan_group(plans), 784)
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
        assert_same(result, alone, exact=exact)
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
def test_the_seed_genome_matches_with_every_optimizer(optimizer, product_form, data):
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

    within = [layers(20, 9), layers(32, 16), layers(17, 1)]  # widths 17-32 and 1-16
    plans = [member_plan(v, data.input_shape, data.n_classes) for v in within]
    assert is_exact(plan_group(plans), 784), "widths in one bucket of 16 pad to the same shapes"
    check_group([GroupMember(v, seed=i) for i, v in enumerate(within)], data)
    across = [layers(20, 9), layers(33, 40), layers(8, 1)]  # padded past their own widths
    plans = [member_plan(v, data.input_shape, data.n_classes) for v in across]
    assert not is_exact(plan_group(plans), 784)
    check_group([GroupMember(v, seed=i) for i, v in enumerate(across)], data, exact=False)


def test_members_of_different_depths_and_activation_kinds_train_as_alone(product_form, data):
    base = [("dense", [16, "relu"]), ("dropout", [0.5]), ("dense", [16, "tanh"])]
    variants = [
        base,
        [("dense", [16, "sigmoid"]), ("leaky_relu", [0.3]), *base[1:]],  # one more activation
        [base[0], base[2]],  # no dropout
        [*base, ("batch_norm", []), ("dense", [16, "softrelu"])],  # two layers deeper
        [("dense", [12, "softrelu"]), ("dropout", [0.1]), ("dense", [14, "none"])],
    ]
    plans = [member_plan(v, data.input_shape, data.n_classes) for v in variants]
    plan = plan_group(plans)
    assert is_exact(plan, 784)
    assert any(None in column for column in plan.slots), "some members pass a slot through"
    check_group([GroupMember(v, seed=i) for i, v in enumerate(variants)], data)


@pytest.mark.parametrize("size", [1, 3])
def test_a_member_on_the_cpu_computes_nn_linears_bits(size, data):
    layers = [("dense", [32, "relu"]), ("dense", [16, "tanh"])]
    plan = plan_group([member_plan(layers, data.input_shape, data.n_classes)] * size)
    keys = counter_rng.member_keys(range(5, 5 + size))
    stacked = StackedModel(plan, 784, keys, torch.device("cpu"))
    network = build(layers, data.input_shape, data.n_classes)
    network.load_state_dict(stacked.member_state(0))
    x = data.x_train[:50].reshape(50, -1)
    stacked(x.expand(size, -1, -1)).sum().backward()
    network(x).sum().backward()
    linears = [m for m in network.modules() if isinstance(m, nn.Linear)]
    slots = [slot for slot in stacked.slots if slot.kind in ("linear", "head")]
    assert len(linears) == len(slots) == 3
    for module, slot in zip(linears, slots, strict=True):
        out_features, in_features = module.weight.shape
        weight = getattr(stacked, f"{slot.key}_weight")
        bias = getattr(stacked, f"{slot.key}_bias")
        # alone, stored as nn.Linear stores it; in a group, (P, out, in) and (P, out)
        assert weight.dim() == (2 if size == 1 else 3)
        weight_grad = weight.grad if size == 1 else weight.grad[0]
        bias_grad = bias.grad if size == 1 else bias.grad[0]
        assert torch.equal(weight_grad[:out_features, :in_features], module.weight.grad)
        assert torch.equal(bias_grad[:out_features], module.bias.grad)


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
        member_plan(layers, data.input_shape, data.n_classes)
    with pytest.raises(Unbatchable, match="Scale"):
        fit_group([GroupMember(layers, seed=1)], data, SETTINGS)
    # alone it trains as its own nn.Sequential, with the same counter streams
    first, again = (fit(layers, data, SETTINGS, seed=1) for _ in range(2))
    assert first.weights.keys() == again.weights.keys()
    assert all(torch.equal(first.weights[k], again.weights[k]) for k in first.weights)


def test_a_user_layer_built_of_batchable_modules_is_stacked(monkeypatch, data):
    monkeypatch.setattr(genome, "_registry", dict(genome.layer_types()))
    genome.register_layer(
        "test_grouped_bottleneck",
        [genome.UNITS],
        lambda params, n: ([nn.Linear(n, params[0]), nn.Tanh()], params[0]),
    )
    layers = [("dense", [12, "relu"]), ("test_grouped_bottleneck", [6])]
    check_group([GroupMember(layers, seed=s) for s in (1, 2)], data)


def test_partition_keeps_exact_groups_exact_and_isolates_the_unbatchable():
    def plan(*widths: int) -> list[Any]:
        return member_plan([("dense", [w, "relu"]) for w in widths], (1, 28, 28), 10)

    members = [plan(64), plan(60), plan(70), plan(64, 64), None, plan(40), plan(64)]
    groups = partition(members, 8, 784)
    assert sorted(i for g in groups for i in g) == list(range(7))
    assert [4] in groups
    for group in groups:
        if None not in [members[i] for i in group]:
            assert is_exact(plan_group([members[i] for i in group]), 784)
    together = next(g for g in groups if 0 in g)
    assert {1, 3, 6} <= set(together), "widths 60/64 and a pass-through layer share a group"
    assert 2 not in together and 5 not in together, "70 and 40 would pad past their buckets"
    loose = partition(members, 8, 784, exact=False)
    assert len(loose) < len(groups)
    for group in loose:
        if len(group) > 1:
            assert padded_share(plan_group([members[i] for i in group]), 784) <= 0.5
    assert max(map(len, partition(members, 2, 784, exact=False))) <= 2


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
