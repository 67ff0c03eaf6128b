"""The fast evaluation engine: batches, optimizers, thread and device plans, and the bench's tools.

The GPU path is tested by construction: device plans, round-robin assignment,
worker counts and autocast selection are pure functions of what torch reports,
so they are exercised here with GPU counts given explicitly. Tests that need a
real GPU skip without one (``benchmarks/gpu.sh`` runs them on a GPU machine).
"""

from __future__ import annotations

import contextlib
import math
import sys
import threading
import warnings
from pathlib import Path

import pytest
import torch

from galapagos_nao.config.parameters import Parameters
from galapagos_nao.config.settings import TrainingSettings
from galapagos_nao.core import datasets
from galapagos_nao.core.device_data import split_validation
from galapagos_nao.core.training import (
    AUTO_BATCH_MAX,
    AUTO_BATCH_MIN,
    AUTO_MIN_STEPS,
    DeviceDataCache,
    autocast_for,
    batch_size_for,
    estimated_macs,
    fit,
    make_optimizer,
)
from galapagos_nao.example import seed_layers
from galapagos_nao.run.devices import (
    STREAMS_PER_GPU,
    longest_first,
    plan_cpu_workers,
    plan_workers,
    training_devices,
    usable_cores,
)
from galapagos_nao.run.devices import assign_devices as assign
from galapagos_nao.run.records import Candidate
from galapagos_nao.run.workers import DaemonPool

# The benchmark package sits at the repository root, beside the tests.
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from benchmarks.engine import measure_engine, union_seconds  # noqa: E402
from benchmarks.genomes import BENCH_GENOMES, training_flops  # noqa: E402
from benchmarks.responsiveness import percentile  # noqa: E402

CPU = torch.device("cpu")
needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


@pytest.fixture(scope="module")
def tiny_task(small_mnist: datasets.Task) -> datasets.Task:
    """600 real MNIST training images: enough to learn something in a fraction of a second."""
    return datasets.subset(small_mnist, 600, 200, seed=1)


def _candidates(count: int) -> list[Candidate]:
    return [
        Candidate(index=i, generation=0, layers=(("dense", (8, "relu")),), seed=i)
        for i in range(count)
    ]


# -- batches and optimizers ----------------------------------------------------------


@pytest.mark.parametrize(
    ("n_train", "expected"),
    [(54_000, 512), (51_200, 512), (51_199, 256), (13_500, 128), (2_700, 32), (10, 32)],
)
def test_auto_batch_size_is_the_largest_power_of_two_keeping_enough_steps(
    n_train: int, expected: int
) -> None:
    batch = batch_size_for("auto", n_train)
    assert batch == expected
    assert AUTO_BATCH_MIN <= batch <= AUTO_BATCH_MAX and batch & (batch - 1) == 0
    assert n_train >= AUTO_MIN_STEPS * batch or batch == AUTO_BATCH_MIN
    assert n_train < AUTO_MIN_STEPS * batch * 2 or batch == AUTO_BATCH_MAX


def test_an_explicit_batch_size_is_used_as_given() -> None:
    assert batch_size_for(100, 54_000) == 100
    assert batch_size_for(7, 10) == 7


def test_parameters_take_auto_or_a_positive_batch_size_and_name_a_bad_one() -> None:
    parameters = Parameters()
    assert parameters.get("training", "batch_size") == "auto"
    parameters.put("training", {"batch_size": 256})
    assert parameters.get("training", "batch_size") == 256
    for bad in (0, "big", 1.5):
        with pytest.raises(
            ValueError, match=r"training\.batch_size.*" + repr(bad).replace(".", r"\.")
        ):
            parameters.put("training", {"batch_size": bad, "epochs": 2})
    assert parameters.get("training") == {**Parameters.defaults()["training"], "batch_size": 256}


@pytest.mark.parametrize("name", ["adam", "adamw", "sgd"])
def test_every_optimizer_updates_all_tensors_in_one_fused_call(name: str) -> None:
    model = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.Tanh(), torch.nn.Linear(3, 2))
    optimizer = make_optimizer(TrainingSettings(optimizer=name).train_settings(), model)
    assert optimizer.defaults["fused"] is True
    before = [p.detach().clone() for p in model.parameters()]
    (model(torch.randn(8, 4)) - torch.randn(8, 2)).square().sum().backward()
    optimizer.step()
    assert all(not torch.equal(b, p) for b, p in zip(before, model.parameters(), strict=True))


def test_fit_learns_real_mnist_with_the_default_settings(small_mnist: datasets.Task) -> None:
    data = DeviceDataCache().get(small_mnist, CPU, 0.1)
    result = fit(seed_layers(), data, TrainingSettings().train_settings(), seed=3)
    assert math.isfinite(result.loss)
    assert result.val_acc > 0.5 and result.test_acc > 0.5  # chance is 0.1


