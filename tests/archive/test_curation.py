"""Curation verbs on the archive: pin, unpin, favor, veto; bad input changes nothing."""

from __future__ import annotations

import numpy as np
import pytest

from galapagos_nao.archive.selection import Selection
from galapagos_nao.config.parameters import Parameters
from galapagos_nao.config.settings import DEFAULT_MAX_LAYERS
from galapagos_nao.core import evolution
from galapagos_nao.core.network import Network
from galapagos_nao.run.generation import breed, parent_order


def net(n_layers: int, val_acc: float | None = 0.5, units: int = 8) -> Network:
    return Network([("dense", [units, "relu"])] * n_layers, val_acc=val_acc, test_acc=val_acc)


@pytest.fixture
def selection() -> Selection:
    return Selection(parameters=Parameters())


def state(selection: Selection):
    """Everything a verb may change, as comparable values."""
    return (
        {k: n.id for k, n in selection.get_all().items()},
        selection.curation(),
        selection.vetoed(),
    )


def test_a_pinned_elite_keeps_its_cell_and_the_fitter_newcomer_is_held_back(selection):
    pinned = net(2, 0.6)
    selection.select([pinned, net(4, 0.7)])
    selection.pin(1)
    better = net(2, 0.9, units=16)
    assert selection.select([better]) == []
    assert selection.get(1) is pinned
    entry = selection.record_generation(0, [], evaluated=1, failed=0, seconds=0.1)
    assert [(h.cell, h.pinned_id, h.newcomer_id) for h in entry.held_back] == [
        (1, pinned.id, better.id)
    ]
    selection.unpin(1)
    selection.select([better])
    assert selection.get(1) is better


def test_veto_removes_the_network_and_keeps_its_genome_out(selection):
    vetoed = net(2, 0.6)
    selection.select([vetoed, net(4, 0.7)])
    queued_twin = Network(vetoed.genome)
    selection.put_unevaluated(queued_twin)
    entry = selection.veto(vetoed.id)
    assert entry.id == vetoed.id and selection.vetoed() == [entry]
    assert vetoed not in selection.get_all().values() and not selection.queued()
    twin = Network(vetoed.genome, val_acc=0.99)
    assert selection.select([twin]) == []  # a fitter twin never re-enters
    with pytest.raises(ValueError, match="vetoed"):
        selection.put_unevaluated(vetoed.genome)
    selection.clear_vetoes()
    assert selection.vetoed() == []
    selection.put_unevaluated(vetoed.genome)


def test_favor_shares_the_children_out_by_weight():
    assert parent_order(4, [1, 1]) == [0, 1, 0, 1]  # the unfavored turn-taking
    assert parent_order(4, [1, 1, 1]) == [0, 1, 2, 0]
    assert parent_order(4, [3, 1]).count(0) == 3
    assert parent_order(4, [0, 1]) == [1, 1, 1, 1]
    with pytest.raises(RuntimeError, match="favor 0"):
        parent_order(4, [0, 0])


def test_breeding_plan_carries_favor_and_the_veto_list(selection):
    first, second = net(2, 0.6), net(4, 0.7)
    selection.select([first, second])
    selection.favor(2, 3)
    selection.veto(first)
    plan = selection.breeding_plan()
    assert plan.parents == [second] and plan.weights == [3.0]
    assert plan.tabu == {first.layers}


def test_constraints_hold_over_fifty_generations_of_breeding():
    settings = Parameters()
    settings.put("evolution", {"max_layers": 4, "forbid": ["sigmoid", "dropout"]})
    typed = settings.settings()
    rng = np.random.default_rng(0)
    parents = [Network([("dense", [8, "relu"]), ("activation", ["tanh"])])]
    bred = 0
    for generation in range(50):
        children = breed(parents, rng, typed, generation)
        for child in children:
            assert (
                evolution.constraint_violation(
                    child.layers, max_layers=4, forbid=["sigmoid", "dropout"]
                )
                is None
            )
        bred += len(children)
        if children:
            parents = [Network(children[-1].layers)]
    assert bred >= 150  # redraws, not drops, keep most children


def test_a_child_that_cannot_keep_the_constraints_is_dropped_with_a_reason(caplog):
    settings = Parameters()
    settings.put("evolution", {"forbid": ["relu"], "mutation_rate": 0.0})
    parent = Network([("dense", [8, "relu"])])
    with caplog.at_level("WARNING", logger="galapagos_nao.run"):
        children = breed([parent], np.random.default_rng(0), settings.settings(), 0)
    assert children == []
    assert "forbid 'relu'" in caplog.text and "dropped after 20 draws" in caplog.text


@pytest.mark.parametrize(
    ("verb", "args", "error", "match"),
    [
        ("pin", (3,), KeyError, "pin: no elite at cell 3"),
        ("pin", ("one",), ValueError, "cell must be an int"),
        ("unpin", (1,), KeyError, "unpin: cell 1 is not pinned"),
        ("favor", (3, 2), KeyError, "favor: no elite at cell 3"),
        ("favor", (1, -1), ValueError, "weight must be a finite number >= 0"),
        ("favor", (1, "lots"), ValueError, "weight must be a number"),
        ("veto", ("no-such-id",), KeyError, "veto: no elite or queued network has id 'no-such-id'"),
        ("veto", (42,), ValueError, "net_or_id must be a Network or an id"),
    ],
)
def test_bad_input_for_a_verb_names_it_and_changes_nothing(selection, verb, args, error, match):
    selection.select([net(2, 0.6), net(4, 0.7)])
    selection.favor(2, 2)
    before = state(selection)
    with pytest.raises(error, match=match):
        getattr(selection, verb)(*args)
    assert state(selection) == before


def test_constraints_are_checked_as_settings():
    settings = Parameters()
    with pytest.raises(
        ValueError, match=r"evolution.forbid\[1\]: unknown layer type or activation"
    ):
        settings.put("evolution", {"forbid": ["dropout", "sigmoids"]})
    with pytest.raises(ValueError, match="evolution.max_layers"):
        settings.put("evolution", {"max_layers": 0})
    assert (
        settings.get("evolution", "forbid") == []
        and settings.get("evolution", "max_layers") == DEFAULT_MAX_LAYERS
    )


def test_listeners_hear_each_verb_after_it_succeeded(selection):
    heard = []
    selection.listeners.append(lambda action, arguments: heard.append((action, dict(arguments))))
    selection.select([net(2, 0.6), net(4, 0.7)])
    selection.pin(1)
    with pytest.raises(KeyError):
        selection.unpin(2)
    selection.favor(2, 0)
    assert heard == [("pin", {"cell": 1}), ("favor", {"cell": 2, "weight": 0.0})]
