"""Randomness that batches: counter streams, one draw for a whole group.

The hash is checked for what its users need (uniform bits, independent streams,
the same numbers on every device), and the group step for what the issue asks:
as many random-number calls for 16 members as for 2, and none from torch's
stateful generators.
"""

from __future__ import annotations

import pytest
import torch

from galapagos_nao.config.settings import TrainingSettings
from galapagos_nao.core import counter_rng, datasets
from galapagos_nao.core.datasets import Task
from galapagos_nao.core.device_data import DeviceData, DeviceDataCache
from galapagos_nao.core.grouped import GroupMember, fit_group
from galapagos_nao.core.stacked_dropout import DropoutMasks


def test_uniforms_are_uniform_and_streams_differ():
    keys = counter_rng.member_keys([1, 2, 2**62 + 5, -3])
    assert keys.unique().numel() == 4
    draws = counter_rng.uniform(keys, torch.arange(50_000).view(1, -1))
    assert draws.shape == (4, 50_000)
    assert draws.min() >= 0.0 and draws.max() < 1.0
    assert draws.mean(dim=1).sub(0.5).abs().max() < 0.01
    histogram = torch.histc(draws[0], bins=10, min=0.0, max=1.0)
    assert histogram.min() > 4_500 and histogram.max() < 5_500
    # neighbouring counters and neighbouring streams are uncorrelated
    assert torch.corrcoef(torch.stack([draws[0, :-1], draws[0, 1:]]))[0, 1].abs() < 0.02
    assert torch.corrcoef(draws[:2])[0, 1].abs() < 0.02
    other = counter_rng.uniform(counter_rng.stream_keys(keys, 7), torch.arange(50_000).view(1, -1))
    assert torch.corrcoef(torch.stack([draws[0], other[0]]))[0, 1].abs() < 0.02


def test_a_member_draws_the_same_numbers_alone_and_in_any_group():
    seeds = [11, 12, 13]
    alone = counter_rng.permutations(counter_rng.member_keys([12]), 1000)
    together = counter_rng.permutations(counter_rng.member_keys(seeds), 1000)
    assert torch.equal(together[1], alone[0])
    assert sorted(together[0].tolist()) == list(range(1000))
    assert not torch.equal(together[0], together[2])
    words = torch.tensor([4, 9, 4])  # a per-member word: each layer's own position
    keys = counter_rng.stream_keys(counter_rng.member_keys(seeds), counter_rng.DROPOUT, words)
    one = counter_rng.stream_keys(counter_rng.member_keys([13]), counter_rng.DROPOUT, 4)
    assert keys[2] == one[0]


def _reference_hash(key: int, counter: int) -> int:
    """The mixer as specified, on Python ints: what the int32 tensor arithmetic must equal."""
    mask = 0xFFFFFFFF
    x = ((counter * 0x61C88647) & mask) ^ key
    for shift, multiplier in ((16, 0x7FEB352D), (15, 0x2C1B3C6D), (16, 0x297A2D39)):
        x = ((x ^ (x >> shift)) * multiplier) & mask
    return x ^ (x >> 15)


def test_the_int32_words_are_the_specified_32_bit_hash():
    keys = counter_rng.stream_keys(counter_rng.member_keys([3, -8, 2**40 + 1]), 5, 9)
    # counters across the whole 32-bit range, an odd count (a vector tail), int64 and int32
    counters = torch.cat([torch.arange(1001), torch.arange(2**31 - 500, 2**31 + 501)])
    counters = torch.cat([counters, torch.arange(2**32 - 1001, 2**32)]).view(1, -1)
    words = counter_rng.bits(keys, counters)
    assert words.dtype == torch.int32
    small = counter_rng.bits(keys, torch.arange(1001, dtype=torch.int32).view(1, -1))
    assert torch.equal(small, words[:, :1001])
    unsigned = (words.to(torch.int64) & 0xFFFFFFFF).tolist()
    for member, key in enumerate(keys.tolist()):
        expected = [_reference_hash(key, c) for c in counters[0].tolist()]
        assert unsigned[member] == expected
    # uniforms and keep masks read the top 24 bits as unsigned
    top = [[value >> 8 for value in row] for row in unsigned]
    assert counter_rng.uniform(keys, counters).mul(1 << 24).long().tolist() == top
    thresholds = counter_rng.keep_thresholds([0.0, 0.5, 0.9])
    kept = counter_rng.keep_mask(keys, counters.view(1, 1, -1), thresholds)
    limits = [0, 1 << 23, 15_099_495]  # ceil(rate * 2**24)
    expected = [[u >= limit for u in row] for row, limit in zip(top, limits, strict=True)]
    assert kept[:, 0].tolist() == expected


