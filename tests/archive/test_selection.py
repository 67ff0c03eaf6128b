from __future__ import annotations

import pytest

from galapagos_nao.archive.selection import AddStatus, Selection
from galapagos_nao.config.parameters import Parameters
from galapagos_nao.core.network import Network, build, count_parameters


def net(n_layers: int, val_acc: float | None = 0.5) -> Network:
    layers = [("dense", [8, "relu"])] * n_layers
    return Network(layers, val_acc=val_acc, test_acc=val_acc)


@pytest.fixture
def selection() -> Selection:
    return Selection(parameters=Parameters())


def test_cutoffs_match_the_seed(selection):
    assert selection.cutoffs([net(4), net(1)]) == [2, 4]
    assert selection.cutoffs([net(4)], complexity_levels=4) == [1, 2, 3, 4]


def test_select_puts_each_net_in_the_first_level_whose_cutoff_covers_it(selection):
    small, large = net(2, 0.6), net(4, 0.7)
    changes = selection.select([small, large])
    assert selection.get_all() == {1: small, 2: large}
    assert {(c.level, c.old, c.new) for c in changes} == {(1, None, small), (2, None, large)}


def test_new_elites_replace_old_ones_only_when_fitter(selection):
    first = net(4, 0.7)
    selection.select([net(2, 0.6), first])
    better, worse = net(3, 0.8), net(4, 0.65)
    changes = selection.select([better, worse])
    assert selection.get(2) is better
    assert [(c.level, c.old, c.new) for c in changes] == [(2, first, better)]


def test_ties_keep_the_incumbent(selection):
    incumbent = net(4, 0.7)
    selection.select([incumbent])
    assert selection.select([net(4, 0.7)]) == []
    assert selection.elites() == {2: incumbent}  # max complexity 4: cutoffs [2, 4]


def test_ties_go_to_the_smaller_network(selection):
    incumbent = net(4, 0.7)
    selection.select([incumbent])
    smaller = net(3, 0.7)  # same level: max complexity 4, cutoffs [2, 4]
    changes = selection.select([smaller])
    assert selection.elites() == {2: smaller}
    assert [(c.level, c.old, c.new) for c in changes] == [(2, incumbent, smaller)]
    assert selection.select([net(4, 0.7)]) == []  # a larger twin in fitness stays out


def test_among_newcomers_a_tie_goes_to_the_smaller_whatever_the_order(selection):
    for order in (1, -1):
        selection.clear()
        large, small = net(4, 0.7), net(3, 0.7)
        selection.select([large, small][::order])
        assert selection.elites()[2] is small


def test_ties_of_equal_length_go_to_fewer_parameters(selection):
    def trained(units: int) -> Network:
        layers = [("dense", [units, "relu"])] * 2
        n_params = count_parameters(build(layers, (4,), 2))
        return Network(layers, (4,), 2, val_acc=0.7, n_params=n_params)

    wide, narrow = trained(64), trained(8)
    selection.select([wide])
    selection.select([narrow])
    assert selection.get(2) is narrow
    assert selection.put(2, wide) is AddStatus.NOT_ADDED


def test_put_lets_a_smaller_network_of_equal_fitness_in(selection):
    assert selection.put(1, net(4, 0.7)) is AddStatus.NEW
    assert selection.put(1, net(4, 0.7)) is AddStatus.NOT_ADDED
    smaller = net(2, 0.7)
    assert selection.put(1, smaller) is AddStatus.IMPROVE_EXISTING
    assert selection.get(1) is smaller


def test_cutoffs_stop_at_max_layers(selection):
    selection.parameters.put("evolution", {"max_layers": 8})
    assert selection.cutoffs([net(20), net(2)]) == [4, 8]
    small, large = net(5, 0.6), net(20, 0.7)  # large was queued by hand, over the range
    selection.select([small, large])
    assert selection.grid().edges == ((4.0, 8.0),)
    assert selection.elites() == {2: large}  # over the top: the last level, beside small
    selection.parameters.put("evolution", {"max_layers": None})  # no range: the seed's cutoffs
    assert selection.cutoffs([net(20), net(2)]) == [10, 20]
    selection.select([small])
    assert selection.elites() == {1: small, 2: large}


