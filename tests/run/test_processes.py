"""The ``processes`` backend: real worker processes training on real MNIST."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from typing import Any

import psutil
import pytest
import torch
from evaluation_helpers import PATIENCE, backend_parameters, candidate, job_for, wait_for
from torch import nn

import galapagos_nao as gn
from galapagos_nao.archive.selection import Selection
from galapagos_nao.config.parameters import Parameters
from galapagos_nao.core import genome
from galapagos_nao.example import seed_layers
from galapagos_nao.run.generation import make_evaluator
from galapagos_nao.run.limits import available_memory
from galapagos_nao.run.process_pool import WorkerPool, shared_pool
from galapagos_nao.run.processes import WORKER_BASE_BYTES, ProcessEvaluator, processes_that_fit
from galapagos_nao.run.records import EvaluationJob, Outcome

WORKER_MODULE = "galapagos_nao.run.process_worker"


def worker_processes(parent: int | None = None) -> list[psutil.Process]:
    """Live worker processes of this test process (or of ``parent``)."""
    found = []
    for child in psutil.Process(parent or os.getpid()).children(recursive=True):
        try:
            if WORKER_MODULE in " ".join(child.cmdline()) and child.status() != "zombie":
                found.append(child)
        except psutil.NoSuchProcess:
            continue
    return found


def processes_parameters(**orchestration: Any) -> Parameters:
    return backend_parameters("processes", **orchestration)


@pytest.fixture(autouse=True)
def no_worker_outlives_its_test() -> Iterator[None]:
    """This session's pool is closed after each test: the next one starts with none."""
    yield
    shared_pool().close()
    wait_for(lambda: not worker_processes(), "the worker processes to end", 30.0)


@pytest.fixture
def evaluator() -> Iterator[ProcessEvaluator]:
    """An evaluator with a pool of its own."""
    pool = WorkerPool()
    made = ProcessEvaluator(pool)
    yield made
    made.close()
    pool.close()


def test_the_backend_is_chosen_by_name_and_refused_when_misspelt():
    assert isinstance(make_evaluator(processes_parameters()), ProcessEvaluator)
    parameters = Parameters()
    with pytest.raises(ValueError, match="backend.*'process'"):
        parameters.put(gn.orchestration, {"backend": "process"})
    assert parameters.settings().orchestration.backend == "threads"


@pytest.mark.parametrize(
    ("layers", "group_size"),
    [
        (seed_layers(), 1),
        ([("conv2d", [4, 3, "relu"]), ("max_pool", [2]), ("dense", [16, "relu"])], 2),
    ],
    ids=["seed-alone", "cnn-in-groups"],
)
def test_a_seeded_run_gives_the_same_archive_as_on_threads(small_mnist, layers, group_size, caplog):
    caplog.set_level(logging.INFO, logger="galapagos_nao")
    # Same bits or not does not hang on the size: 600 samples still train in 9 batches.
    task = gn.datasets.subset(small_mnist, 600, 200)
    archives: dict[str, Any] = {}
    outcomes: dict[str, list[Outcome]] = {}
    for backend in ("threads", "processes"):
        parameters = Parameters()
        # One intra-op thread in both: CPU float sums depend on how work is split.
        parameters.put(gn.orchestration, {"backend": backend, "threads_per_worker": 1})
        parameters.put(gn.training, {"group_size": group_size, "device": "cpu"})
        parameters.put("evolution", {"mutation_rate": 0.1})
        selection = Selection(parameters=parameters)
        seen: list[Outcome] = []
        run = gn.evolve(layers, 2, task, selection=selection, seed=5, candidate_hooks=[seen.append])
        assert run.join(PATIENCE) and run.status().state == "finished"
        assert run.status().failed == 0
        archives[backend] = selection.elites()
        outcomes[backend] = sorted(seen, key=lambda o: (o.candidate.generation, o.candidate.index))
    local, remote = archives["threads"], archives["processes"]
    assert local and sorted(local) == sorted(remote)
    for level, network in local.items():
        other = remote[level]
        assert (network.layers, network.val_acc, network.test_acc, network.loss) == (
            other.layers,
            other.val_acc,
            other.test_acc,
            other.loss,
        )
        assert (network.parent_id is None) == (other.parent_id is None)
        assert network.weights is not None and other.weights is not None
        assert network.weights.keys() == other.weights.keys()
        assert all(torch.equal(network.weights[k], other.weights[k]) for k in network.weights)
    assert [(o.group_size, o.padded_share) for o in outcomes["processes"]] == [
        (o.group_size, o.padded_share) for o in outcomes["threads"]
    ]
    assert max(o.group_size for o in outcomes["processes"]) == group_size
    # Trained in the workers, each candidate's line was emitted on this process's logger.
    lines = [r for r in caplog.records if r.getMessage().startswith("Epoch 0. Loss:")]
    assert all(r.name == "galapagos_nao.candidates" for r in lines)
    assert len(lines) == 2 * len(outcomes["processes"])  # once per backend


