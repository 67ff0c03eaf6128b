"""The prompt stays the user's: Ctrl-C while waiting, a second start, bad generations, devices."""

from __future__ import annotations

import logging
import os
import signal
import threading
import time

import pytest
import torch

import galapagos_nao as gn
from galapagos_nao.archive.selection import Selection
from galapagos_nao.config.parameters import Parameters
from galapagos_nao.core import datasets
from galapagos_nao.core.extras import MISSING_RAY
from galapagos_nao.example import seed_layers
from galapagos_nao.run.failures import GenerationsFailing

STILL_RUNNING = "still running — run.stop() stops it"


@pytest.fixture
def selection() -> Selection:
    parameters = Parameters()
    parameters.put(gn.orchestration, {"generation_size": 2})
    return Selection(parameters=parameters)


@pytest.fixture
def tiny(small_mnist) -> datasets.Task:
    return datasets.subset(small_mnist, 600, 200, seed=0)


def press_ctrl_c_in(seconds: float) -> threading.Timer:
    """A real SIGINT to this process after ``seconds``: Python raises it in the main thread."""
    timer = threading.Timer(seconds, os.kill, (os.getpid(), signal.SIGINT))
    timer.start()
    return timer


def wait_until(predicate, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline
        time.sleep(0.02)


@pytest.mark.parametrize("progress", [False, True])
def test_ctrl_c_while_waiting_prints_one_line_and_leaves_the_handle_working(
    selection, tiny, capsys, progress
):
    run = gn.evolve_continual(seed_layers(), tiny, selection=selection)
    hooks_before = (list(run.hooks), list(run.candidate_hooks))
    try:
        press_ctrl_c_in(0.5)
        assert run.wait(progress=progress) is False
        assert capsys.readouterr().err.rstrip().endswith(STILL_RUNNING)
        assert not run.done() and run.status().state == "running"
        assert (run.hooks, run.candidate_hooks) == hooks_before  # the bars' counters are gone
        # Waiting still waits: a timeout runs out while the run goes on.
        started = time.monotonic()
        assert run.join(0.3) is False and time.monotonic() - started >= 0.25
        wait_until(lambda: run.status().completed >= 1)  # and it keeps evolving
    finally:
        run.stop()
    assert run.join(60) is True
    assert run.status().state == "stopped" and run.done()


def test_ctrl_c_after_the_end_is_no_news(selection, tiny, capsys):
    run = gn.evolve(seed_layers(), 1, tiny, selection=selection)
    assert run.join(120)
    assert run.join() is True and STILL_RUNNING not in capsys.readouterr().err


def test_starting_a_run_twice_says_what_to_do_instead(selection, tiny):
    run = gn.evolve(seed_layers(), 1, tiny, selection=selection)
    with pytest.raises(RuntimeError, match=r"already started; a run runs once.*gn\.evolve"):
        run.start()
    assert run.join(120) and run.status().state == "finished"
    with pytest.raises(RuntimeError, match="already started"):
        run.start()


def test_a_stopped_run_logs_nothing_more(selection, tiny, caplog):
    caplog.set_level(logging.INFO, logger="galapagos_nao")
    run = gn.evolve_continual(seed_layers(), tiny, selection=selection)
    wait_until(lambda: run.status().completed >= 1)
    run.stop()
    stopped_at = len(caplog.records)
    assert run.join(60)
    later = [r.getMessage() for r in caplog.records[stopped_at:]]
    assert not [m for m in later if m.startswith("Generations remaining")]
    # At most the summary of the generation in flight, if it completed before the stop landed.
    assert len([m for m in later if m.startswith("Generation ")]) <= 1


def test_a_generation_where_every_candidate_fails_keeps_its_parents_and_tries_again(
    selection, tiny, caplog
):
    caplog.set_level(logging.INFO, logger="galapagos_nao")
    parameters = selection.parameters
    parameters.put(gn.orchestration, {"timeout": 1e-6})

    def mend_the_timeout(outcome) -> None:  # the user fixes the setting mid-run
        if outcome.failure is not None:
            parameters.put(gn.orchestration, {"timeout": 300})

    run = gn.evolve(seed_layers(), 1, tiny, selection=selection, candidate_hooks=[mend_the_timeout])
    assert run.join(120)
    status = run.status()
    assert (status.state, status.completed, status.failed, status.evaluated) == (
        "finished",
        1,
        2,
        2,
    )
    assert selection.elites()  # the seed genome was not consumed by the failed attempt
    failed = [r for r in caplog.records if "candidates failed" in r.getMessage()]
    assert len(failed) == 1 and failed[0].levelno == logging.WARNING
    assert "all 2 candidates failed (training exceeded its timeout" in failed[0].getMessage()
    assert (
        "(×2)); 1 of 3 such generations in a row; trying again in 0.5 s" in failed[0].getMessage()
    )


def test_generations_failing_in_a_row_stop_the_run_naming_the_cause(selection, tiny, caplog):
    selection.parameters.put(gn.orchestration, {"timeout": 1e-6, "max_failed_generations": 2})
    run = gn.evolve(seed_layers(), 3, tiny, selection=selection)
    assert run.join(120)
    status = run.status()
    assert (status.state, status.completed, status.failed) == ("failed", 0, 4)
    with pytest.raises(GenerationsFailing, match=r"2 of 2 such generations in a row"):
        run.result()
    assert len(selection.queued()) == 1  # the starting network is still there to retry
    # The cause is said once per generation, not once per candidate, and with no traceback.
    messages = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(messages) == 2 and all(r.exc_info is None for r in messages)


def test_a_partly_failed_generation_sums_its_failures_up_in_one_line(selection, tiny, caplog):
    caplog.set_level(logging.INFO, logger="galapagos_nao")
    selection.parameters.put(gn.evolution, {"mutation_rate": 0.0})  # children = their parents
    # About 200 MB to train (weights, gradients, Adam's moments, evaluation's activations):
    # storable, and over a 100 MB training.max_memory, so dropped before it is built.
    selection.parameters.put(gn.training, {"max_memory": "100MB"})
    too_big = [("dense", [2000, "relu"]), ("dense", [2000, "relu"])]
    fits = [("dense", [8, "relu"])]
    run = gn.evolve([too_big, fits, too_big, too_big], 1, tiny, selection=selection)
    assert run.join(120) and run.status().state == "finished"
    dropped = [r for r in caplog.records if "dropped" in r.getMessage()]
    assert len(dropped) == 1 and dropped[0].levelno == logging.WARNING
    message = dropped[0].getMessage()
    assert message.startswith("Generation 0: 3 of 4 candidates dropped: ")
    assert "over training.max_memory" in message and message.endswith("(×3)")
    messages = [r.getMessage() for r in caplog.records]
    [summary] = [m for m in messages if m.startswith("Generation 0 (this run 1/1)")]
    assert summary.startswith("Generation 0 (this run 1/1): 1 evaluated, 3 failed, best val_acc 0.")
    assert "coverage 1/2" in summary


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_a_device_this_machine_lacks_is_refused_when_it_is_set():
    parameters = Parameters()
    for device in ("cuda", "cuda:1"):
        with pytest.raises(ValueError) as refused:
            parameters.put(gn.training, {"device": device})
        assert str(refused.value) == (
            f"training.device: {device!r} is not available on this machine; "
            "available: ['auto', 'cpu']"
        )
    with pytest.raises(ValueError, match="'cuda:N'"):
        parameters.put(gn.training, {"device": "cuda:abc"})
    assert parameters.get(gn.training, "device") == "auto"


def test_a_ray_cluster_may_have_the_gpus_this_machine_lacks():
    parameters = Parameters()
    try:
        parameters.put(gn.orchestration, {"backend": "ray"})
    except ImportError as missing:
        assert str(missing) == MISSING_RAY
        pytest.skip("needs the ray extra")
    parameters.put(gn.training, {"device": "cuda"})
    assert parameters.get(gn.training, "device") == "cuda"


def test_ctrl_c_in_result_prints_one_line_and_returns_the_elites_so_far(selection, tiny, capsys):
    run = gn.evolve_continual(seed_layers(), tiny, selection=selection)
    try:
        wait_until(lambda: run.status().completed >= 1, timeout=120)
        press_ctrl_c_in(0.3)
        elites = run.result()  # a continual run: this would wait until run.stop()
        err = capsys.readouterr().err
        assert err.rstrip().splitlines()[-1] == (
            "still running — these are the elites so far; run.stop() stops it, "
            "run.result() waits again"
        )
        assert "Traceback" not in err and elites and not run.done()
        assert set(elites) <= set(selection.elites()) | set(run.selection.elites())
    finally:
        run.stop()
    assert run.result(60) == selection.elites()  # after the stop it returns as before
    assert run.status().state == "stopped"
