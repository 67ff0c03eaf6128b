"""The Ray backend against a real local Ray cluster (2 CPUs, started once for this module).

Everything but the missing-extra path is skipped, with the reason, where the
``ray`` extra is not installed; CI installs it.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
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
from galapagos_nao.run.local import LocalEvaluator
from galapagos_nao.run.ray import driver
from galapagos_nao.run.records import Outcome

HAS_RAY = importlib.util.find_spec("ray") is not None
NO_RAY = "Ray is not installed: pip install 'galapagos-nao[ray]' (CI installs it)"

pytestmark = pytest.mark.ray


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def port_open(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture(scope="module")
def ray_head(tmp_path_factory: pytest.TempPathFactory) -> Iterator[subprocess.Popen[bytes]]:
    """A real local Ray cluster with 2 CPUs, started with ``ray start --head`` as users do.

    The library joins it through ``RAY_ADDRESS``, so every test here also checks
    that joining works and that runs leave a cluster they did not start running.
    """
    if not HAS_RAY:
        pytest.skip(NO_RAY)
    port = free_port()
    log = (tmp_path_factory.mktemp("ray_head") / "head.log").open("wb")
    with pytest.MonkeyPatch.context() as patch:
        # Token authentication on both sides, as a real cluster has it; the token
        # travels in the environment so that no file in the home folder is needed.
        patch.setenv("RAY_AUTH_MODE", "token")
        patch.setenv("RAY_AUTH_TOKEN", secrets.token_hex(32))
        patch.setenv("RAY_ADDRESS", f"127.0.0.1:{port}")
        command = [str(Path(sys.executable).parent / "ray"), "start", "--head", "--block"]
        command += [f"--port={port}", "--num-cpus=2", "--include-dashboard=false"]
        command += ["--disable-usage-stats"]
        # --block: the head lives as long as this process; ending it stops its cluster.
        head = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        try:
            wait_for(lambda: port_open(port) or head.poll() is not None, "the Ray head")
            assert head.poll() is None, f"ray start failed, see {log.name}"
            assert driver.connect() == "joined"
            yield head
        finally:
            driver.disconnect()
            head.terminate()
            try:
                head.wait(60)
            except subprocess.TimeoutExpired:
                head.kill()
                head.wait(10)
            log.close()


@pytest.fixture(scope="module")
def ray_cluster(ray_head: subprocess.Popen[bytes]) -> Any:
    """The ``ray`` module, connected to :func:`ray_head`."""
    import ray

    return ray


@pytest.fixture(scope="module")
def comparison_task(small_mnist: gn.datasets.Task) -> gn.datasets.Task:
    """600/200 of ``small_mnist``: same bits on both backends or not does not hang on the size."""
    return gn.datasets.subset(small_mnist, 600, 200)


def ray_parameters(**orchestration: Any) -> Parameters:
    return backend_parameters("ray", **orchestration)


def candidate_processes() -> list[psutil.Process]:
    """Ray worker processes busy with a candidate (Ray titles them ``ray::<task name>``)."""
    busy = []
    for process in psutil.process_iter(["cmdline"]):
        title = " ".join(process.info["cmdline"] or [])
        if title.startswith(f"ray::{driver.TASK_NAME}"):
            busy.append(process)
    return busy


def messages(caplog: pytest.LogCaptureFixture, text: str) -> list[str]:
    return [r.getMessage() for r in caplog.records if text in r.getMessage()]


# -- the missing extra (runs everywhere) -----------------------------------------------


def test_choosing_ray_without_the_extra_raises_naming_it_and_changes_nothing(monkeypatch):
    parameters = Parameters()
    monkeypatch.setitem(sys.modules, "ray", None)  # what an environment without Ray sees
    with pytest.raises(ImportError, match=r"galapagos-nao\[ray\]"):
        parameters.put(gn.orchestration, {"backend": "ray", "num_cpus": 2})
    assert parameters.get(gn.orchestration, "backend") == "threads"
    assert parameters.get(gn.orchestration, "num_cpus") == 1
    with pytest.raises(ImportError, match=r"galapagos-nao\[ray\]"):
        driver.RayEvaluator()


@pytest.mark.skipif(not HAS_RAY, reason=NO_RAY)
def test_a_run_on_ray_without_the_extra_fails_with_the_extra_named(monkeypatch, small_mnist):
    parameters = ray_parameters()  # chosen while Ray was there, e.g. a resumed session
    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(ImportError, match=r"galapagos-nao\[ray\]"):
        make_evaluator(parameters)
    run = gn.evolve(
        seed_layers(), 1, small_mnist, selection=Selection(parameters=parameters), seed=0
    )
    assert run.join(PATIENCE)
    assert run.status().state == "failed"
    with pytest.raises(ImportError, match=r"galapagos-nao\[ray\]"):
        run.result()


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("backend", "dask"),
        ("ray_address", ""),
        ("ray_address", 6379),
        ("num_cpus", 0),
        ("num_gpus", -0.5),
        ("num_gpus", 1.5),
        ("max_retries", -1),
        ("max_retries", 1.0),
    ],
)
def test_bad_cluster_settings_are_refused_naming_key_and_value(key, value):
    parameters = Parameters()
    before = parameters.snapshot()
    with pytest.raises(ValueError, match=rf"orchestration\.{key}.*{value!r}"):
        parameters.put(gn.orchestration, {key: value})
    assert parameters.snapshot() == before


def test_the_default_backend_is_local_threads():
    assert isinstance(make_evaluator(Parameters()), LocalEvaluator)


# -- against a real local Ray ---------------------------------------------------------------


def test_short_evolution_on_ray_trains_on_the_workers_and_logs_here(
    ray_cluster, small_mnist, caplog
):
    caplog.set_level(logging.INFO, logger="galapagos_nao")
    parameters = ray_parameters()
    selection = Selection(parameters=parameters)
    run = gn.evolve(seed_layers(), 2, small_mnist, selection=selection, seed=1)
    assert run.join(PATIENCE)
    status = run.status()
    assert (status.state, status.completed, status.evaluated, status.failed) == (
        "finished",
        2,
        8,
        0,
    )
    # Training ran in other processes, yet each candidate's line reached this logger.
    assert len(messages(caplog, "Epoch 0. Loss:")) == 8
    elites = selection.elites()
    assert elites
    for network in elites.values():
        assert network.weights is not None
        assert all(t.device.type == "cpu" for t in network.weights.values())
        assert network.val_acc is not None and network.val_acc > 0.5  # chance is 0.1
        assert network.predict(small_mnist.x_test[:5]).shape == (5,)
    assert ray_cluster.is_initialized()  # a Ray it did not start is left running


def test_only_the_user_types_a_genome_uses_travel_to_the_workers():
    from galapagos_nao.run.ray.worker import custom_layer_types

    lock = threading.Lock()  # no process can receive it: this type must stay here

    def locked(params, in_features):
        with lock:
            return [nn.Identity()], in_features

    genome.register_layer("test_locked_identity", [], locked)
    built_in = [("conv2d", [4, 3, "relu"]), ("max_pool", [2]), ("dense", [8, "relu"])]
    assert custom_layer_types([seed_layers(), built_in]) == ()
    (shipped,) = custom_layer_types([[("test_locked_identity", [])], built_in])
    assert shipped.name == "test_locked_identity"
    assert all(not genome.is_builtin(t) for t in custom_layer_types())


def test_a_cnn_evolves_on_ray_workers_like_on_threads(ray_cluster, comparison_task):
    cnn = [("conv2d", [4, 3, "relu"]), ("max_pool", [2]), ("dense", [16, "relu"])]
    archives = {}
    for backend in ("threads", "ray"):
        parameters = Parameters()
        parameters.put(gn.orchestration, {"backend": backend, "threads_per_worker": 1})
        parameters.put("evolution", {"mutation_rate": 0.05})  # children keep their conv layer
        selection = Selection(parameters=parameters)
        run = gn.evolve(cnn, 1, comparison_task, selection=selection, seed=9)
        assert run.join(PATIENCE) and run.status().state == "finished"
        archives[backend] = selection.elites()
    assert archives["ray"] and sorted(archives["ray"]) == sorted(archives["threads"])
    for level, network in archives["ray"].items():
        local = archives["threads"][level]
        assert (network.layers, network.val_acc) == (local.layers, local.val_acc)
        assert any(w.dim() == 4 for w in network.weights.values())  # conv kernels came back


def test_a_seeded_run_gives_the_same_archive_with_either_backend(ray_cluster, comparison_task):
    archives = {}
    for backend in ("threads", "ray"):
        parameters = Parameters()
        # One intra-op thread in both: CPU float sums depend on how work is split.
        parameters.put(gn.orchestration, {"backend": backend, "threads_per_worker": 1})
        selection = Selection(parameters=parameters)
        run = gn.evolve(seed_layers(), 2, comparison_task, selection=selection, seed=5)
        assert run.join(PATIENCE) and run.status().state == "finished"
        archives[backend] = selection.elites()
    local, remote = archives["threads"], archives["ray"]
    assert sorted(local) == sorted(remote)
    for level, network in local.items():
        other = remote[level]
        assert (network.layers, network.val_acc, network.test_acc, network.loss) == (
            other.layers,
            other.val_acc,
            other.test_acc,
            other.loss,
        )
        assert network.weights is not None and other.weights is not None
        assert network.weights.keys() == other.weights.keys()
        assert all(torch.equal(network.weights[k], other.weights[k]) for k in network.weights)


def test_groups_train_as_whole_tasks_like_groups_on_threads(ray_cluster, comparison_task):
    """With a group size above 1 each Ray task trains a stacked group (a GPU worker's job)."""
    outcomes: dict[str, list[Outcome]] = {}
    for backend in ("threads", "ray"):
        parameters = Parameters()
        parameters.put(gn.orchestration, {"backend": backend, "generation_size": 4})
        parameters.put(gn.training, {"group_size": 2, "device": "cpu"})
        seen: list[Outcome] = []
        run = gn.evolve(
            seed_layers(),
            1,
            comparison_task,
            selection=Selection(parameters=parameters),
            seed=3,
            candidate_hooks=[seen.append],
        )
        assert run.join(PATIENCE) and run.status().state == "finished"
        outcomes[backend] = sorted(seen, key=lambda o: o.candidate.index)
    local, remote = outcomes["threads"], outcomes["ray"]
    assert [o.group_size for o in remote] == [o.group_size for o in local]
    assert max(o.group_size for o in remote) == 2
    for mine, theirs in zip(local, remote, strict=True):
        assert mine.network is not None and theirs.network is not None
        assert theirs.padded_share == mine.padded_share
        assert (mine.network.val_acc, mine.network.loss) == (
            theirs.network.val_acc,
            theirs.network.loss,
        )


def test_a_task_that_raises_is_retried_then_dropped_as_locally(ray_cluster, small_mnist, caplog):
    # Each dropped candidate's own line is DEBUG; the generation sums failures up at WARNING.
    caplog.set_level(logging.DEBUG, logger="galapagos_nao")
    parameters = ray_parameters(max_retries=1)
    # Candidates are trusted records: a bad genome only fails when the worker builds it.
    broken = [("dense", [-3, "relu"])]
    candidates = [candidate(0, [("dense", [16, "relu"])]), candidate(1, broken)]
    evaluator = driver.RayEvaluator()
    try:
        outcomes = {
            o.candidate.index: o
            for o in evaluator.evaluate(candidates, job_for(small_mnist, parameters))
        }
    finally:
        evaluator.close()
    assert outcomes[0].network is not None
    assert outcomes[1].network is None and outcomes[1].failure is not None
    assert len(messages(caplog, "Candidate 1 of generation 0 failed on attempt 1 of 2")) == 1
    assert len(messages(caplog, "retrying")) == 1
    [dropped] = messages(caplog, "dropped")
    # The reason is the one the local backend gives for the same candidate.
    local: Outcome = next(
        LocalEvaluator().evaluate([candidates[1]], job_for(small_mnist, parameters))
    )
    assert outcomes[1].failure == local.failure
    assert local.failure is not None and local.failure in dropped and "ValueError" in dropped


def test_a_task_past_its_timeout_is_retried_then_dropped(ray_cluster, small_mnist, caplog):
    caplog.set_level(logging.INFO, logger="galapagos_nao")
    parameters = ray_parameters(timeout=0.001, max_retries=1)  # past it at the first batch
    evaluator = driver.RayEvaluator()
    try:
        [outcome] = evaluator.evaluate(
            [candidate(0, [("dense", [8, "relu"])])], job_for(small_mnist, parameters)
        )
    finally:
        evaluator.close()
    assert outcome.network is None and outcome.failure is not None
    assert outcome.failure.startswith("training exceeded its timeout")
    [retry] = messages(caplog, "retrying")
    assert "attempt 1 of 2 (training exceeded its timeout" in retry


def test_a_worker_killed_mid_task_is_retried_and_the_run_goes_on(ray_cluster, small_mnist, caplog):
    caplog.set_level(logging.INFO, logger="galapagos_nao")
    parameters = ray_parameters(generation_size=2)
    parameters.put(gn.training, {"epochs": 10})  # over a second: long enough to be caught training
    selection = Selection(parameters=parameters)
    # A task an earlier test gave up on may still be training in its worker: killing
    # that one would leave this run alone, so start only once every worker is free.
    wait_for(lambda: not candidate_processes(), "earlier tests' tasks to end")
    run = gn.evolve(seed_layers(), 1, small_mnist, selection=selection, seed=2)
    [victim, *_] = wait_for(candidate_processes, "a worker training a candidate")
    os.kill(victim.pid, signal.SIGKILL)
    assert run.join(PATIENCE)
    status = run.status()
    assert (status.state, status.evaluated, status.failed) == ("finished", 2, 0)
    [retry] = messages(caplog, "retrying")
    assert "WorkerCrashedError" in retry
    assert len(selection.elites()) >= 1


def test_stop_cancels_the_outstanding_tasks(ray_cluster, small_mnist):
    parameters = ray_parameters(generation_size=4)  # 2 training, 2 queued on 2 CPUs
    parameters.put(gn.training, {"epochs": 1000})  # minutes of training if nothing cancels it
    selection = Selection(parameters=parameters)
    run = gn.evolve_continual(seed_layers(), small_mnist, selection=selection, seed=3)
    wait_for(candidate_processes, "a worker training a candidate")
    run.stop()
    assert run.join(PATIENCE)
    assert run.status().state == "stopped"
    assert selection.elites() == {}  # an interrupted generation is not selected
    wait_for(lambda: not candidate_processes(), "the workers to drop their candidates")
    wait_for(lambda: ray_cluster.available_resources().get("CPU") == 2.0, "Ray to free both CPUs")


def test_layer_types_registered_here_reach_the_workers(ray_cluster, small_mnist, monkeypatch):
    monkeypatch.setattr(genome, "_registry", dict(genome.layer_types()))  # undone after the test
    genome.register_layer("ray_test_identity", [], lambda params, n: ([nn.Identity()], n))
    layers = [("dense", [16, "relu"]), ("ray_test_identity", [])]
    evaluator = driver.RayEvaluator()
    try:
        [outcome] = evaluator.evaluate(
            [candidate(0, layers)], job_for(small_mnist, ray_parameters())
        )
    finally:
        evaluator.close()
    assert outcome.failure is None and outcome.network is not None
    assert outcome.network.layers[1] == ("ray_test_identity", ())


@pytest.mark.parametrize(
    ("orchestration", "training", "reason"),
    [
        ({"num_cpus": 64}, {}, "orchestration.num_cpus is 64.0 but the largest Ray node has 2 CPU"),
        (
            {},
            {"device": "cuda"},
            "training.device is 'cuda' but orchestration.num_gpus is 0: Ray gives the task no GPU",
        ),
    ],
)
def test_a_request_no_node_can_host_is_dropped_at_once(
    ray_cluster, small_mnist, orchestration, training, reason
):
    parameters = ray_parameters(**orchestration)
    parameters.put(gn.training, training)
    evaluator = driver.RayEvaluator()
    try:
        outcomes = list(
            evaluator.evaluate(
                [candidate(0, [("dense", [8, "relu"])])], job_for(small_mnist, parameters)
            )
        )
    finally:
        evaluator.close()
    assert [o.failure for o in outcomes] == [reason]


def test_disconnecting_leaves_a_joined_cluster_running(ray_cluster, ray_head, small_mnist):
    driver.disconnect()
    assert not ray_cluster.is_initialized()
    assert ray_head.poll() is None  # this process left; the cluster it joined stays up
    assert driver.connect() == "joined"
    evaluator = driver.RayEvaluator()
    try:
        [outcome] = evaluator.evaluate(
            [candidate(0, [("dense", [8, "relu"])])], job_for(small_mnist, ray_parameters())
        )
    finally:
        evaluator.close()
    assert outcome.network is not None


def test_without_an_address_a_local_ray_is_started_with_the_cores_and_stays_quiet():
    if not HAS_RAY:
        pytest.skip(NO_RAY)
    script = """
import galapagos_nao as gn, ray
from galapagos_nao.core import datasets
from galapagos_nao.run.devices import usable_cores
from galapagos_nao.run.ray import driver
gn.Parameters.put(gn.orchestration, {"backend": "ray", "generation_size": 2})
task = datasets.subset(datasets.bundled_mnist(), 500, 200, seed=0)
run = gn.evolve([("dense", [16, "relu"])], 1, task, seed=0)
run.join()
status = run.status()
cpus = ray.cluster_resources()["CPU"]
print(status.state, status.evaluated, cpus == usable_cores())
driver.disconnect()
print(ray.is_initialized())
"""
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    done = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["finished", "2", "True", "False"]
    # Neither the library nor Ray printed from the run's background thread.
    assert done.stderr == ""