def test_fit_with_the_same_seed_gives_the_same_weights(tiny_task: datasets.Task) -> None:
    data = DeviceDataCache().get(tiny_task, CPU, 0.1)
    settings = TrainingSettings(batch_size=64).train_settings()
    first, second = (fit(seed_layers(), data, settings, seed=5) for _ in range(2))
    assert first.weights.keys() == second.weights.keys()
    assert all(torch.equal(first.weights[k], second.weights[k]) for k in first.weights)
    assert first.val_acc == second.val_acc


def test_a_task_is_copied_to_a_device_once_per_split(tiny_task: datasets.Task) -> None:
    cache = DeviceDataCache()
    data = cache.get(tiny_task, CPU, 0.1)
    assert cache.get(tiny_task, CPU, 0.1) is data
    assert cache.get(tiny_task, CPU, 0.2) is not data
    train, val = split_validation(tiny_task, 0.1)
    assert len(set(train.tolist()) | set(val.tolist())) == tiny_task.n_train
    assert data.x_train.shape[0] + data.x_val.shape[0] == tiny_task.n_train
    assert torch.equal(data.x_val, tiny_task.x_train[val])


# -- thread policy -------------------------------------------------------------------


@pytest.mark.parametrize("n_candidates", [1, 2, 3, 4, 8, 100])
def test_auto_cpu_plan_uses_every_core_without_oversubscribing(n_candidates: int) -> None:
    workers, threads = plan_cpu_workers(n_candidates)
    cores = usable_cores()
    assert 1 <= workers <= n_candidates
    assert workers * threads <= cores
    assert workers * threads == cores or workers * (threads + 1) > cores


def test_explicit_workers_and_threads_are_respected() -> None:
    assert plan_cpu_workers(4, 3, 2) == (3, 2)
    assert plan_cpu_workers(4, 1, "auto") == (1, usable_cores())


def test_each_worker_thread_sets_its_own_intra_op_threads() -> None:
    pool = DaemonPool(2, 1)
    main_threads = torch.get_num_threads()
    try:
        seen = {
            pool.submit(lambda: (threading.get_ident(), torch.get_num_threads())).result()
            for _ in range(8)
        }
    finally:
        pool.shutdown(cancel=True)
    assert {threads for _, threads in seen} == {1}
    assert torch.get_num_threads() == main_threads  # the setting stays in the worker threads


def test_costliest_candidates_start_first_and_keep_their_devices(tiny_task: datasets.Task) -> None:
    small = Candidate(index=0, generation=0, layers=(("dense", (8, "relu")),), seed=0)
    big = Candidate(
        index=1, generation=0, layers=(("dense", (256, "relu")), ("dense", (128, "relu"))), seed=1
    )
    broken = Candidate(index=2, generation=0, layers=(("no_such_layer", ()),), seed=2)
    devices = [torch.device("cuda", 0), torch.device("cuda", 1), torch.device("cuda", 0)]
    order = longest_first([small, big, broken], devices, tiny_task)
    assert [(c.index, str(d)) for c, d in order] == [(1, "cuda:1"), (0, "cuda:0"), (2, "cuda:0")]


def test_estimated_macs_follow_the_widths_of_dense_layers() -> None:
    assert (
        estimated_macs([("dense", [64, "relu"]), ("dropout", [0.5])], 784, 10) == 784 * 64 + 64 * 10
    )
    assert estimated_macs([], 784, 10) == 784 * 10
    assert estimated_macs([("no_such_layer", [])], 784, 10) == 0


# -- the GPU path, by construction ---------------------------------------------------


@pytest.mark.parametrize(
    ("setting", "gpus", "expected"),
    [
        ("auto", 0, ["cpu"]),
        ("auto", 3, ["cuda:0", "cuda:1", "cuda:2"]),
        ("cuda", 2, ["cuda:0", "cuda:1"]),
        ("cuda:1", 2, ["cuda:1"]),
        ("cpu", 2, ["cpu"]),
    ],
)
def test_training_devices_use_every_gpu_for_auto_and_cuda(
    setting: str, gpus: int, expected: list[str]
) -> None:
    assert [str(d) for d in training_devices(setting, cuda_count=gpus)] == expected


def test_candidates_go_round_robin_over_the_gpus_by_index() -> None:
    devices = [torch.device("cuda", i) for i in range(3)]
    candidates = _candidates(7)
    assert [d.index for d in assign(candidates, devices)] == [0, 1, 2, 0, 1, 2, 0]
    # by index, not by position: a resubmitted subset keeps its devices
    assert [d.index for d in assign(candidates[4:6], devices)] == [1, 2]


