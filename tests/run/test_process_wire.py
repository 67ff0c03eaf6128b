"""The bytes between the run and its worker processes: round trips, and what is refused."""

from __future__ import annotations

import json
from typing import Any

import pytest
import torch

from galapagos_nao.config.settings import TrainingSettings
from galapagos_nao.core.training import DeviceDataCache
from galapagos_nao.example import seed_layers
from galapagos_nao.run import process_wire as wire
from galapagos_nao.run.records import Candidate, Outcome


@pytest.fixture(scope="module")
def trained(small_mnist, train_network) -> Any:
    return train_network(small_mnist, [("dense", [16, "relu"])], seed=3, generation=1)


def child_of(parent: Any, *, inherit: bool = True) -> Candidate:
    return Candidate(
        index=2,
        generation=1,
        layers=(("dense", [16, "relu"]), ("dropout", [0.25])),
        seed=11,
        parent=parent,
        origins=(0, None),
        mutations=("duplicate",),
        inherit=inherit,
    )


def result_for(candidate: Candidate, network: Any) -> tuple[dict[str, Any], bytes]:
    outcomes = [Outcome(candidate, network=network, seconds=1.5, group_size=1)]
    return wire.result_message(outcomes, [("galapagos_nao.candidates", 20, "Epoch 0. Loss: 1")])


def test_a_unit_arrives_as_sent_with_its_parents_weights_only_when_inherited(trained):
    settings = TrainingSettings(epochs=2).train_settings()
    for inherit in (True, False):
        unit = wire.Unit(
            candidates=(child_of(trained, inherit=inherit),),
            settings=settings,
            device="cpu",
            timeout=30.0,
            threads=1,
            budget=None,
            padded_share=0.25,
            log_level=20,
        )
        header, blob = wire.unit_message(unit)
        header = json.loads(json.dumps(header))  # as it travels
        back = wire.unit_from_message(header, blob)
        [sent], [got] = unit.candidates, back.candidates
        assert (back.settings, back.timeout, back.padded_share) == (settings, 30.0, 0.25)
        assert (got.layers, got.origins, got.mutations, got.seed) == (
            sent.layers,
            sent.origins,
            sent.mutations,
            sent.seed,
        )
        assert got.parent is not None and got.parent.id == trained.id
        if inherit:
            assert got.inherited_weights is not None
            assert all(torch.equal(got.parent.weights[k], v) for k, v in trained.weights.items())
        else:
            assert got.parent.weights is None


def test_the_splits_arrive_as_views_of_the_bytes_read(small_mnist):
    data = DeviceDataCache().get(small_mnist, torch.device("cpu"), 0.1)
    header, parts = wire.data_message(data)
    blob = bytearray(b"".join(parts))  # as the worker reads it
    got = wire.data_from_message(json.loads(json.dumps(header)), blob)
    assert (got.input_shape, got.n_classes, got.input_transform) == (
        data.input_shape,
        data.n_classes,
        data.input_transform,
    )
    for split in wire.SPLITS:
        assert torch.equal(getattr(got, split), getattr(data, split))
    blob[0:4] = bytes(4)  # no copy was made: the tensors are the bytes
    assert got.x_train.reshape(-1)[0].item() == 0.0


def test_a_result_reads_back_as_the_outcome_sent(trained):
    candidate = Candidate(0, 1, trained.layers, 3)
    header, blob = result_for(candidate, trained)
    [outcome], logs = wire.outcomes_from_message(
        json.loads(json.dumps(header)), blob, [candidate], "worker"
    )
    assert outcome.candidate is candidate  # this side's record, not a copy
    assert outcome.network is not None and outcome.network.id == trained.id
    assert (outcome.network.val_acc, outcome.seconds) == (trained.val_acc, 1.5)
    assert all(torch.equal(outcome.network.weights[k], v) for k, v in trained.weights.items())
    assert logs == [("galapagos_nao.candidates", 20, "Epoch 0. Loss: 1")]


def test_a_network_whose_bytes_were_altered_is_refused(trained):
    candidate = Candidate(0, 1, trained.layers, 3)
    header, blob = result_for(candidate, trained)
    altered = bytearray(blob)
    altered[-5] ^= 0xFF  # a weight's byte
    with pytest.raises(wire.WireError, match="worker 7: outcome 0's network"):
        wire.outcomes_from_message(header, bytes(altered), [candidate], "worker 7")


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("seconds", "1.5", "seconds has the wrong type"),
        ("seconds", -1.0, "seconds must be a number in"),
        ("padded_share", 1.5, "padded_share must be a number in"),
        ("group_size", 0, "group_size must be an int >= 1"),
        ("group_size", True, "group_size must be an int >= 1"),
        ("stopped", 1, "stopped has the wrong type"),
        ("failure", "boom", "must hold exactly one of a network, a failure or stopped"),
        ("network", [0, 10**12], "network must be \\[offset, length\\] within the blob"),
    ],
)
def test_a_result_field_out_of_bounds_is_refused_naming_it(trained, field, value, message):
    candidate = Candidate(0, 1, trained.layers, 3)
    header, blob = result_for(candidate, trained)
    header["outcomes"][0][field] = value
    with pytest.raises(wire.WireError, match=f"w: outcome 0: {message}"):
        wire.outcomes_from_message(header, blob, [candidate], "w")


def test_a_result_for_another_unit_or_with_foreign_log_records_is_refused(trained):
    candidate = Candidate(0, 1, trained.layers, 3)
    header, blob = result_for(candidate, trained)
    with pytest.raises(wire.WireError, match="1 outcomes for a unit of 2"):
        wire.outcomes_from_message(header, blob, [candidate, candidate], "w")
    other = Candidate(0, 1, tuple(seed_layers()), 3)
    with pytest.raises(wire.WireError, match="layers are not the candidate's"):
        wire.outcomes_from_message(header, blob, [other], "w")
    header["logs"] = [["root", 40, "not ours"]]
    with pytest.raises(wire.WireError, match="log record 0 is not"):
        wire.outcomes_from_message(header, blob, [candidate], "w")


def test_frame_sizes_are_checked_before_anything_is_read():
    prefix = wire.frame_prefix({"kind": "result"}, 3)
    assert wire.frame_lengths(prefix[: wire.PREFIX_BYTES], 3) == (len(prefix) - 16, 3)
    with pytest.raises(wire.WireError, match="frame blob of 3 bytes is over 2"):
        wire.frame_lengths(prefix[: wire.PREFIX_BYTES], 2)
    huge = (wire.MAX_HEADER_BYTES + 1).to_bytes(8, "little") + bytes(8)
    with pytest.raises(wire.WireError, match="frame header of"):
        wire.frame_lengths(huge, 3)
    with pytest.raises(wire.WireError, match="must be a JSON object"):
        wire.parse_header(b"[1, 2]")
