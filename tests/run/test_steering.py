"""Each curation verb changes the next generation, with real training on a tiny real MNIST."""

from __future__ import annotations

import logging
from collections import Counter

import pytest

from galapagos_nao.archive.selection import Selection
from galapagos_nao.config.parameters import Parameters
from galapagos_nao.core import datasets
from galapagos_nao.core.network import Network
from galapagos_nao.run.api import Session
from galapagos_nao.store.library import Library

TINY = [("dense", [8, "relu"])]


@pytest.fixture(scope="module")
def tiny_task(small_mnist):
    return datasets.subset(small_mnist, 600, 200)


@pytest.fixture
def session() -> Session:
    parameters = Parameters()
    parameters.put("orchestration", {"generation_size": 4, "workers": 2})
    return Session(
        parameters=parameters, selection=Selection(parameters=parameters), library=Library()
    )


def evolve(session: Session, task, generations: int = 1, net=None, **kwargs):
    run = session.evolve(net, generations, task, seed=0, **kwargs)
    run.result(timeout=300)
    return run


def test_a_pinned_cell_is_kept_against_a_better_newcomer(session, tiny_task):
    session.parameters.put("selection", {"complexity_levels": 1})
    weak = Network(TINY, val_acc=0.01, test_acc=0.01)  # any trained child beats it
    session.selection.put(1, weak)
    session.selection.pin(1)
    outcomes = []
    evolve(session, tiny_task, candidate_hooks=[outcomes.append])
    trained = {o.network.id: o.network.val_acc for o in outcomes if o.network is not None}
    assert max(trained.values()) > 0.01
    assert session.selection.get(1) is weak
    [held] = session.selection.history()[-1].held_back
    assert held.pinned_id == weak.id and held.newcomer_id in trained
    assert held.newcomer_fitness == max(trained.values())


def test_a_vetoed_genome_never_re_enters(session, tiny_task):
    session.parameters.put("selection", {"complexity_levels": 1})
    evolve(session, tiny_task, net=TINY)
    elite = session.selection.get(1)
    session.selection.veto(elite)
    session.selection.put_unevaluated(Network([("dense", [12, "relu"])]))
    outcomes = []
    evolve(session, tiny_task, generations=3, candidate_hooks=[outcomes.append])
    assert outcomes and all(o.candidate.layers != elite.layers for o in outcomes)
    assert all(n.layers != elite.layers for n in session.selection.get_all().values())
    with pytest.raises(ValueError, match="vetoed"):
        session.selection.put_unevaluated(elite.genome)


@pytest.mark.parametrize(("weight", "children"), [(1, 2), (3, 3), (0, 0)])
def test_favor_changes_how_many_children_a_parent_gets(session, tiny_task, weight, children):
    session.parameters.put("selection", {"complexity_levels": 2})
    small = Network(TINY, val_acc=0.5, test_acc=0.5)
    large = Network(TINY * 4, val_acc=0.5, test_acc=0.5)
    session.selection.select([small, large])
    session.selection.favor(1, weight)
    outcomes = []
    evolve(session, tiny_task, candidate_hooks=[outcomes.append])
    parents = Counter(o.candidate.parent.id for o in outcomes)
    assert parents[small.id] == children and sum(parents.values()) == 4


def test_each_action_is_stamped_with_the_boundary_that_first_sees_it(session, tiny_task):
    """An action in training reaches that generation's selection; after it, the next breeding."""
    session.parameters.put("selection", {"complexity_levels": 1})
    weak = Network(TINY, val_acc=0.01, test_acc=0.01)
    session.selection.put(1, weak)
    pinned_while_training: list[bool] = []

    def pin_while_training(outcome) -> None:  # on the run's thread, between its boundaries
        if not pinned_while_training:
            session.selection.pin(1)
            pinned_while_training.append(True)

    def put_after_generation(report) -> None:
        session.parameters.put("training", {"epochs": 1 + report.generation})

    evolve(
        session,
        tiny_task,
        2,
        candidate_hooks=[pin_while_training],
        hooks=[put_after_generation],
    )
    # The pin made during generation 0's training held at generation 0's selection.
    assert session.selection.get(1) is weak
    assert len(session.selection.history()[0].held_back) == 1
    stamps = [(e.action, str(e.stamp)) for e in session.journal.entries()]
    assert stamps == [
        ("Parameters.put", "0 breeding"),
        ("Selection.put", "0 breeding"),
        ("evolve", "0 breeding"),
        ("Selection.pin", "0 selection"),
        ("Parameters.put", "1 breeding"),
        ("Parameters.put", "2 breeding"),
    ]


def test_a_new_run_continues_the_archive_generation_count(session, tiny_task, caplog):
    evolve(session, tiny_task, 2, net=TINY)
    caplog.set_level(logging.INFO, logger="galapagos_nao")
    run = evolve(session, tiny_task, 1)
    assert "Generation 2 (this run 1/1):" in caplog.text
    assert [e.stats.generation for e in session.selection.history()] == [0, 1, 2]
    assert run.generation == 3 and run.status().generation == 2  # one number: the archive's
    assert run.status().completed == 1
    starts = [e for e in session.journal.entries() if e.action == "evolve"]
    assert [str(e.stamp) for e in starts] == ["0 breeding", "2 breeding"]
    assert all(isinstance(e.arguments["seed"], int) for e in starts)


def test_an_unseeded_run_records_the_seed_it_drew(session, tiny_task):
    run = session.evolve(TINY, 1, tiny_task)
    run.result(timeout=300)
    (start,) = [e for e in session.journal.entries() if e.action == "evolve"]
    assert isinstance(run.seed, int) and start.arguments["seed"] == run.seed