def test_a_worker_killed_mid_unit_fails_its_candidate_and_the_next_unit_gets_a_fresh_one(
    small_mnist, evaluator
):
    parameters = processes_parameters(workers=2, threads_per_worker=1)
    parameters.put(gn.training, {"epochs": 2000})  # minutes, unless something ends it
    job = job_for(small_mnist, parameters)
    units = [candidate(0, seed_layers()), candidate(1, seed_layers(), seed=8)]
    finished: list[Outcome] = []
    driver = threading.Thread(target=lambda: finished.extend(evaluator.evaluate(units, job)))
    driver.start()
    # Training, once a worker has used more CPU than starting and taking the data in.
    busy = wait_for(
        lambda: [p for p in worker_processes() if sum(p.cpu_times()[:2]) > 6.0],
        "a worker process deep in training",
    )
    victim = busy[0]
    os.kill(victim.pid, signal.SIGKILL)
    wait_for(lambda: finished, "the killed worker's candidate to fail")
    [first] = finished
    assert first.failure is not None and "was killed by signal 9" in first.failure
    job.stop_event.set()  # the other one ends now, as stopped
    driver.join(PATIENCE)
    second = finished[1]
    assert second.stopped and second.candidate.index != first.candidate.index
    # The evaluator goes on: the next unit trains in a fresh process.
    parameters.put(gn.training, {"epochs": 1})
    [again] = list(
        evaluator.evaluate([candidate(0, seed_layers())], job_for(small_mnist, parameters))
    )
    assert again.network is not None and again.network.val_acc is not None
    assert victim.pid not in [p.pid for p in worker_processes()]


def test_a_frozen_worker_is_killed_at_the_deadline_and_its_candidate_fails(small_mnist, evaluator):
    parameters = processes_parameters(workers=1, timeout=2.0)
    job = job_for(small_mnist, parameters)
    [warm] = list(evaluator.evaluate([candidate(0, [("dense", [8, "relu"])])], job))
    assert warm.network is not None  # the worker has started and holds the data
    [worker] = worker_processes()
    parameters.put(gn.training, {"epochs": 2000})
    job = EvaluationJob(small_mnist, parameters.settings(), job.stop_event, job.data_cache)
    threading.Timer(0.5, os.kill, (worker.pid, signal.SIGSTOP)).start()  # frozen mid-unit
    started = time.monotonic()
    [frozen] = list(evaluator.evaluate([candidate(1, seed_layers())], job))
    assert frozen.failure is not None and "its worker process was killed" in frozen.failure
    assert time.monotonic() - started < 30.0
    wait_for(lambda: not psutil.pid_exists(worker.pid) or worker.status() == "zombie", "the kill")


def test_a_candidate_over_its_timeout_fails_as_on_threads(small_mnist, evaluator):
    reasons = {}
    for backend in ("threads", "processes"):
        parameters = backend_parameters(backend, timeout=0.5)
        parameters.put(gn.training, {"epochs": 2000})
        made = evaluator if backend == "processes" else make_evaluator(parameters)
        try:
            [outcome] = list(
                made.evaluate([candidate(0, seed_layers())], job_for(small_mnist, parameters))
            )
        finally:
            if made is not evaluator:
                made.close()
        assert outcome.failure is not None
        reasons[backend] = outcome.failure
    assert "exceeded its timeout" in reasons["processes"]
    assert reasons["processes"].split(" after")[0] == reasons["threads"].split(" after")[0]


def test_a_layer_type_registered_here_trains_on_a_thread_and_says_so(
    small_mnist, monkeypatch, caplog
):
    caplog.set_level(logging.INFO, logger="galapagos_nao")
    monkeypatch.setattr(genome, "_registry", dict(genome.layer_types()))  # undone after the test
    genome.register_layer("processes_test_identity", [], lambda params, n: ([nn.Identity()], n))
    selection = Selection(parameters=processes_parameters(generation_size=2))
    layers = [("dense", [16, "relu"]), ("processes_test_identity", [])]
    run = gn.evolve(layers, 1, small_mnist, selection=selection, seed=2)
    assert run.join(PATIENCE) and run.status().state == "finished"
    assert run.status().failed == 0 and selection.elites()
    said = [r.getMessage() for r in caplog.records if "not in a worker process" in r.getMessage()]
    assert said == [
        "Trained on a worker thread, not in a worker process: "
        "layer type 'processes_test_identity' is registered in this process only"
    ]


