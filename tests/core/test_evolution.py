from __future__ import annotations

import numpy as np
import pytest

from galapagos_nao.core import evolution, genome
from galapagos_nao.example import seed_layers


def rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def test_duplicate_all_doubles_the_length():
    layers = seed_layers()
    doubled, origins, log = evolution.duplicate(layers, rng(), all=True)
    assert len(doubled) == 2 * len(layers)
    assert sorted(origins) == sorted(list(range(8)) * 2)
    assert log and log[0].startswith("duplicate [0:8]")


def test_duplicate_inserts_a_copy_of_a_slice():
    layers = seed_layers()
    for seed in range(20):
        child, origins, _ = evolution.duplicate(layers, rng(seed), rate=1.0)
        assert len(child) > len(layers)
        # every child layer is a copy of the parent layer it claims to come from
        assert all(child[i] == layers[j] for i, j in enumerate(origins))


def test_remove_with_rate_one_drops_everything_and_zero_nothing():
    layers = seed_layers()
    assert evolution.remove(layers, rng(), rate=1.0)[0] == []
    assert evolution.remove(layers, rng(), rate=0.0)[0] == layers


def test_mutation_rate_zero_changes_nothing():
    layers = seed_layers()
    for seed in range(20):
        child = evolution.spawn_offspring(layers, rng(seed), mutation_rate=0.0)
        assert child.layers == layers
        assert child.origins == tuple(range(len(layers)))
        assert child.mutations == ()


def test_mutation_rate_one_always_changes_the_genome():
    layers = seed_layers()
    for seed in range(20):
        assert evolution.spawn_offspring(layers, rng(seed), mutation_rate=1.0).layers != layers


def test_mutate_with_rate_one_touches_every_layer_and_logs_only_real_changes():
    layers = seed_layers()
    for seed in range(20):
        child, origins, log = evolution.mutate(layers, rng(seed), rate=1.0, std_dev=2)
        changed = [i for i, (a, b) in enumerate(zip(layers, child, strict=True)) if a != b]
        replaced = [i for i, origin in enumerate(origins) if origin is None]
        assert len(log) == len(set(changed) | set(replaced))
        genome.validate(child)
        for index, (before, after) in enumerate(zip(layers, child, strict=True)):
            if origins[index] is None:  # replaced: seeded from layer_types
                assert after[1] == evolution.DEFAULT_LAYER_TYPES[after[0]]
            else:
                assert after[0] == before[0]


def test_mutate_params_follows_the_seed_rules():
    generator = rng(1)
    for _ in range(50):
        units, activation = evolution.mutate_params([64, "relu"], "dense", generator, std_dev=2)
        assert isinstance(units, int) and units >= 1 and abs(units - 64) < 20
        assert activation in genome.ACTIVATIONS
        (rate,) = evolution.mutate_params([0.5], "dropout", generator, std_dev=2)
        assert isinstance(rate, float) and 0 <= rate < 1


def test_units_that_mutate_below_one_clamp_to_one():
    generator = rng(2)
    values = {
        evolution.mutate_params([1, "none"], "dense", generator, std_dev=50)[0] for _ in range(200)
    }
    assert min(values) == 1


def test_operators_do_not_modify_their_input():
    layers = seed_layers()
    snapshot = [(t, list(p)) for t, p in layers]
    evolution.spawn_offspring(layers, rng(5), mutation_rate=1.0)
    assert layers == snapshot


def test_the_same_seed_breeds_the_same_child():
    a = evolution.spawn_offspring(seed_layers(), rng(42))
    b = evolution.spawn_offspring(seed_layers(), rng(42))
    assert a == b


def test_seed_params_returns_a_fresh_copy():
    params = evolution.seed_params("dense", evolution.DEFAULT_LAYER_TYPES)
    params[0] = 1
    assert evolution.DEFAULT_LAYER_TYPES["dense"] == [64, "none"]


@pytest.mark.parametrize("rate", [0.0, 0.25, 1.0])
def test_should_mutate_matches_its_rate(rate):
    generator = rng(3)
    hits = sum(evolution.should_mutate(generator, rate) for _ in range(4000))
    assert abs(hits / 4000 - rate) < 0.03


@pytest.mark.parametrize(
    ("type_name", "message"),
    [
        ("test_raising_mutate", "mutate raised RuntimeError: mutate blew up"),
        ("test_junk_mutate", "mutate returned 'junk'; size must be an int"),
    ],
)
def test_a_registered_mutate_that_fails_is_named(type_name, message):
    # Registered here, from local functions: Ray workers in a later test receive the
    # registry by value and could not import this test module.
    def mutate_raises(value, rng, std_dev):
        raise RuntimeError("mutate blew up")

    def build_identity(params, n):
        return [], n

    mutates = {"test_raising_mutate": mutate_raises, "test_junk_mutate": lambda v, r, s: "junk"}
    spec = genome.ParamSpec("size", "an int", lambda v: isinstance(v, int), mutates[type_name])
    genome.register_layer(type_name, [spec], build_identity, replace=True)
    layers = [("dense", [4, "relu"]), (type_name, [3])]
    with pytest.raises(
        evolution.MutationFailed, match=rf"layers\[1\] \('{type_name}'\).*{message}"
    ):
        evolution.mutate(layers, rng(), rate=1.0, std_dev=1.0, layer_types={})
    assert layers == [("dense", [4, "relu"]), (type_name, [3])]
