"""The grouped path of the local evaluator: same records as alone, failures per candidate."""

from __future__ import annotations

import logging
import threading

import pytest
import torch
from torch import nn

from galapagos_nao.config.parameters import Parameters
from galapagos_nao.core import datasets, genome
from galapagos_nao.core.device_data import DeviceDataCache
from galapagos_nao.core.group_forming import plan_group
from galapagos_nao.core.group_plan import group_macs
from galapagos_nao.core.grouped import member_plan
from galapagos_nao.run.grouped import AUTO_CUDA_GROUP, resolve_group_size
from galapagos_nao.run.local import LocalEvaluator
from galapagos_nao.run.records import Candidate, EvaluationJob, Outcome

DENSE = (("dense", (12, "relu")), ("dropout", (0.3,)))


@pytest.fixture(scope="module")
def tiny_task(small_mnist: datasets.Task) -> datasets.Task:
    return datasets.subset(small_mnist, 600, 200, seed=1)


def evaluate(
    candidates: list[Candidate],
    task: datasets.Task,
    group_size: int,
    evaluator: LocalEvaluator | None = None,
) -> dict[int, Outcome]:
    parameters = Parameters()
    parameters.put("training", {"device": "cpu", "group_size": group_size})
    job = EvaluationJob(task, parameters.settings(), threading.Event(), DeviceDataCache())
    own = evaluator or LocalEvaluator()
    try:
        return {o.candidate.index: o for o in own.evaluate(candidates, job)}
    finally:
        if evaluator is None:
            own.close()


def test_grouped_outcomes_match_the_per_candidate_path(tiny_task, caplog):
    widths = [12, 16, 9, 12, 30]  # 30 is in another bucket: a group of its own
    candidates = [
        Candidate(index=i, generation=3, layers=(("dense", (w, "relu")), DENSE[1]), seed=i)
        for i, w in enumerate(widths)
    ]
    with caplog.at_level(logging.INFO, logger="galapagos_nao"):
        grouped = evaluate(candidates, tiny_task, group_size=8)
    alone = evaluate(candidates, tiny_task, group_size=1)
    assert "Generation 3: 5 candidates in groups of [4, 1]" in caplog.text
    assert [grouped[i].group_size for i in range(5)] == [4, 4, 4, 4, 1]
    assert all(o.group_size == 1 for o in alone.values())
    for index in range(5):
        mine, theirs = grouped[index].network, alone[index].network
        assert mine is not None and theirs is not None
        assert mine.layers == theirs.layers and mine.generation == 3
        assert mine.val_acc == pytest.approx(theirs.val_acc, abs=1 / 50)
        assert mine.loss == pytest.approx(theirs.loss, rel=1e-5)
        for name, tensor in theirs.weights.items():
            torch.testing.assert_close(mine.weights[name], tensor, atol=2e-4, rtol=1e-4)


class Halve(nn.Module):
    """A user module without a batched form."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x / 2


def test_an_unbatchable_user_layer_trains_alone_with_the_reason_logged_once(
    tiny_task, caplog, monkeypatch
):
    monkeypatch.setattr(genome, "_registry", dict(genome.layer_types()))  # undone after the test
    genome.register_layer("test_grouped_halve", [], lambda params, n: ([Halve()], n))
    odd = (("dense", (8, "relu")), ("test_grouped_halve", ()))
    candidates = [
        Candidate(index=i, generation=0, layers=odd if i < 2 else DENSE, seed=i) for i in range(4)
    ]
    evaluator = LocalEvaluator()  # a run's evaluator: it logs each reason once
    with caplog.at_level(logging.INFO, logger="galapagos_nao"):
        outcomes = evaluate(candidates, tiny_task, 4, evaluator)
        evaluate(candidates, tiny_task, 4, evaluator)
    evaluator.close()
    assert all(o.network is not None for o in outcomes.values())
    assert [outcomes[i].group_size for i in range(4)] == [1, 1, 2, 2]
    reasons = [r for r in caplog.messages if r.startswith("Trained alone, not in a group")]
    assert reasons == ["Trained alone, not in a group: layer1.0: Halve has no batched form"]


def test_a_non_finite_member_is_dropped_alone(tiny_task):
    # SGD at the largest learning rate allowed sends the loss of most members to NaN.
    parameters = Parameters()
    parameters.put(
        "training", {"device": "cpu", "group_size": 4, "optimizer": "sgd", "learning_rate": 100}
    )
    linear = (("dense", (32, "none")),)  # no activation to tame the blow-up
    candidates = [Candidate(index=i, generation=0, layers=linear, seed=i) for i in range(4)]
    job = EvaluationJob(tiny_task, parameters.settings(), threading.Event(), DeviceDataCache())
    evaluator = LocalEvaluator()
    try:
        outcomes = list(evaluator.evaluate(candidates, job))
    finally:
        evaluator.close()
    assert len(outcomes) == 4
    failed = [o for o in outcomes if o.failure is not None]
    assert failed and all("training loss became" in o.failure for o in failed)
    assert all(o.group_size == 4 for o in outcomes)


def test_auto_group_size_fills_a_gpu_and_follows_the_measurement_on_the_cpu():
    assert resolve_group_size("auto", torch.device("cuda", 0)) == AUTO_CUDA_GROUP
    assert resolve_group_size(3, torch.device("cpu")) == 3
    assert resolve_group_size("auto", torch.device("cpu")) >= 1


def test_conv_candidates_train_in_groups_and_record_their_padded_share(tiny_task):
    def cnn(channels: int) -> tuple:
        return (("conv2d", (channels, 3, "relu")), ("max_pool", (2,)), ("dense", (16, "relu")))

    candidates = [
        Candidate(index=i, generation=0, layers=cnn(c), seed=i) for i, c in enumerate((6, 6, 4))
    ]
    grouped = evaluate(candidates, tiny_task, group_size=8)
    alone = evaluate(candidates, tiny_task, group_size=1)
    # the CPU's exact groups: the same channels in every convolution
    assert [grouped[i].group_size for i in range(3)] == [2, 2, 1]
    for index in range(3):
        mine, theirs = grouped[index].network, alone[index].network
        assert mine is not None and theirs is not None
        assert mine.val_acc == theirs.val_acc
        assert all(torch.equal(mine.weights[k], t) for k, t in theirs.weights.items())
    # the share of the pair's multiply-adds spent on padding counts its convolutions
    pair = [list(cnn(6))] * 2
    _, padded = group_macs(plan_group([member_plan(g, (1, 28, 28), 10) for g in pair]), 784)
    own = sum(genome.macs(g, (1, 28, 28), 10) for g in pair)
    assert grouped[0].padded_share == pytest.approx(1 - own / padded)
    # the dense layer's 1,176 inputs are padded to 1,184 and the head's 10 logits to 16:
    # 224 of each member's 61,536 multiply-adds with the convolution counted (0.36%),
    # where the dense products alone would show 1.2%
    assert 0 < grouped[0].padded_share < 0.006
