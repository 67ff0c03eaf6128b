from __future__ import annotations

import logging

import pytest
import torch
from torch import nn

import galapagos_nao as gn
from galapagos_nao.archive.selection import Selection
from galapagos_nao.config.parameters import Parameters
from galapagos_nao.core import genome
from galapagos_nao.core.network import Network
from galapagos_nao.example import seed_layers
from galapagos_nao.run.devices import plan_cpu_workers
from galapagos_nao.run.failures import GenerationsFailing
from galapagos_nao.run.generation import breed


@pytest.fixture
def selection() -> Selection:
    return Selection(parameters=Parameters())


def finish(run, timeout: float = 120):
    assert run.join(timeout), f"run did not finish: {run!r}"
    return run


def test_evolve_returns_at_once_and_runs_the_seed_generations(selection, small_mnist, caplog):
    caplog.set_level(logging.INFO, logger="galapagos_nao")
    run = gn.evolve(seed_layers(), 2, small_mnist, selection=selection, seed=0)
    assert repr(run).startswith(("<Run starting", "<Run running"))
    finish(run)
    status = run.status()
    assert (status.state, status.completed, status.evaluated, status.failed) == (
        "finished",
        2,
        8,
        0,
    )
    elites = run.result()
    assert elites and all(n.val_acc > 0.5 and n.weights is not None for n in elites.values())
    assert all(n.generation in (0, 1) and n.parent_id for n in elites.values())
    messages = [r.getMessage() for r in caplog.records]
    assert (
        messages.count("Generations remaining: 2") == 1 and "Generations remaining: 1" in messages
    )
    epochs = [m for m in messages if m.startswith("Epoch 0. Loss: ")]
    assert len(epochs) == 8 and all(
        "Train_acc" in m and "Val_acc" in m and "Test_acc" in m for m in epochs
    )
    assert repr(run).startswith(
        "<Run finished: generation 1 (this run 2/2), 8 evaluated, 0 failed, best test_acc 0."
    )


def test_a_seeded_run_is_reproducible(small_mnist):
    archives = []
    for _ in range(2):
        selection = Selection(parameters=Parameters())
        finish(gn.evolve(seed_layers(), 2, small_mnist, selection=selection, seed=11))
        archives.append(
            {k: (n.layers, n.val_acc, n.test_acc) for k, n in selection.elites().items()}
        )
    assert archives[0] == archives[1]


def test_failing_candidates_are_dropped_and_the_run_goes_on(selection, small_mnist, caplog):
    class Explode(nn.Module):
        def forward(self, x):
            raise RuntimeError("boom from a broken layer")

    if "test_explode" not in genome.layer_types():
        genome.register_layer("test_explode", [], lambda params, n: ([Explode()], n))
    params = selection.parameters
    params.put(gn.evolution, {"mutation_rate": 0.0})
    broken = [("dense", [8, "relu"]), ("test_explode", [])]
    run = finish(
        gn.evolve(
            [Network(broken), Network([("dense", [8, "relu"])])],
            2,
            small_mnist,
            selection=selection,
        )
    )
    status = run.status()
    assert status.state == "finished" and status.completed == 2
    assert status.failed >= 2 and status.evaluated >= 2
    assert any("boom from a broken layer" in r.getMessage() for r in caplog.records)
    assert all(n.layers == (("dense", (8, "relu")),) for n in selection.elites().values())


def fails_every_candidate(run, reason: str, candidates: int = 4) -> None:
    """The run stopped after one generation in which every candidate failed for ``reason``."""
    status = run.status()
    assert (status.state, status.completed, status.failed) == ("failed", 0, candidates)
    with pytest.raises(GenerationsFailing, match=f"all {candidates} candidates failed.*{reason}"):
        run.result()


def test_non_finite_loss_is_a_logged_failure(selection, small_mnist):
    selection.parameters.put(gn.training, {"optimizer": "sgd", "learning_rate": 100})
    selection.parameters.put(gn.evolution, {"mutation_rate": 0.0})
    selection.parameters.put(gn.orchestration, {"max_failed_generations": 1})
    run = finish(gn.evolve([("dense", [32, "none"])], 1, small_mnist, selection=selection, seed=1))
    fails_every_candidate(run, "loss became")
    assert selection.elites() == {}


def test_a_candidate_that_runs_out_of_memory_is_dropped(selection, small_mnist, hungry_genome):
    # A genome past the file limits (a 784 x 10^9 weight) is refused when queued, so the
    # allocation that fails is the layer's own, in training.
    selection.parameters.put(gn.evolution, {"mutation_rate": 0.0})
    selection.parameters.put(gn.orchestration, {"max_failed_generations": 1})
    with pytest.raises(ValueError, match="more than the limit"):
        gn.evolve([("dense", [10**9, "relu"])], 1, small_mnist, selection=selection)
    run = finish(gn.evolve(hungry_genome, 1, small_mnist, selection=selection))
    fails_every_candidate(run, "allocate memory")


def test_candidates_over_their_timeout_are_dropped(selection, small_mnist):
    selection.parameters.put(gn.orchestration, {"timeout": 1e-6, "max_failed_generations": 1})
    run = finish(gn.evolve(seed_layers(), 1, small_mnist, selection=selection))
    fails_every_candidate(run, "timeout")


