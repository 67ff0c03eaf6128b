from __future__ import annotations

import math

import pytest

from galapagos_nao.archive.selection import Selection
from galapagos_nao.config.parameters import Parameters
from galapagos_nao.core import measures
from galapagos_nao.core.network import Network, build, count_parameters


def net(
    n_layers: int, val_acc: float = 0.5, units: int = 8, n_params: int | None = None
) -> Network:
    layers = [("dense", [units, "relu"])] * n_layers
    if n_params is not None:  # a real genome with exactly that count: the archive checks it
        return counted(n_layers, n_params, val_acc=val_acc, test_acc=val_acc)
    return Network(layers, val_acc=val_acc, test_acc=val_acc)


def counted(n_layers: int, n_params: int, **fields) -> Network:
    """One-unit layers after an input of the remaining features, 2 classes: n_params in all."""
    shape = (n_params - 2 * n_layers - 3,)  # (k + 1) + 2 per further layer + a 4-number head
    layers = [("dense", [1, "relu"])] * n_layers
    made = Network(layers, input_shape=shape, n_classes=2, n_params=n_params, **fields)
    assert count_parameters(made.model()) == n_params
    return made


@pytest.fixture
def selection() -> Selection:
    selection = Selection(parameters=Parameters())
    # Toy parameter counts (10, 1000): binned between the pool's extremes, not MNIST's range.
    selection.parameters.put(selection, {"measure_ranges": {}})
    return selection


def test_layers_edges_are_the_seed_cutoffs():
    layers = measures.measure("layers")
    assert layers.edges([4.0, 1.0], 2) == [2.0, 4.0]
    assert layers.edges([8.0], 4) == [2.0, 4.0, 6.0, 8.0]
    assert [measures.level_of(v, [2.0, 4.0]) for v in (1, 2, 3, 4)] == [1, 1, 2, 2]


def test_params_edges_are_log_spaced_between_the_smallest_and_largest():
    edges = measures.measure("params").edges([100.0, 10_000.0, 500.0], 2)
    assert edges == pytest.approx([1_000.0, 10_000.0])
    assert edges[-1] == 10_000.0  # exactly: the largest must land in the last level
    assert [measures.level_of(v, edges) for v in (100, 1_000, 1_001, 10_000)] == [1, 1, 2, 2]


def test_params_value_counts_untrained_networks_from_their_genome():
    untrained = Network([("dense", [8, "relu"]), ("batch_norm", [])])
    # dense 784*8+8, batch norm 2*8, head 8*10+10, by hand
    expected = 784 * 8 + 8 + 2 * 8 + 8 * 10 + 10
    assert measures.measure("params").value(untrained) == expected
    assert expected == count_parameters(build(untrained.layers))
    assert measures.measure("params").value(untrained.replace(n_params=123)) == 123


def test_levels_come_from_complexity_levels_for_layers_and_measure_levels_for_others():
    settings = Parameters().get("selection")
    assert measures.resolve_levels(["layers", "params"], settings) == (2, 4)
    settings.update(complexity_levels=3, measure_levels={"params": 5})
    assert measures.resolve_levels(["params", "layers"], settings) == (5, 3)


def test_one_measure_keeps_int_keys_as_in_the_seed(selection):
    small, large = net(2, 0.6), net(4, 0.7)
    selection.select([small, large])
    assert selection.get_all() == {1: small, 2: large}


def test_two_measures_use_tuple_keys_placed_by_hand(selection):
    selection.parameters.put(
        selection, {"measures": ["layers", "params"], "measure_levels": {"params": 2}}
    )
    nets = [
        net(1, 0.5, n_params=100),
        net(2, 0.6, n_params=10_000),
        net(4, 0.7, n_params=500),
        net(4, 0.8, n_params=5_000),
    ]
    selection.select(nets)
    # layers edges [2, 4]; params edges [1000, 10000]
    assert selection.elites() == {
        (1, 1): nets[0],
        (1, 2): nets[1],
        (2, 1): nets[2],
        (2, 2): nets[3],
    }
    grid = selection.grid()
    assert grid.measures == ("layers", "params") and grid.levels == (2, 2) and grid.cells == 4
    assert grid.edges[1] == pytest.approx((1_000.0, 10_000.0))


def test_raising_measure_levels_rebins_the_archive(selection):
    selection.parameters.put(selection, {"measures": ["params"], "measure_levels": {"params": 1}})
    nets = [net(1, 0.5, n_params=10), net(1, 0.6, n_params=100), net(1, 0.7, n_params=1_000)]
    selection.select(nets)
    assert selection.elites() == {1: nets[2]}
    # only the surviving elite is re-binned: a lone value fills the first level
    selection.parameters.put(selection, {"measure_levels": {"params": 2}})
    selection.select([])
    assert selection.elites() == {1: nets[2]}
    selection.select(nets)
    assert selection.elites() == {1: nets[1], 2: nets[2]}  # edges [100, 1000]: the 10 loses to 100
    assert selection.grid().levels == (2,)


def test_switching_measures_rekeys_every_elite(selection):
    nets = [net(1, 0.9, n_params=100), net(4, 0.8, n_params=10_000)]
    selection.select(nets)
    assert set(selection.elites()) == {1, 2}
    selection.parameters.put(selection, {"measures": ["layers", "params"]})
    selection.select([])
    assert set(selection.elites()) == {(1, 1), (2, 4)}
    selection.parameters.put(selection, {"measures": ["layers"]})
    selection.select([])
    assert selection.elites() == {1: nets[0], 2: nets[1]}


