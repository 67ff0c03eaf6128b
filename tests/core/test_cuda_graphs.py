"""The group's training step as a CUDA graph (``training.cuda_graphs``).

On the CPU: the setting is checked, the graph path is never taken and the
results are the eager ones, and a dropout slot reads held keys as the step's.
On CUDA (skipped without a GPU; ``benchmarks/gpu.sh`` runs them): graph and
eager training give each member the same val_acc within 0.001 and its weights
within float tolerance, a captured dropout mask changes every replay, and a
capture that fails for real falls back to eager with one warning.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

import pytest
import torch

from galapagos_nao.config.settings import TrainingSettings
from galapagos_nao.core import counter_rng, datasets, graph_step, grouped
from galapagos_nao.core.datasets import Task
from galapagos_nao.core.device_data import DeviceData, DeviceDataCache
from galapagos_nao.core.fit_records import FitResult, make_optimizer
from galapagos_nao.core.graph_step import graphs_wanted
from galapagos_nao.core.grouped import GroupMember, fit_group
from galapagos_nao.core.stacked_dropout import DropoutMasks

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")

#: Weight tolerance between graph and eager (the same kernels; Adam's step count on the device).
WEIGHT_ATOL = 2e-4

HOMOGENEOUS = [
    ("dense", [20, "relu"]),
    ("batch_norm", []),
    ("dropout", [0.5]),
    ("dense", [12, "tanh"]),
]
MUTATED = [
    HOMOGENEOUS,
    [("dense", [31, "relu"]), ("batch_norm", []), ("dropout", [0.2]), ("dense", [12, "tanh"])],
    [("dense", [20, "none"]), ("leaky_relu", [0.2]), ("dropout", [0.7]), ("dense", [9, "sigmoid"])],
    [("dense", [16, "relu"])],
]


def _settings(device: str, graphs: bool | str, optimizer: str = "adam") -> Any:
    return TrainingSettings(
        device=device, cuda_graphs=graphs, optimizer=optimizer, epochs=2
    ).train_settings()


def _data(small_mnist: Task, device: str) -> DeviceData:
    task = datasets.subset(small_mnist, 600, 300, seed=0)
    return DeviceDataCache().get(task, torch.device(device), 0.1)


@pytest.mark.parametrize("value", ["yes", 1, None, "Auto"])
def test_the_cuda_graphs_setting_names_a_bad_value(value):
    with pytest.raises(ValueError) as caught:
        TrainingSettings(cuda_graphs=value)
    assert "training.cuda_graphs" in str(caught.value)
    assert repr(value) in str(caught.value)
    for good in ("auto", True, False):
        assert TrainingSettings(cuda_graphs=good).train_settings().cuda_graphs == good


def test_graphs_are_wanted_only_on_cuda_with_steps_to_replay():
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert not graphs_wanted(True, cpu, 1000)
    assert not graphs_wanted("auto", cpu, 1000)
    assert not graphs_wanted(False, cuda, 1000)
    assert not graphs_wanted(True, cuda, 1)  # nothing left to replay after the first step
    assert graphs_wanted(True, cuda, 2)
    assert not graphs_wanted("auto", cuda, graph_step.AUTO_MIN_REPLAYS)
    assert graphs_wanted("auto", cuda, graph_step.AUTO_MIN_REPLAYS + 1)


def test_on_the_cpu_the_setting_changes_nothing(small_mnist, monkeypatch):
    data = _data(small_mnist, "cpu")
    members = [GroupMember(layers, seed=i) for i, layers in enumerate(MUTATED)]
    eager = fit_group(members, data, _settings("cpu", False))

    def no_capture(self: Any) -> None:
        raise AssertionError("a CUDA graph capture was tried on the CPU")

    monkeypatch.setattr(graph_step.Stepper, "_try_capture", no_capture)
    asked = fit_group(members, data, _settings("cpu", True))
    for a, b in zip(asked, eager, strict=True):
        assert isinstance(a, FitResult) and isinstance(b, FitResult)
        assert (a.loss, a.train_acc, a.val_acc, a.test_acc) == (
            b.loss,
            b.train_acc,
            b.val_acc,
            b.test_acc,
        )
        for name, tensor in b.weights.items():
            assert torch.equal(a.weights[name], tensor), name


def test_a_dropout_slot_reads_held_keys_as_those_of_their_step():
    stream = counter_rng.stream_keys(counter_rng.member_keys([4, 9]), counter_rng.DROPOUT, 2)
    real = torch.tensor([16, 12], dtype=torch.int32).view(-1, 1, 1)
    rates = torch.tensor([0.5, 0.25]).view(-1, 1, 1)
    thresholds = counter_rng.keep_thresholds([0.5, 0.25])
    reference = DropoutMasks(stream, real, thresholds, None, rates)
    held = DropoutMasks(stream, real, thresholds, None, rates)
    x = torch.ones(2, 5, 16)
    outputs = []
    for step in (1, 2, 129, 3):
        held.hold_keys(step)
        outputs.append(held(x, 0))  # the step it names is not read while keys are held
        assert torch.equal(outputs[-1], reference(x, step)), step
    assert not torch.equal(outputs[0], outputs[1])
    held.release_keys()
    assert torch.equal(held(x, 7), reference(x, 7))


def _assert_same_training(graph: list[Any], eager: list[Any]) -> None:
    for member, (a, b) in enumerate(zip(graph, eager, strict=True)):
        assert isinstance(a, FitResult) and isinstance(b, FitResult), (a, b)
        assert a.val_acc == pytest.approx(b.val_acc, abs=0.001), member
        assert a.loss == pytest.approx(b.loss, rel=1e-4), member
        for name, tensor in b.weights.items():
            torch.testing.assert_close(
                a.weights[name], tensor, atol=WEIGHT_ATOL, rtol=1e-3, msg=f"{member} {name}"
            )


def _replays(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts real graph replays (the real replay still runs)."""
    count = [0]
    replay = torch.cuda.CUDAGraph.replay

    def counted(self: torch.cuda.CUDAGraph) -> None:
        count[0] += 1
        replay(self)

    monkeypatch.setattr(torch.cuda.CUDAGraph, "replay", counted)
    return count


