"""Threads on Selection, Library and Parameters while a run trains: no torn state, no deadlock."""

from __future__ import annotations

import contextlib
import threading

import galapagos_nao as gn
from galapagos_nao.archive.selection import Selection
from galapagos_nao.config.parameters import Parameters
from galapagos_nao.core.network import Network
from galapagos_nao.example import seed_layers
from galapagos_nao.store.library import Library


def test_readers_and_writers_while_a_run_trains(small_mnist):
    parameters = Parameters()
    selection = Selection(parameters=parameters)
    library = Library()
    parameters.put(gn.orchestration, {"generation_size": 2})
    run = gn.evolve_continual(seed_layers(), small_mnist, selection=selection, seed=0)
    stop = threading.Event()
    problems: list[str] = []
    counts = {"reads": 0}

    def check(condition: bool, message: str) -> None:
        if not condition:
            problems.append(message)

    def parameter_writer(worker: int) -> None:
        value = 1
        while not stop.is_set():
            # learning_rate and batch_size always change together; readers must never see them apart
            parameters.put(gn.training, {"learning_rate": value * 1e-4, "batch_size": 100 + value})
            parameters.put("orchestration", {"timeout": 300 + value})
            value = value % 50 + 1

    def parameter_reader() -> None:
        while not stop.is_set():
            snapshot = parameters.snapshot()
            training = snapshot["training"]
            if training["batch_size"] != Parameters.defaults()["training"]["batch_size"]:
                paired = round(training["learning_rate"] * 1e4) == training["batch_size"] - 100
                check(paired, f"torn training section {training}")
            check(
                parameters.get(gn.Selection, "complexity_levels") in (2, 3),
                "complexity_levels out of range",
            )
            counts["reads"] += 1

    def selection_user(worker: int) -> None:
        while not stop.is_set():
            elites = selection.get_all()
            for key, net in elites.items():
                check(isinstance(net, Network), f"non-network at {key}")
                check(key < 0 or net.val_acc is not None, f"unevaluated elite at {key}")
            if elites:
                positives = [k for k in elites if k > 0]
                if positives:
                    library.put(elites[max(positives)])
            parameters.put(gn.Selection, {"complexity_levels": 2 + worker % 2})

    def library_user() -> None:
        while not stop.is_set():
            for net_id, net in library.get_all().items():
                check(net.id == net_id, "library key does not match id")
                # removed by the other library user in between: allowed
                with contextlib.suppress(KeyError):
                    check(library.get(net_id) is net, "a record changed under its id")
            if len(library) > 5:
                for net_id in list(library.get_all())[:2]:
                    with contextlib.suppress(KeyError):
                        library.remove(net_id)

    threads = [
        threading.Thread(target=parameter_writer, args=(0,)),
        threading.Thread(target=parameter_reader),
        threading.Thread(target=selection_user, args=(0,)),
        threading.Thread(target=selection_user, args=(1,)),
        threading.Thread(target=library_user),
        threading.Thread(target=library_user),
    ]
    for thread in threads:
        thread.start()
    try:
        deadline_generations = 3
        while run.status().completed < deadline_generations:
            assert not run.done(), run.result()
            run.join(0.1)
    finally:
        stop.set()
        for thread in threads:
            thread.join(30)
        run.stop()
    assert all(not t.is_alive() for t in threads), "a thread deadlocked"
    assert run.join(60), "the run deadlocked"
    assert run.status().state == "stopped" and run.status().error is None
    assert problems == []
    assert counts["reads"] > 100
    assert len(library) >= 1
    # put_unevaluated from the REPL while nothing runs still works
    assert selection.put_unevaluated(next(iter(library.get_all().values()))) < 0