@pytest.mark.parametrize(("n_candidates", "gpus", "workers", "expected"), [
    (8, 1, "auto", (STREAMS_PER_GPU, 1)),
    (8, 2, "auto", (min(8, 2 * STREAMS_PER_GPU), 1)),
    (3, 2, "auto", (3, 1)),
    (8, 1, 6, (6, 1)),
])  # fmt: skip
def test_gpu_workers_are_streams_per_device_with_one_cpu_thread_each(
    n_candidates: int, gpus: int, workers: object, expected: tuple[int, int]
) -> None:
    devices = [torch.device("cuda", i) for i in range(gpus)]
    assert plan_workers(n_candidates, devices, workers, "auto") == expected


def test_cpu_devices_plan_workers_like_the_cpu_policy() -> None:
    assert plan_workers(4, [CPU]) == plan_cpu_workers(4)


def test_bf16_autocast_is_chosen_on_cuda_only() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # building a CUDA autocast without a GPU warns
        chosen = autocast_for(torch.device("cuda", 0), "bf16")
    assert isinstance(chosen, torch.autocast)
    assert chosen.device == "cuda" and chosen.fast_dtype == torch.bfloat16
    assert isinstance(autocast_for(torch.device("cuda", 0), "float32"), contextlib.nullcontext)
    assert isinstance(autocast_for(CPU, "bf16"), contextlib.nullcontext)


@needs_cuda
@pytest.mark.parametrize("precision", ["float32", "bf16"])
def test_fit_on_a_gpu_keeps_data_resident_and_returns_cpu_weights(
    small_mnist: datasets.Task, precision: str
) -> None:
    device = torch.device("cuda", 0)
    data = DeviceDataCache().get(small_mnist, device, 0.1)
    assert data.x_train.device == device and data.y_test.device == device
    result = fit(
        seed_layers(),
        data,
        TrainingSettings(device="cuda", precision=precision).train_settings(),
        seed=2,
    )
    assert result.val_acc > 0.5
    assert all(t.device.type == "cpu" for t in result.weights.values())


# -- the benchmark's tools -----------------------------------------------------------


def test_training_flops_count_forward_weight_and_input_gradients() -> None:
    # 784 -> 10 (no input gradient: nothing trainable before it), then the head 10 -> 10.
    assert training_flops([("dense", [10, "relu"])]) == 2 * 2 * 784 * 10 + 3 * 2 * 10 * 10
    # A batch norm first has parameters, so the first linear layer needs its input gradient.
    assert (
        training_flops([("batch_norm", []), ("dense", [10, "relu"])])
        == 3 * 2 * 784 * 10 + 3 * 2 * 10 * 10
    )


def test_bench_genomes_span_one_to_twelve_layers_and_include_the_seed() -> None:
    sizes = [len(g) for g in BENCH_GENOMES.values()]
    assert min(sizes) == 1 and max(sizes) == 12 and len(sizes) == 4
    assert seed_layers() in BENCH_GENOMES.values()


def test_union_of_intervals_counts_overlaps_once_and_clips() -> None:
    assert union_seconds([(0, 2), (1, 3), (5, 6)], 0, 10) == pytest.approx(4)
    assert union_seconds([(-1, 2), (8, 12)], 0, 10) == pytest.approx(4)
    assert union_seconds([], 0, 10) == 0


def test_percentile_is_the_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 0.5) == 50 and percentile(values, 0.99) == 99
    assert percentile([3.0], 0.99) == 3.0 and math.isnan(percentile([], 0.5))


def test_engine_measure_trains_clones_through_evolve(tiny_task: datasets.Task) -> None:
    measure = measure_engine(
        [seed_layers()], tiny_task, seed=4, generation_size=2, training={"device": "cpu"}
    )
    assert measure.candidates == 2 and not measure.failures
    assert measure.per_minute > 0 and 0 <= measure.overhead < 1 and measure.cpu_seconds > 0
    assert measure.train_seconds <= measure.seconds and all(acc > 0.3 for acc in measure.test_accs)


@needs_cuda
def test_concurrent_candidates_on_one_gpu_all_train(small_mnist: datasets.Task) -> None:
    # Four workers, each on its own stream, share the task's one GPU copy.
    measure = measure_engine(
        [seed_layers()], small_mnist, seed=6, generation_size=4, training={"device": "cuda"}
    )
    assert measure.workers == min(4, STREAMS_PER_GPU) and measure.candidates == 4
    assert not measure.failures and all(acc > 0.5 for acc in measure.test_accs)


def test_the_policy_table_marks_the_default_layout_once(tiny_task: datasets.Task) -> None:
    # Found by make bench: the default row had lost its mark (a name reused in the loop).
    from benchmarks.sections import policy

    rows = policy(tiny_task, "cpu", seed=0)["rows"]
    default = [row for row in rows if row["chosen"]]
    assert len(default) == 1 and default[0]["batch_size"] == "auto"
