from __future__ import annotations

import pytest

import galapagos_nao as gn
from galapagos_nao.config.parameters import Parameters


@pytest.fixture
def params() -> Parameters:
    return Parameters()


def test_defaults_are_the_seeds(params):
    assert params.get(gn.Selection, "complexity_levels") == 2
    assert params.get(gn.orchestration, "generation_size") == 4
    assert params.get(gn.orchestration, "timeout") == 300
    assert params.get(gn.evolution, "mutation_rate") == 0.25
    assert params.get(gn.evolution, "std_dev") == 2
    assert params.get("evolution", "layer_types") == {
        "dense": [64, "none"],
        "activation": ["relu"],
        "dropout": [0.5],
        "leaky_relu": [0.2],
    }
    assert params.get(gn.training, "epochs") == 1
    assert params.get(gn.training, "device") == "auto"


def test_put_merges_and_keeps_other_keys(params):
    params.put(gn.orchestration, {"generation_size": 8})
    assert params.get(gn.orchestration, "generation_size") == 8
    assert params.get(gn.orchestration, "timeout") == 300


def test_sections_are_addressed_by_singleton_module_or_name(params):
    params.put(gn.Selection, {"complexity_levels": 4})
    assert params.get("selection", "complexity_levels") == 4
    assert params.get("SELECTION")["complexity_levels"] == 4


@pytest.mark.parametrize(
    ("section", "values", "fragments"),
    [
        ("nope", {}, ["unknown section", "known", "selection"]),
        (gn.Library, {}, ["unknown section"]),
        (gn.Selection, {"levels": 3}, ["unknown key 'levels'", "complexity_levels"]),
        (gn.Selection, {"complexity_levels": 0}, ["selection.complexity_levels", ">= 1", "0"]),
        (gn.Selection, {"complexity_levels": "4"}, ["complexity_levels", "int", "'4'"]),
        (gn.evolution, {"mutation_rate": 1.5}, ["evolution.mutation_rate", "1.5"]),
        (gn.orchestration, {"timeout": -1}, ["orchestration.timeout", "-1"]),
        (gn.training, {"device": "tpu"}, ["training.device", "'tpu'"]),
        (gn.training, {"optimizer": "lbfgs"}, ["training.optimizer", "'lbfgs'"]),
        (gn.evolution, {"layer_types": {"dense": [0, "relu"]}}, ["layer_types['dense']", "units"]),
        (gn.evolution, {"inherit_weights": 1}, ["inherit_weights", "True or False"]),
        (gn.training, [("epochs", 2)], ["values must be a dict"]),
    ],
)
def test_bad_input_names_the_problem_and_changes_nothing(params, section, values, fragments):
    before = params.snapshot()
    with pytest.raises(ValueError) as caught:
        params.put(section, values)
    for fragment in fragments:
        assert fragment in str(caught.value)
    assert params.snapshot() == before


def test_a_batch_with_one_bad_value_stores_none_of_it(params):
    with pytest.raises(ValueError, match="batch_size"):
        params.put(gn.training, {"epochs": 3, "batch_size": 0})
    assert params.get(gn.training, "epochs") == 1


def test_unknown_key_on_get_lists_known_ones(params):
    with pytest.raises(KeyError, match="known"):
        params.get(gn.training, "epoch")


def test_snapshot_and_get_are_copies(params):
    snapshot = params.snapshot()
    snapshot["evolution"]["layer_types"]["dense"][0] = 1
    params.get("evolution", "layer_types")["dense"][0] = 2
    assert params.get("evolution", "layer_types")["dense"] == [64, "none"]


def test_load_restores_a_snapshot_and_reset_restores_defaults(params):
    params.put(gn.training, {"epochs": 5})
    saved = params.snapshot()
    params.reset()
    assert params.get(gn.training, "epochs") == 1
    params.load(saved)
    assert params.get(gn.training, "epochs") == 5
