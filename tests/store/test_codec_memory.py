"""Encoding networks keeps nothing behind: a continual run checkpoints ever-new shapes."""

from __future__ import annotations

import gc

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


def test_the_bytes_are_those_of_safetensors_torch_writer():
    weights = dict(network(7).weights or {})
    assert {t.dtype for t in weights.values()} == {torch.float32, torch.int64}
    metadata = {"format": "test", "n": "1"}
    assert codec._safetensors_bytes(weights, metadata) == torch_writer(weights, metadata=metadata)


def test_bfloat16_weights_still_encode_as_bfloat16():
    weights = {"w": torch.arange(6, dtype=torch.bfloat16).reshape(2, 3)}
    assert codec._safetensors_bytes(weights, {"a": "b"}) == torch_writer(
        weights, metadata={"a": "b"}
    )


def test_encoding_networks_of_many_sizes_leaves_no_type_behind():
    codec.to_bytes(network(1))  # imports and first-use caches
    before = ctypes_array_types()
    for width in range(2, 202):  # 200 networks, each with tensors of new sizes
        codec.to_bytes(network(width))
    # safetensors' torch writer left one ctypes type per new size: 800 here, for good.
    assert ctypes_array_types() - before < 10
