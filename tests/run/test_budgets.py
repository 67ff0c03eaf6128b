"""Budgets before allocation (issue 22, finding 6).

A genome within every format limit can need more memory than the machine has
(a 20,000-unit layer, then 1,500 layers: about 61 GB of activations at batch
512), and accepted settings could ask for 262,144 threads. The memory a
candidate needs is estimated from its genome before anything is allocated and
compared with ``training.max_memory``; ``workers × threads_per_worker`` is cut
to what this machine can run. Real runs, real estimates, no mocks.
"""

from __future__ import annotations

import logging
import resource
import threading

import pytest
import torch

import galapagos_nao as gn
from benchmarks.genomes import BENCH_GENOMES
from galapagos_nao.archive.selection import Selection
from galapagos_nao.config.parameters import Parameters
from galapagos_nao.core import budget
from galapagos_nao.core.budget import estimate_training_memory
from galapagos_nao.core.network import Network, build
from galapagos_nao.run.devices import usable_cores
from galapagos_nao.run.limits import THREADS_PER_CORE, bound_threads, memory_budget
from galapagos_nao.run.records import Outcome

#: The finding's genome: 38 kB on disk, within every format limit.
HUGE = [("dense", [20_000, "relu"])] + [("batch_norm", [])] * 1_500
SMALL = [("dense", [8, "relu"])]


def test_the_estimate_follows_the_genome_batch_and_input():
    at_512 = estimate_training_memory(HUGE, (4,), 2, 512)
    # 1,500 batch-norm outputs of 20,000 values kept for backward: 61.4 GB at batch 512.
    assert 60e9 < at_512.activations < 63e9, at_512.describe()
    at_256 = estimate_training_memory(HUGE, (4,), 2, 256)
    assert at_256.activations == pytest.approx(at_512.activations / 2, rel=0.01)
    small = estimate_training_memory(SMALL, (1, 28, 28), 10, 512)
    assert small.total < 100e6 and small.parameters == (784 * 8 + 8 + 8 * 10 + 10) * 16
    assert small.times(4).total == 4 * small.total


@pytest.mark.parametrize(
    "layers",
    [SMALL, HUGE[:4], gn.example.seed_layers(), gn.example.conv_layers()]
    + [list(g) for g in BENCH_GENOMES.values()],
)
def test_declared_sizes_are_what_a_forward_pass_on_meta_measures(layers):
    shape = (1, 28, 28)
    with torch.device("meta"):
        model = build(layers, shape, 10)
    assert budget._declared_sizes(model, layers, shape, 10) == budget._forward_sizes(model, shape)


@pytest.mark.parametrize("group_size", [1, 2])
@pytest.mark.parametrize("max_memory", ["auto", "8GB"])
def test_a_candidate_over_the_memory_budget_is_dropped_before_training(
    wide_task, caplog, group_size, max_memory
):
    caplog.set_level(logging.WARNING, logger="galapagos_nao")
    parameters = Parameters()
    parameters.put("evolution", {"mutation_rate": 0.0, "max_layers": None})  # children = parents
    parameters.put("orchestration", {"generation_size": 2})
    training = {"device": "cpu", "batch_size": 512, "group_size": group_size}
    parameters.put("training", {**training, "max_memory": max_memory})
    selection = Selection(parameters=parameters)
    budget = memory_budget(parameters.get("training")["max_memory"], torch.device("cpu"), 1)
    assert (
        budget is not None and budget < 61e9
    )  # true of this machine: else the test proves nothing
    outcomes: list[Outcome] = []
    peak_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    nets = [
        Network(HUGE, input_shape=(4,), n_classes=2),
        Network(SMALL, input_shape=(4,), n_classes=2),
    ]
    run = gn.evolve(
        nets, 1, wide_task, selection=selection, seed=0, candidate_hooks=[outcomes.append]
    )
    assert run.join(300), repr(run)
    status = run.status()
    assert (status.state, status.failed, status.evaluated) == ("finished", 1, 1), (status, outcomes)
    [failure] = [o.failure for o in outcomes if o.failure]
    assert failure.startswith("needs about 6") and "activations 61.6 GB at batch 512" in failure
    assert "over training.max_memory" in failure
    assert any("over training.max_memory" in r.getMessage() for r in caplog.records)
    grew = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - peak_before
    assert grew < 2e9, f"the process grew by {grew / 1e9:.1f} GB: memory was spent first"


def test_max_memory_is_checked_when_put():
    parameters = Parameters()
    for given, stored in [("8GB", 8 * 10**9), ("512MiB", 2**29), (10**9, 10**9), ("auto", "auto")]:
        parameters.put("training", {"max_memory": given})
        assert parameters.get("training")["max_memory"] == stored
    for bad in ["lots", "-1GB", "0", 0, -5, 10**16, True, 1.5e9, "8 parsecs", float("nan")]:
        with pytest.raises(ValueError, match="training.max_memory"):
            parameters.put("training", {"max_memory": bad})
        assert parameters.get("training")["max_memory"] == "auto"  # unchanged


def test_workers_times_threads_is_cut_to_what_the_machine_runs():
    workers, threads, message = bound_threads(1024, 256, cores=2)
    assert workers * threads <= THREADS_PER_CORE * 2
    assert message is not None
    assert "orchestration.workers=1024" in message
    assert "orchestration.threads_per_worker=256" in message
    assert "262,144 threads" in message
    assert bound_threads(2, 1, cores=2) == (2, 1, None)


def test_a_run_with_the_largest_accepted_settings_runs_within_the_bound(tiny_task, caplog):
    caplog.set_level(logging.WARNING, logger="galapagos_nao")
    parameters = Parameters()
    parameters.put("orchestration", {"workers": 1024, "threads_per_worker": 256})
    parameters.put("orchestration", {"generation_size": 8})
    parameters.put("training", {"device": "cpu"})
    selection = Selection(parameters=parameters)
    seen: list[int] = []

    def workers_now() -> int:
        return sum(t.name.startswith("gn-worker") for t in threading.enumerate())

    before = workers_now()  # threads other tests left behind, if any

    def count_workers(outcome: Outcome) -> None:
        seen.append(workers_now() - before)

    run = gn.evolve(
        [Network(SMALL, input_shape=(4,), n_classes=2)],
        2,
        tiny_task,
        selection=selection,
        seed=0,
        candidate_hooks=[count_workers],
    )
    assert run.join(120), repr(run)
    assert run.status().state == "finished" and run.status().evaluated == 16
    cut = [
        r.getMessage() for r in caplog.records if "more than this machine can run" in r.getMessage()
    ]
    assert len(cut) == 1, cut  # said once, not every generation
    assert "orchestration.workers=1024" in cut[0]
    # Within the bound, far below 1,024 (other tests' idle workers may come and go).
    assert max(seen) <= THREADS_PER_CORE * usable_cores()