def test_a_dropout_slot_draws_each_step_from_that_steps_stream_key():
    """The slot makes keys many steps at a time: every step, across chunks, is its own key's."""
    stream = counter_rng.stream_keys(counter_rng.member_keys([4, 9, 30]), counter_rng.DROPOUT, 2)
    real = torch.tensor([16, 12, 16], dtype=torch.int32).view(-1, 1, 1)
    rates = [0.5, 0.0, 0.25]
    thresholds = counter_rng.keep_thresholds(rates)
    drawing = torch.tensor([0, 2])  # member 1 keeps everything
    masks = DropoutMasks(stream, real, thresholds, drawing, torch.tensor(rates).view(-1, 1, 1))
    x = torch.ones(3, 5, 16)
    rows, cols = torch.arange(5).view(1, -1, 1), torch.arange(16).view(1, 1, -1)
    for step in [*range(1, 4), *range(126, 133), 300, 2]:
        keys = counter_rng.stream_keys(stream, step)
        keep = counter_rng.keep_mask(keys, rows * real + cols, thresholds)
        expected = x * keep / (1.0 - torch.tensor(rates).view(-1, 1, 1))
        assert torch.equal(masks(x, step), expected), step
    assert torch.equal(masks(x, 7)[1], x[1])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_the_streams_are_the_same_on_the_gpu():
    keys = counter_rng.member_keys([5, 6])
    counters = torch.arange(10_000).view(1, -1)
    cpu = counter_rng.bits(counter_rng.stream_keys(keys, 3, 8), counters)
    gpu = counter_rng.bits(counter_rng.stream_keys(keys.cuda(), 3, 8), counters.cuda())
    assert torch.equal(cpu, gpu.cpu())


@pytest.fixture(scope="module")
def data(small_mnist: Task) -> DeviceData:
    task = datasets.subset(small_mnist, 300, 100, seed=0)
    return DeviceDataCache().get(task, torch.device("cpu"), 0.1)


def _random_calls(monkeypatch: pytest.MonkeyPatch, data: DeviceData, size: int) -> int:
    """Hash evaluations of one group's fit; torch's own generators must not be touched."""
    calls = []
    bits = counter_rng.bits

    def counted(keys: torch.Tensor, counters: torch.Tensor) -> torch.Tensor:
        calls.append(keys.shape[0])
        return bits(keys, counters)

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("a draw from torch's stateful generators")

    monkeypatch.setattr(counter_rng, "bits", counted)
    for name in ("rand", "randn", "randint", "randperm", "bernoulli"):
        monkeypatch.setattr(torch, name, refuse)
    layers = [("dense", [16, "relu"]), ("dropout", [0.5]), ("dense", [16, "tanh"])]
    settings = TrainingSettings(device="cpu", epochs=2, batch_size=64).train_settings()
    members = [GroupMember(layers, seed=seed) for seed in range(size)]
    results = fit_group(members, data, settings)
    monkeypatch.undo()
    assert all(not isinstance(r, Exception) for r in results), results
    assert all(n == size for n in calls), "every call draws for the whole group"
    return len(calls)


def test_a_group_step_makes_as_many_random_calls_for_16_members_as_for_2(monkeypatch, data):
    two = _random_calls(monkeypatch, data, 2)
    sixteen = _random_calls(monkeypatch, data, 16)
    assert two == sixteen
    # init: a weight and a bias call per product (3); order: one per epoch (2);
    # dropout: one per training step (2 epochs of ceil(270 / 64) = 5 steps)
    assert two == 3 * 2 + 2 + 2 * 5
