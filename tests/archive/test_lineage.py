from __future__ import annotations

import pytest

import galapagos_nao as gn
from galapagos_nao import evolve, lineage
from galapagos_nao.archive.lineage import LineageRegistry
from galapagos_nao.archive.selection import Selection
from galapagos_nao.config.parameters import Parameters
from galapagos_nao.core.network import Network
from galapagos_nao.example import seed_layers
from galapagos_nao.store.library import Library


@pytest.fixture(scope="module")
def evolved(small_mnist) -> Selection:
    """A real three-generation run on its own Selection."""
    parameters = Parameters()
    parameters.put("orchestration", {"generation_size": 2})
    selection = Selection(parameters=parameters)
    evolve(seed_layers(), 3, small_mnist, selection=selection, seed=3).result(timeout=180)
    return selection


def test_lineage_walks_every_elite_back_to_the_seed(evolved):
    seed_genome = Network(seed_layers()).layers
    for elite in evolved.elites().values():
        chain = lineage(elite, selection=evolved, library=Library())
        assert chain[0] is elite
        assert chain[-1].parent_id is None and chain[-1].layers == seed_genome
        for child, parent in zip(chain[:-1], chain[1:], strict=True):
            assert child.parent_id == parent.id
        # generations count down along the chain to the untrained seed
        generations = [n.generation for n in chain[:-1]]
        assert generations == sorted(generations, reverse=True)
        assert chain[-1].generation is None and chain[-1].val_acc is None
        for child, parent in zip(chain[:-1], chain[1:], strict=True):
            # a changed genome names what changed it; an unchanged one may name nothing
            assert child.layers == parent.layers or child.mutations


def test_registry_records_are_weightless(evolved):
    elite = next(iter(evolved.elites().values()))
    chain = lineage(elite, selection=evolved, library=Library())
    assert chain[0].weights is not None
    assert all(gn.session.lineage_registry.get(n.id) is not None for n in chain[1:])
    assert all(gn.session.lineage_registry.get(n.id).weights is None for n in chain)


def test_lineage_accepts_an_id(evolved):
    elite = next(iter(evolved.elites().values()))
    by_id = lineage(elite.id, selection=evolved, library=Library())
    assert [n.id for n in by_id] == [
        n.id for n in lineage(elite, selection=evolved, library=Library())
    ]


def test_lineage_finds_ancestors_in_the_library_and_stops_at_an_unknown_one():
    grandparent = Network([("dense", [4, "relu"])], parent_id="not-kept", val_acc=0.3)
    parent = Network([("dense", [5, "relu"])], parent_id=grandparent.id, val_acc=0.4)
    child = Network([("dense", [6, "relu"])], parent_id=parent.id, val_acc=0.5)
    library = Library()
    library.put(grandparent)
    library.put(parent)
    chain = lineage(child, selection=Selection(parameters=Parameters()), library=library)
    assert chain == [child, parent, grandparent]
    assert chain[-1].parent_id == "not-kept"  # the chain ends where knowledge ends


def test_lineage_rejects_bad_input():
    empty = {"selection": Selection(parameters=Parameters()), "library": Library()}
    with pytest.raises(KeyError, match="no network with id 'nope'"):
        lineage("nope", **empty)
    with pytest.raises(ValueError, match="net must be a Network or an id, got 42"):
        lineage(42, **empty)  # type: ignore[arg-type]


def test_a_registry_keeps_one_weightless_copy_per_id():
    import torch

    own = LineageRegistry()
    net = Network([("dense", [2, "relu"])])
    trained = net.replace(weights=net.model().state_dict(), val_acc=0.5)
    own.add(trained)
    own.add(trained)
    assert len(own) == 1
    kept = own.get(trained.id)
    assert kept is not None and kept.weights is None and kept.val_acc == 0.5
    assert isinstance(
        trained.weights["head.weight"], torch.Tensor
    )  # the original keeps its weights


def test_the_registry_keeps_the_most_recent_records_only():
    from galapagos_nao.archive.lineage import LineageRegistry
    from galapagos_nao.core.network import Network

    registry = LineageRegistry(max_records=3)
    nets = [Network([("dense", [4, "relu"])]) for _ in range(5)]
    for net in nets:
        registry.add(net)
    assert len(registry) == 3
    assert registry.get(nets[0].id) is None and registry.get(nets[4].id) is not None
