from __future__ import annotations

from dataclasses import MISSING, FrozenInstanceError, fields

import pytest

import galapagos_nao as gn
from galapagos_nao.config.parameters import Parameters
from galapagos_nao.config.settings import (
    SECTIONS,
    EvolutionSettings,
    OrchestrationSettings,
    SelectionSettings,
    Settings,
    TrainingSettings,
)
from galapagos_nao.core.training import TrainSettings


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


# -- the section dataclasses: the one source of defaults, checks and docs ------------------


def test_the_sections_are_the_defaults_parameters_start_from():
    fresh = Settings()
    assert {name: getattr(fresh, name).as_dict() for name in SECTIONS} == Parameters.defaults()
    assert [f.name for f in fields(Settings)] == list(SECTIONS)
    for name, section in SECTIONS.items():
        assert name == section.NAME
        assert isinstance(getattr(fresh, name), section)


def test_every_setting_has_a_check_and_a_one_line_doc():
    for section in SECTIONS.values():
        for f in fields(section):
            assert callable(f.metadata["check"])
            assert f.metadata["doc"] and "\n" not in f.metadata["doc"]


@pytest.mark.parametrize(
    ("make", "fragments"),
    [
        (lambda: SelectionSettings(complexity_levels=0), ["selection.complexity_levels", "0"]),
        (lambda: SelectionSettings(measures=["depth"]), ["selection.measures[0]", "'depth'"]),
        (lambda: OrchestrationSettings(timeout=-1), ["orchestration.timeout", "-1"]),
        (lambda: OrchestrationSettings(num_gpus=1.5), ["orchestration.num_gpus", "1.5"]),
        (lambda: EvolutionSettings(mutation_rate=1.5), ["evolution.mutation_rate", "1.5"]),
        (lambda: EvolutionSettings(inherit_weights=1), ["evolution.inherit_weights", "1"]),
        (lambda: TrainingSettings(epochs=0), ["training.epochs", ">= 1", "0"]),
        (lambda: TrainingSettings(device="tpu"), ["training.device", "'tpu'"]),
    ],
)
def test_a_bad_value_names_section_key_and_value(make, fragments):
    with pytest.raises(ValueError) as caught:
        make()
    for fragment in fragments:
        assert fragment in str(caught.value)


def test_a_section_and_put_word_a_bad_value_alike(params):
    with pytest.raises(ValueError) as by_put:
        params.put(gn.training, {"learning_rate": 0})
    with pytest.raises(ValueError) as by_section:
        TrainingSettings(learning_rate=0)
    assert str(by_put.value) == str(by_section.value)


def test_sections_are_frozen_and_keyword_only():
    settings = OrchestrationSettings(timeout=60)
    with pytest.raises(FrozenInstanceError):
        settings.timeout = 1  # type: ignore[misc]
    with pytest.raises(TypeError):
        OrchestrationSettings(4)  # type: ignore[misc]


def test_the_typed_accessor_matches_the_snapshot(params):
    params.put(gn.Selection, {"complexity_levels": 3, "measures": ["layers", "params"]})
    params.put(gn.orchestration, {"timeout": 60, "workers": 2})
    params.put(gn.evolution, {"mutation_rate": 0.5, "layer_types": {"dropout": [0.1]}})
    params.put(gn.training, {"epochs": 2, "batch_size": 64, "seed": 7})
    snapshot, settings = params.snapshot(), params.settings()
    for name in SECTIONS:
        assert getattr(settings, name).as_dict() == snapshot[name]
    assert settings.orchestration.timeout == 60.0
    assert settings.evolution.layer_types == {"dropout": [0.1]}
    assert settings.training.seed == 7
    assert Settings.from_snapshot(snapshot) == settings


def test_the_typed_record_is_a_copy(params):
    params.settings().evolution.layer_types["dense"][0] = 1
    assert params.get(gn.evolution, "layer_types")["dense"] == [64, "none"]


def test_from_snapshot_fills_missing_keys_and_refuses_unknown_ones():
    settings = Settings.from_snapshot({"training": {"epochs": 3}})
    assert settings.training.epochs == 3
    assert settings.orchestration == OrchestrationSettings()
    with pytest.raises(ValueError, match=r"training: unknown key 'epoch'; known: \["):
        Settings.from_snapshot({"training": {"epoch": 3}})
    with pytest.raises(ValueError, match="unknown section 'trainer'"):
        Settings.from_snapshot({"trainer": {}})


def test_train_settings_carry_the_training_section_into_fit():
    section = TrainingSettings(epochs=2, batch_size=32, optimizer="sgd", device="cpu")
    train = section.train_settings()
    assert train == TrainSettings(
        epochs=2,
        batch_size=32,
        optimizer="sgd",
        learning_rate=section.learning_rate,
        validation_fraction=section.validation_fraction,
        device="cpu",
        precision=section.precision,
        group_size=section.group_size,
        max_memory=section.max_memory,
        cuda_graphs=section.cuda_graphs,
    )
    # fit's record has no defaults of its own: the training section is the one source.
    assert all(f.default is MISSING and f.default_factory is MISSING for f in fields(train))
    assert {f.name for f in fields(train)} <= set(TrainingSettings.names())