def test_put_unevaluated_lands_at_a_negative_key_until_its_generation(selection):
    queued = Network([("dense", [4, "relu"])])
    key = selection.put_unevaluated(queued)
    assert key == -1 and selection.get_all() == {-1: queued}
    assert selection.put_unevaluated([("dropout", [0.1])]) == -2
    selection.select([net(2, 0.5)], consumed=[-1])
    assert set(selection.get_all()) == {-2, 2}  # max complexity 2: cutoffs [1, 2]


def test_raising_complexity_levels_rebuckets_and_keeps_winners(selection):
    nets = [net(1, 0.5), net(2, 0.6), net(3, 0.7), net(4, 0.8)]
    selection.select(nets)
    assert len(selection.elites()) == 2
    selection.select([], complexity_levels=4)
    # levels 1..4 each hold the best network of their interval among the surviving elites
    assert selection.elites() == {2: nets[1], 4: nets[3]}
    selection.select(nets, complexity_levels=4)
    assert selection.elites() == {1: nets[0], 2: nets[1], 3: nets[2], 4: nets[3]}


def test_lowering_complexity_levels_keeps_the_best_of_merged_levels(selection):
    nets = [net(1, 0.9), net(2, 0.6), net(3, 0.7), net(4, 0.8)]
    selection.select(nets, complexity_levels=4)
    selection.select([], complexity_levels=2)
    assert selection.elites() == {1: nets[0], 2: nets[3]}


def test_complexity_levels_is_read_from_parameters(selection):
    selection.parameters.put(selection, {"complexity_levels": 4})
    assert selection.cutoffs([net(8)]) == [2, 4, 6, 8]


def test_put_reports_what_it_did(selection):
    a, b, c = net(2, 0.5), net(2, 0.7), net(2, 0.6)
    assert selection.put(1, a) is AddStatus.NEW
    assert selection.put(1, b) is AddStatus.IMPROVE_EXISTING
    assert selection.put(1, c) is AddStatus.NOT_ADDED
    assert selection.get(1) is b


@pytest.mark.parametrize(
    ("call", "fragment"),
    [
        (lambda s: s.put(0, net(1)), "level must be >= 1"),
        (lambda s: s.put("1", net(1)), "level must be an int"),
        (lambda s: s.put(1, "net"), "net must be a Network"),
        (lambda s: s.put(1, net(1, None)), "no val_acc"),
        (lambda s: s.put_unevaluated([("dense", [0, "relu"])]), r"layers\[0\]"),
        (lambda s: s.put_unevaluated(42), "layers must be a list"),
        (lambda s: s.select([net(1), "x"]), r"nets\[1\] must be a Network"),
        (lambda s: s.select([], complexity_levels=0), "complexity_levels"),
    ],
)
def test_bad_input_raises_and_changes_nothing(selection, call, fragment):
    selection.select([net(2, 0.5)])
    selection.put_unevaluated(net(1, None))
    before = selection.get_all()
    with pytest.raises(ValueError, match=fragment):
        call(selection)
    assert selection.get_all() == before


def test_get_all_is_a_snapshot(selection):
    selection.select([net(2, 0.5)])
    snapshot = selection.get_all()
    snapshot.clear()
    assert len(selection.get_all()) == 1


def test_clear_empties_elites_and_queue(selection):
    selection.select([net(2)])
    selection.put_unevaluated(net(1, None))
    selection.clear()
    assert selection.get_all() == {}
    assert selection.put_unevaluated(net(1, None)) == -1


def test_restore_replaces_the_archive(selection):
    a = net(2, 0.5)
    selection.restore({1: a}, {-3: net(1, None)})
    assert set(selection.get_all()) == {1, -3}
    assert selection.put_unevaluated(net(1, None)) == -4
    with pytest.raises(ValueError):
        selection.restore({0: a})


def test_select_uses_the_settings_it_is_given_over_live_parameters(selection):
    settings = selection.parameters.settings()
    selection.parameters.put(selection, {"measures": ["layers", "params"], "complexity_levels": 4})
    selection.select([net(1, 0.5), net(4, 0.6)], settings=settings)
    assert set(selection.elites()) == {1, 2}  # the snapshot's one measure, two levels
