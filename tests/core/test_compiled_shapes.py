"""Leaves, weight shapes and parameter counts read without building are those of the build.

:mod:`galapagos_nao.core.compiled_shapes` answers from summaries of each
built-in layer kept across calls; the reference is the whole network built on
``meta`` and read as before.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

from galapagos_nao.config.parameters import Parameters
from galapagos_nao.core import compiled_shapes, genome
from galapagos_nao.core.group_leaves import Unbatchable
from galapagos_nao.core.group_leaves import member_leaves as read_leaves
from galapagos_nao.core.network import Network, build, count_parameters
from galapagos_nao.core.record_checks import shapes_and_count
from galapagos_nao.example import conv_layers, seed_layers
from galapagos_nao.run.generation import breed

MNIST = (1, 28, 28)


def _built(layers: Any, input_shape: Sequence[int], n_classes: int) -> tuple[Any, ...]:
    """The reference: leaves (or the Unbatchable message), state shapes in order, count."""
    with torch.device("meta"):
        model = build(layers, input_shape, n_classes)
    try:
        leaves: Any = read_leaves(model, int(np.prod(input_shape)))
    except Unbatchable as error:
        leaves = str(error)
    shapes = [(name, tuple(t.shape)) for name, t in model.state_dict().items()]
    return leaves, shapes, count_parameters(model)


def _read(layers: Any, input_shape: Sequence[int], n_classes: int) -> tuple[Any, ...]:
    try:
        leaves: Any = compiled_shapes.member_leaves(layers, input_shape, n_classes)
    except Unbatchable as error:
        leaves = str(error)
    shapes, count = compiled_shapes.state_shapes(layers, input_shape, n_classes)
    return leaves, list(shapes.items()), count


def _children(parent: Sequence[Any], count: int, seed: int) -> list[Any]:
    parameters = Parameters()
    parameters.put("orchestration", {"generation_size": count})
    parameters.put("evolution", {"mutation_rate": 0.5})
    rng = np.random.default_rng(seed)
    return [c.layers for c in breed([Network(parent)], rng, parameters.settings(), 0)]


@pytest.mark.parametrize("parent", [seed_layers(), conv_layers()], ids=["mlp", "cnn"])
def test_mutated_children_read_the_leaves_shapes_and_count_their_build_gives(
    parent: Any,
) -> None:
    children = _children(parent, 300, seed=3)
    kinds = {name for layers in children for name, _ in layers}
    assert len(kinds) >= 6  # the children exercise most built-in types
    for layers in children:
        assert _read(layers, MNIST, 10) == _built(layers, MNIST, 10), layers


@pytest.mark.parametrize(
    ("layers", "input_shape", "n_classes"),
    [
        ([("dense", [64, "relu"])], (1, 28, 28), 10),
        ([("dense", [32, "tanh"]), ("dense", [64, "relu"])], (1, 28, 28), 10),
        ([("dense", [64, "relu"])], (20,), 3),
        (conv_layers(), (3, 32, 32), 10),
        (conv_layers(), (28, 28), 7),
        ([("conv2d", [4, 5, "relu"]), ("avg_pool", [3]), ("batch_norm", [])], (1, 28, 28), 10),
        ([("conv2d", [4, 1, "sigmoid"]), ("flatten", []), ("leaky_relu", [0.1])], MNIST, 10),
        ([], MNIST, 10),
    ],
)
def test_the_same_layer_reads_by_the_shape_reaching_it(
    layers: Any, input_shape: tuple[int, ...], n_classes: int
) -> None:
    # Run after other genomes put the same layers in the kept summaries with other shapes.
    compiled_shapes.state_shapes([("dense", [64, "relu"])], (5,), 2)
    compiled_shapes.member_leaves(conv_layers(), (1, 28, 28), 10)
    assert _read(layers, input_shape, n_classes) == _built(layers, input_shape, n_classes)


def test_a_user_layer_is_built_each_time_so_a_replaced_builder_is_read() -> None:
    calls = []

    def wide(units: int) -> Any:
        def build_wide(params: Sequence[Any], features: int) -> tuple[list[nn.Module], int]:
            calls.append(units)
            return [nn.Linear(features, units)], units

        return build_wide

    layers = [("dense", [16, "relu"]), ("test_compiled_wide", [])]
    try:
        genome.register_layer("test_compiled_wide", [], wide(24))
        first = _read(layers, MNIST, 10)
        assert first == _built(layers, MNIST, 10)
        genome.register_layer("test_compiled_wide", [], wide(40), replace=True)
        second = _read(layers, MNIST, 10)
        assert dict(first[1])["layer1.0.weight"] == (24, 16)
        assert dict(second[1])["layer1.0.weight"] == (40, 16)
        assert second == _built(layers, MNIST, 10)
        assert calls.count(40) >= 2  # each read built it again
    finally:
        genome.register_layer("test_compiled_wide", [], wide(24), replace=True)


def test_a_user_layer_without_a_batched_form_is_named_as_the_build_names_it() -> None:
    def noisy(params: Sequence[Any], features: int) -> tuple[list[nn.Module], int]:
        return [nn.Dropout(0.3)], features

    genome.register_layer("test_compiled_noisy", [], noisy, replace=True)
    layers = [("dense", [16, "relu"]), ("test_compiled_noisy", [])]
    with pytest.raises(Unbatchable, match=r"layer1\.0: Dropout has no batched form"):
        compiled_shapes.member_leaves(layers, MNIST, 10)


@pytest.mark.parametrize(
    ("layers", "input_shape", "n_classes"),
    [
        ([("dense", [64, "relu"]), ("conv2d", [8, 3, "relu"])], MNIST, 10),
        ([("max_pool", [2])] * 6, MNIST, 10),
        ([("dense", [0, "relu"])], MNIST, 10),
        ([("dense", [64, "relu"])], MNIST, 1),
        ([("dense", [64, "relu"])], (0, 28), 10),
        ([("no_such_type", [])], MNIST, 10),
        ([("dense", "64")], MNIST, 10),
        ([("dense", [64, "relu"], "extra")], MNIST, 10),
        ([("dense", [64, "relu"]), "dense"], MNIST, 10),
    ],
)
def test_an_impossible_genome_gets_the_error_the_build_gives(
    layers: Any, input_shape: tuple[int, ...], n_classes: int
) -> None:
    with pytest.raises((ValueError, KeyError)) as built:
        build(layers, input_shape, n_classes)
    for read in (compiled_shapes.member_leaves, compiled_shapes.state_shapes):
        with pytest.raises(type(built.value)) as found:
            read(layers, input_shape, n_classes)
        assert str(found.value) == str(built.value)


def test_a_records_check_counts_a_trillion_unit_layer_without_memory() -> None:
    net = Network([("dense", [10**6, "relu"]), ("dense", [10**6, "relu"])])
    shapes, count = shapes_and_count(net)
    assert shapes["layer1.0.weight"] == (10**6, 10**6)
    assert count == 784 * 10**6 + 10**6 + 10**12 + 10**6 + 10 * 10**6 + 10


def test_leaves_kept_for_a_genome_are_handed_out_as_a_fresh_list_each_time() -> None:
    first = compiled_shapes.member_leaves(seed_layers(), MNIST, 10)
    want = list(first)
    first.clear()
    assert compiled_shapes.member_leaves(seed_layers(), MNIST, 10) == want
    assert compiled_shapes.member_leaves(tuple(seed_layers()), [1, 28, 28], 10) == want
