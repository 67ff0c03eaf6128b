"""Encoding networks keeps nothing behind: a continual run checkpoints ever-new shapes."""

from __future__ import annotations

import gc
import json

import torch
from safetensors.torch import save as torch_writer

from galapagos_nao.core.network import Network, build
from galapagos_nao.store import codec


def network(width: int) -> Network:
    layers = [("dense", [width, "relu"]), ("batch_norm", []), ("dense", [3, "tanh"])]
    model = build(layers, (5,), 2)
    return Network(layers, (5,), 2, weights=model.state_dict())


def ctypes_array_types() -> int:
    gc.collect()
    return sum(type(o).__name__ == "PyCArrayType" for o in gc.get_objects())


def parts(data: bytes) -> tuple[dict, bytes]:
    """The header as JSON (its key order is a hash map's) and the tensor bytes."""
    length = int.from_bytes(data[:8], "little")
    return json.loads(data[8 : 8 + length]), data[8 + length :]


def test_the_file_is_what_safetensors_torch_writer_writes():
    weights = dict(network(7).weights or {})
    assert {t.dtype for t in weights.values()} == {torch.float32, torch.int64}
    metadata = {"format": "test", "n": "1"}
    ours = parts(codec._safetensors_bytes(weights, metadata))
    assert ours == parts(torch_writer(weights, metadata=metadata))
    assert ours[0]["layer1.0.num_batches_tracked"]["dtype"] == "I64"


def test_bfloat16_weights_still_encode_as_bfloat16():
    weights = {"w": torch.arange(6, dtype=torch.bfloat16).reshape(2, 3)}
    ours = parts(codec._safetensors_bytes(weights, {"a": "b"}))
    assert ours == parts(torch_writer(weights, metadata={"a": "b"}))
    assert ours[0]["w"]["dtype"] == "BF16"


def test_encoding_networks_of_many_sizes_leaves_no_type_behind():
    codec.to_bytes(network(1))  # imports and first-use caches
    before = ctypes_array_types()
    for width in range(2, 202):  # 200 networks, each with tensors of new sizes
        codec.to_bytes(network(width))
    # safetensors' torch writer left one ctypes type per new size: 800 here, for good.
    assert ctypes_array_types() - before < 10