def test_a_mix_of_int_and_tuple_cells_still_lists_and_rebins(selection):
    selection.parameters.put(selection, {"measures": ["layers", "params"]})
    selection.select([net(4, 0.5, n_params=1_000)])
    selection.put(1, net(1, 0.9))  # an int cell put by hand while cells are tuples
    assert list(selection.get_all()) == [1, (2, 1)]  # ints sort as 1-tuples
    assert "Selection(" in repr(selection)
    selection.select([])
    assert all(isinstance(key, tuple) for key in selection.elites())


@pytest.mark.parametrize(
    ("values", "fragment"),
    [
        ({"measures": ["layers", "colour"]}, r"selection.measures\[1\] must be one of .*'colour'"),
        ({"measures": []}, "selection.measures must be a non-empty list"),
        ({"measures": "layers"}, "selection.measures must be a non-empty list"),
        ({"measures": ["params", "params"]}, r"selection.measures\[1\].*listed twice"),
        (
            {"measure_levels": {"params": 0}},
            r"selection.measure_levels\['params'\] must be >= 1, got 0",
        ),
        ({"measure_levels": {"colour": 2}}, "unknown measure 'colour'"),
        ({"measure_levels": {"layers": 3}}, "complexity_levels"),
        ({"measure_levels": [("params", 3)]}, "must be a dict"),
        (
            {"measure_ranges": {"params": [0, 10]}},
            r"selection.measure_ranges\['params'\] must be \[low, high\] with 0 < low < high, "
            r"got \[0, 10\]",
        ),
        ({"measure_ranges": {"params": [9, 3]}}, r"0 < low < high, got \[9, 3\]"),
        ({"measure_ranges": {"params": "wide"}}, r"got 'wide'"),
        ({"measure_ranges": {"layers": [1, 8]}}, "seed's relative cutoffs"),
        ({"measure_ranges": {"colour": [1, 2]}}, "unknown measure 'colour'"),
    ],
)
def test_bad_measure_settings_raise_and_change_nothing(values, fragment):
    parameters = Parameters()
    before = parameters.get("selection")
    with pytest.raises(ValueError, match=fragment):
        parameters.put("selection", values)
    assert parameters.get("selection") == before


def test_a_registered_measure_becomes_an_axis(selection):
    name = "test_measures.dropout_rate"
    measures.register_measure(
        name,
        lambda n: sum(p[0] for t, p in n.layers if t == "dropout"),
        lambda values, levels: [
            max(values, default=0.0) * i / levels for i in range(1, levels + 1)
        ],
        default_levels=2,
    )
    assert name in measures.measure_names()
    selection.parameters.put(selection, {"measures": [name]})
    low = Network([("dropout", [0.1])], val_acc=0.5)
    high = Network([("dropout", [0.8])], val_acc=0.4)
    selection.select([low, high])
    assert selection.elites() == {1: low, 2: high}
    with pytest.raises(ValueError, match="already registered"):
        measures.register_measure(name, lambda n: 0.0, lambda v, n: [0.0])


@pytest.mark.parametrize(
    ("kwargs", "error", "fragment"),
    [
        ({"name": ""}, ValueError, "name must be a non-empty str"),
        ({"value": 3}, TypeError, "value must be callable"),
        ({"edges": None}, TypeError, "edges must be callable"),
        ({"default_levels": 0}, ValueError, "default_levels must be >= 1"),
    ],
)
def test_register_measure_checks_its_arguments(kwargs, error, fragment):
    arguments = {"name": "test_measures.never", "value": lambda n: 0.0, "edges": lambda v, n: [0.0]}
    default_levels = kwargs.pop("default_levels", 1)
    arguments.update(kwargs)
    with pytest.raises(error, match=fragment):
        measures.register_measure(**arguments, default_levels=default_levels)
    assert "test_measures.never" not in measures.measure_names()


def test_unknown_measure_lookup_names_the_known_ones():
    with pytest.raises(KeyError, match=r"unknown measure 'colour'; known: .*'layers'"):
        measures.measure("colour")


def test_log_edges_of_an_empty_pool_and_of_one_value():
    edges = measures.measure("params").edges
    assert edges([], 3) == [0.0, 0.0, 0.0]
    assert edges([50.0], 2) == [50.0, 50.0]
    assert all(math.isfinite(e) for e in edges([0.0, 10.0], 2))


def test_params_levels_split_a_fixed_mnist_range_by_default():
    selection = Selection(parameters=Parameters())  # the defaults, as users get them
    selection.parameters.put(selection, {"measures": ["params"]})
    # A network without hidden layers (7,850 parameters) beside MNIST-sized ones,
    # whose first 784 x units layer dominates their counts.
    counts = [7_850, 50_890, 58_000, 70_000, 100_000]
    selection.select([net(1, 0.9 + i / 100, n_params=n) for i, n in enumerate(counts)])
    (edges,) = selection.grid().edges
    assert edges == pytest.approx([42_426.4, 60_000, 84_852.8, 120_000], rel=1e-5)
    # Between the pool's extremes (the old edges) 50,890 and up all shared level 4.
    assert sorted(selection.elites()) == [1, 2, 3, 4]
    pool_relative = measures.bin_networks(
        [net(1, 0.9, n_params=n) for n in counts], ["params"], [4]
    )[1]
    assert pool_relative == [1, 3, 4, 4, 4]


def test_layers_keep_the_seeds_relative_cutoffs_beside_fixed_params():
    selection = Selection(parameters=Parameters())
    selection.parameters.put(selection, {"measures": ["layers", "params"]})
    selection.select([net(2, 0.9, n_params=50_000), net(6, 0.95, n_params=50_000)])
    layers_edges, params_edges = selection.grid().edges
    assert layers_edges == (3.0, 6.0)  # [0, max layers] in complexity_levels=2 intervals
    assert params_edges[-1] == 120_000