@needs_cuda
@pytest.mark.parametrize("optimizer", ["adam", "sgd"])
def test_cuda_graph_trains_a_homogeneous_group_as_eager(small_mnist, monkeypatch, optimizer):
    data = _data(small_mnist, "cuda")
    members = [GroupMember(HOMOGENEOUS, seed=seed) for seed in range(4)]
    eager = fit_group(members, data, _settings("cuda", False, optimizer))
    replays = _replays(monkeypatch)
    graph = fit_group(members, data, _settings("cuda", True, optimizer))
    assert replays[0] > 0
    _assert_same_training(graph, eager)


@needs_cuda
def test_cuda_graph_trains_a_mutated_group_with_dropout_as_eager(small_mnist, monkeypatch):
    data = _data(small_mnist, "cuda")
    members = [GroupMember(layers, seed=i) for i, layers in enumerate(MUTATED)]
    eager = fit_group(members, data, _settings("cuda", False))
    replays = _replays(monkeypatch)
    graph = fit_group(members, data, _settings("cuda", True))
    assert replays[0] > 0
    _assert_same_training(graph, eager)


@needs_cuda
def test_cuda_graph_draws_a_new_dropout_mask_every_replay():
    device = torch.device("cuda")
    stream = counter_rng.stream_keys(counter_rng.member_keys([4, 9], device), counter_rng.DROPOUT)
    real = torch.tensor([16, 16], dtype=torch.int32, device=device).view(-1, 1, 1)
    rates = torch.tensor([0.5, 0.5], device=device).view(-1, 1, 1)
    thresholds = counter_rng.keep_thresholds([0.5, 0.5], device)
    reference = DropoutMasks(stream, real, thresholds, None, rates)
    masks = DropoutMasks(stream, real, thresholds, None, rates)
    x = torch.ones(2, 8, 16, device=device)
    masks.hold_keys(1)
    masks(x, 1)  # warm-up (positions made outside the graph)
    torch.cuda.synchronize()
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        out = masks(x, 1)
    seen = []
    for step in (2, 3):
        masks.hold_keys(step)
        graph.replay()
        torch.cuda.synchronize()
        seen.append(out.clone())
        assert torch.equal(seen[-1], reference(x, step)), step
    assert not torch.equal(seen[0], seen[1])


@needs_cuda
def test_a_failed_cuda_graph_capture_falls_back_with_one_warning(small_mnist, monkeypatch, caplog):
    """A real capture failure: Adam not capturable refuses to be captured, after warm-up ran."""
    data = _data(small_mnist, "cuda")
    members = [GroupMember(layers, seed=i) for i, layers in enumerate(MUTATED)]
    settings = _settings("cuda", True)
    monkeypatch.setattr(
        grouped, "make_optimizer", lambda s, m, capturable=False: make_optimizer(s, m)
    )
    with caplog.at_level(logging.WARNING, logger="galapagos_nao"):
        fallen = fit_group(members, data, settings)
    warnings = [r for r in caplog.records if "CUDA graph capture" in r.getMessage()]
    assert len(warnings) == 1
    eager = fit_group(members, data, dataclasses.replace(settings, cuda_graphs=False))
    _assert_same_training(fallen, eager)  # warm-up's real steps were undone
