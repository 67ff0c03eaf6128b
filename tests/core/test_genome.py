from __future__ import annotations

import pytest
import torch
from torch import nn

from galapagos_nao.core import genome
from galapagos_nao.example import seed_layers


def test_seed_layers_are_valid_and_normalised_to_a_new_list():
    layers = seed_layers()
    checked = genome.validate(layers)
    assert checked == layers
    assert checked is not layers
    assert genome.complexity(layers) == 8


def test_validate_accepts_tuple_params_and_returns_lists():
    assert genome.validate([("dense", (10, "tanh"))]) == [("dense", [10, "tanh"])]


def test_every_seed_activation_is_known():
    assert set(genome.ACTIVATIONS) == {"relu", "sigmoid", "tanh", "softrelu", "none"}


@pytest.mark.parametrize(
    ("layers", "fragments"),
    [
        ([("conv", [3])], ["layers[0]", "unknown layer type", "'conv'"]),
        (
            [("dense", [64, "relu"]), ("dense", [64])],
            ["layers[1]", "'dense'", "expects 2 params", "[64]"],
        ),
        ([("dense", [0, "relu"])], ["layers[0]", "units", ">= 1", "got 0"]),
        ([("dense", [6.5, "relu"])], ["layers[0]", "units", "6.5"]),
        ([("dropout", [1.0])], ["layers[0]", "'dropout'", "rate", "[0, 1)", "1.0"]),
        ([("dropout", [-0.1])], ["layers[0]", "rate", "-0.1"]),
        ([("activation", ["swish"])], ["layers[0]", "activation", "'swish'"]),
        (
            [("batch_norm", [])] * 2 + [("leaky_relu", 0.2)],
            ["layers[2]", "params must be a list", "0.2"],
        ),
        ([("dense", "64")], ["layers[0]", "params must be a list", "'64'"]),
        ([("dense",)], ["layers[0]", "(type, params) pair"]),
        ("dense", ["layers must be a list"]),
        ([("leaky_relu", [float("nan")])], ["layers[0]", "alpha", "nan"]),
    ],
)
def test_validate_names_index_type_and_value(layers, fragments):
    with pytest.raises(ValueError) as caught:
        genome.validate(layers)
    for fragment in fragments:
        assert fragment in str(caught.value)


def test_validate_does_not_modify_its_input():
    layers = [("dense", [64, "relu"]), ("dropout", [2.0])]
    snapshot = [(t, list(p)) for t, p in layers]
    with pytest.raises(ValueError):
        genome.validate(layers)
    assert layers == snapshot


def test_register_layer_extends_genomes_and_the_compiler():
    name = "test_scale"

    def build_scale(params, in_features):
        return [nn.Linear(in_features, in_features, bias=False)], in_features

    registered = genome.register_layer(name, [genome.UNITS], build_scale)
    assert genome.layer_type(name) is registered
    assert genome.validate([(name, [3])]) == [(name, [3])]
    with pytest.raises(ValueError, match="units"):
        genome.validate([(name, [0])])
    modules, shape = genome.build_layer((name, [3]), (5,))
    assert shape == (5,) and isinstance(modules[0], nn.Linear)
    with pytest.raises(ValueError, match="already registered"):
        genome.register_layer(name, [], build_scale)


@pytest.mark.parametrize(
    ("args", "error"),
    [
        (("", [], lambda p, f: ([], f)), ValueError),
        (("x_bad", [], 3), TypeError),
        (("x_bad2", ["units"], print), TypeError),
    ],
)
def test_register_layer_rejects_bad_arguments_and_registers_nothing(args, error):
    with pytest.raises(error):
        genome.register_layer(*args)
    assert args[0] not in genome.layer_types()


def test_seeded_dropout_is_reproducible_with_a_generator_and_inactive_in_eval():
    layer = genome.SeededDropout(0.5)
    x = torch.ones(4, 100)
    layer.generator = torch.Generator().manual_seed(3)
    first = layer(x)
    layer.generator = torch.Generator().manual_seed(3)
    assert torch.equal(first, layer(x))
    assert set(first.unique().tolist()) == {0.0, 2.0}
    layer.eval()
    assert torch.equal(layer(x), x)


def _scale_layer(params, in_features):
    return [nn.Linear(in_features, in_features, bias=False)], in_features


CELL = """
def scale(params, in_features):
    return [nn.Linear(in_features, in_features, bias=False)], in_features

genome.register_layer("test_rerun_cell", [genome.UNITS], scale)
"""


def run_cell() -> dict:
    namespace = {"nn": nn, "genome": genome, "__name__": "notebook"}
    exec(compile(CELL, "<cell>", "exec"), namespace)
    return namespace


def test_registering_the_same_layer_type_again_is_allowed_as_a_rerun_cell_does():
    first = run_cell()
    registered = genome.layer_type("test_rerun_cell")
    second = run_cell()  # a re-run cell: a new function object, the same code
    assert second["scale"] is not first["scale"]
    assert genome.layer_type("test_rerun_cell") is registered


def test_a_different_definition_needs_replace_true():
    name = "test_replaced_layer"
    genome.register_layer(name, [genome.UNITS], _scale_layer)

    def other(params, in_features):
        return [nn.Identity()], in_features

    with pytest.raises(ValueError, match="another definition; pass replace=True"):
        genome.register_layer(name, [], other)
    assert genome.layer_type(name).build is _scale_layer  # unchanged
    replaced = genome.register_layer(name, [], other, replace=True)
    assert genome.layer_type(name) is replaced and replaced.params == ()
    with pytest.raises(TypeError, match="replace must be a bool"):
        genome.register_layer(name, [], other, replace="yes")