def test_workers_ignore_the_terminals_ctrl_c_and_end_with_their_parent(tmp_path):
    script = tmp_path / "parent.py"
    script.write_text(
        textwrap.dedent(
            f"""
            import os, sys, threading
            sys.path.insert(0, {os.getcwd()!r})
            from galapagos_nao.config.parameters import Parameters
            from galapagos_nao.core import datasets
            from galapagos_nao.core.training import DeviceDataCache
            from galapagos_nao.run.processes import ProcessEvaluator
            from galapagos_nao.run.records import Candidate, EvaluationJob
            task = datasets.subset(datasets.bundled_mnist(), 500, 100, seed=0)
            job = EvaluationJob(task, Parameters().settings(), threading.Event(), DeviceDataCache())
            layers = (("dense", [8, "relu"]),)
            [outcome] = ProcessEvaluator().evaluate([Candidate(0, 0, layers, 1)], job)
            assert outcome.network is not None, outcome
            print("trained", flush=True)
            sys.stdin.readline()
            os._exit(0)  # no close(): the worker must notice on its own
            """
        )
    )
    parent = subprocess.Popen(
        [sys.executable, str(script)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert parent.stdout is not None and parent.stdout.readline() == "trained\n"
        [worker] = worker_processes(parent.pid)
        assert os.getsid(worker.pid) != os.getsid(parent.pid)  # out of the terminal's reach
        worker.send_signal(signal.SIGINT)  # as Ctrl-C would: ignored
        time.sleep(0.5)
        assert worker.is_running() and worker.status() != "zombie"
        parent.communicate("\n", timeout=PATIENCE)
        worker.wait(timeout=PATIENCE)  # ends once it sees its parent gone
    finally:
        parent.kill()


def test_a_new_validation_share_reaches_a_running_worker(small_mnist, evaluator):
    layers = [("dense", [16, "relu"])]
    by_share: dict[float, list[float]] = {}
    for share in (0.1, 0.3):  # the same worker process trains both
        parameters = processes_parameters(workers=1, threads_per_worker=1)
        parameters.put(gn.training, {"validation_fraction": share})
        threads = make_evaluator(backend_parameters("threads", threads_per_worker=1))
        try:
            pair = [
                next(iter(made.evaluate([candidate(0, layers)], job_for(small_mnist, parameters))))
                for made in (evaluator, threads)
            ]
        finally:
            threads.close()
        assert all(o.network is not None for o in pair)
        by_share[share] = [o.network.val_acc for o in pair]  # type: ignore[union-attr]
    assert by_share[0.1][0] == by_share[0.1][1] and by_share[0.3][0] == by_share[0.3][1]
    assert by_share[0.1] != by_share[0.3]
    assert len(worker_processes()) == 1


def test_a_second_run_starts_in_the_sessions_processes_and_idle_ones_end(small_mnist):
    pool = WorkerPool(idle_seconds=2.0)
    parameters = processes_parameters(generation_size=2, workers=2)
    seen = []
    for seed in (1, 2):
        run = gn.evolve(
            seed_layers(),
            1,
            small_mnist,
            selection=Selection(parameters=parameters),
            seed=seed,
            evaluator=ProcessEvaluator(pool),
        )
        assert run.join(PATIENCE) and run.status().state == "finished"
        assert run.status().evaluated == 2
        seen.append({p.pid for p in worker_processes()})
    assert len(seen[0]) == 2 and seen[1] == seen[0]  # the second run started none
    wait_for(lambda: not worker_processes(), "the idle processes to end", 30.0)
    assert pool.workers() == 0


def test_no_more_worker_processes_start_than_half_the_memory_holds():
    mib = 1 << 20
    each = WORKER_BASE_BYTES + 219 * mib
    assert processes_that_fit(8, 219 * mib, 100 * each) == 8
    assert processes_that_fit(8, 219 * mib, 5 * each) == 2  # half of it: 2.5 processes
    assert processes_that_fit(8, 219 * mib, mib) == 1  # one always, as with threads
    assert processes_that_fit(8, 219 * mib, None) == 8  # the machine does not say


def test_the_evaluator_cuts_its_workers_to_the_memory_and_says_so_once(caplog):
    caplog.set_level(logging.WARNING, logger="galapagos_nao")
    available = available_memory(torch.device("cpu"))
    if available is None:
        pytest.skip("this machine does not say how much memory is available")
    made = ProcessEvaluator(WorkerPool())
    made._data_bytes = available  # data as large as the free memory: one process fits
    orchestration = processes_parameters(workers=2).settings().orchestration
    try:
        for _ in range(2):
            workers, _threads = made._workers(4, [torch.device("cpu")], orchestration)
            assert workers == 1
    finally:
        made.close()
    said = [r.getMessage() for r in caplog.records if "worker processes" in r.getMessage()]
    assert len(said) == 1 and said[0].startswith("orchestration.workers cut from 2 to 1")


def test_a_workers_start_is_not_counted_in_its_first_candidates_timeout(tiny_task, evaluator):
    # Importing torch takes a fresh process seconds; the candidate trains in milliseconds.
    parameters = processes_parameters(workers=1, timeout=0.3)
    job = job_for(tiny_task, parameters)
    [outcome] = list(evaluator.evaluate([candidate(0, [("dense", [4, "relu"])])], job))
    assert outcome.failure is None and outcome.network is not None


def test_where_pipes_cannot_be_waited_on_the_backend_is_refused_naming_it(monkeypatch):
    parameters = Parameters()
    monkeypatch.setattr(os, "name", "nt")  # Windows, which this machine cannot be
    with pytest.raises(ValueError, match="backend 'processes' needs Linux or macOS"):
        parameters.put(gn.orchestration, {"backend": "processes"})
    assert parameters.settings().orchestration.backend == "threads"