def test_stop_ends_a_continual_run_cooperatively(selection, small_mnist):
    run = gn.evolve_continual(seed_layers(), small_mnist, selection=selection)
    assert run.status().generations is None and "/∞" in repr(run)
    while run.status().completed < 1:
        assert not run.done()
        run.join(0.05)
    run.stop()
    finish(run, 30)
    assert run.status().state == "stopped"
    assert run.result() == selection.elites()


def test_a_second_run_on_a_busy_selection_raises_and_queues_nothing(selection, small_mnist):
    run = gn.evolve_continual(seed_layers(), small_mnist, selection=selection)
    try:
        before = selection.queued()
        with pytest.raises(RuntimeError, match="already has a run in progress"):
            gn.evolve([("dense", [8, "relu"])], 1, small_mnist, selection=selection)
        assert selection.queued().keys() <= before.keys()
        other = finish(
            gn.evolve(
                [("dense", [8, "relu"])],
                1,
                small_mnist,
                selection=Selection(parameters=Parameters()),
            )
        )
        assert other.status().state == "finished"
    finally:
        run.stop()
        finish(run, 30)


def test_what_kills_a_run_is_reraised_by_result(selection, small_mnist):
    run = gn.evolve([("dense", [8, "relu"])], 1, small_mnist, selection=selection)

    def broken_hook(report):
        raise OSError("disk full")

    run.hooks.append(broken_hook)
    finish(run)
    assert run.status().state == "failed"
    with pytest.raises(OSError, match="disk full"):
        run.result()


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (("not a genome", 2), "net_or_nets"),
        (([("dense", [0, "relu"])], 2), r"layers\[0\]"),
        (([Network([]), [("conv", [])]], 2), r"net_or_nets\[1\]"),
        (([("dense", [8, "relu"])], 0), "generations must be >= 1"),
        (([("dense", [8, "relu"])], 2.5), "generations must be an int"),
    ],
)
def test_bad_arguments_raise_and_queue_nothing(selection, args, fragment):
    with pytest.raises(ValueError, match=fragment):
        gn.evolve(*args, selection=selection)
    assert selection.get_all() == {} and selection.run is None


def test_bad_task_and_seed_are_rejected(selection):
    with pytest.raises(ValueError, match="task"):
        gn.evolve(seed_layers(), 1, task="mnist", selection=selection)
    with pytest.raises(ValueError, match="seed"):
        gn.evolve(seed_layers(), 1, selection=selection, seed=-1)
    with pytest.raises(ValueError, match="Selection is empty"):
        gn.evolve_continual(None, selection=selection)
    assert selection.get_all() == {}


def test_queued_evaluated_networks_compete_as_they_are(selection, small_mnist):
    champion = Network([("dense", [4, "relu"])], val_acc=1.0, test_acc=1.0)
    finish(gn.evolve(champion, 1, small_mnist, selection=selection))
    assert champion in selection.elites().values()
    assert selection.queued() == {}


def test_breed_clones_a_lone_parent_generation_size_times_and_takes_parents_in_turn():
    import numpy as np

    settings = Parameters().settings()
    rng = np.random.default_rng(0)
    one = breed([Network(seed_layers())], rng, settings, 0)
    assert len(one) == 4 and {c.parent.id for c in one} == {one[0].parent.id}
    parents = [Network(seed_layers()) for _ in range(6)]
    many = breed(parents, rng, settings, 3)
    assert [c.parent for c in many] == parents and all(c.generation == 3 for c in many)
    assert len({c.seed for c in many}) == 6


def test_children_inherit_their_parents_weights(selection, small_mnist):
    selection.parameters.put(gn.evolution, {"mutation_rate": 0.0})
    finish(gn.evolve([("dense", [16, "relu"])], 1, small_mnist, selection=selection, seed=3))
    (parent,) = selection.elites().values()
    from galapagos_nao.config.settings import TrainingSettings
    from galapagos_nao.core.training import DeviceDataCache, fit

    data = DeviceDataCache().get(small_mnist, torch.device("cpu"), 0.1)
    inherited = fit(
        parent.layers,
        data,
        TrainingSettings().train_settings(),
        seed=5,
        parent_weights=parent.weights,
        origins=(0,),
    )
    fresh = fit(parent.layers, data, TrainingSettings().train_settings(), seed=5)
    assert inherited.inherited == 4 and fresh.inherited == 0
    # one more epoch on top of the parent's does better than one epoch from scratch
    assert inherited.val_acc > fresh.val_acc


def test_cpu_plan_never_oversubscribes():
    from galapagos_nao.run.devices import usable_cores

    cores = usable_cores()
    for n in range(1, 9):
        workers, threads = plan_cpu_workers(n)
        assert 1 <= workers <= min(n, cores) and workers * threads <= max(cores, workers)
    assert plan_cpu_workers(4, 3, 2) == (3, 2)


def test_evolved_networks_take_raw_mnist_images(selection, small_mnist):
    # The run records the task's input transform in every network it trains.
    finish(gn.evolve([("dense", [16, "relu"])], 1, small_mnist, selection=selection, seed=2))
    from galapagos_nao.core.datasets import MNIST_MEAN, MNIST_STD, MNIST_TRANSFORM

    pixels = ((small_mnist.x_test * MNIST_STD + MNIST_MEAN) * 255).round().to(torch.uint8)
    for net in selection.elites().values():
        assert net.input_transform == MNIST_TRANSFORM
        measured = (net.predict(pixels) == small_mnist.y_test).float().mean().item()
        assert measured == pytest.approx(net.test_acc, abs=0.005)
