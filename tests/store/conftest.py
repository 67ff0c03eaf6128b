"""Fixtures for the store tests: a tiny real network and a crafter of hostile network files.

The crafter writes files the way an attacker would: by hand, byte for byte, with
a digest that is *valid* for what it wrote, so that the checks behind the digest
are what a test exercises. It follows the format's published layout (an 8-byte
little-endian header length, the safetensors JSON header, the tensor bytes; the
version 2 digest is SHA-256 over the whole file with the digest's own 64 hex
characters set to ``0``), not the codec's code.
"""

from __future__ import annotations

import hashlib
import json
import struct
from collections.abc import Callable, Mapping
from typing import Any

import pytest
import torch

from galapagos_nao.core.network import Network, build
from galapagos_nao.store import codec

TINY_LAYERS = [("dense", [2, "relu"])]
TINY_SHAPE = (4,)

_DTYPES = {torch.float32: "F32", torch.float64: "F64", torch.int64: "I64"}


def tiny_network(**fields: Any) -> Network:
    """A 4-feature, 2-class network with one dense layer and real (fresh) weights."""
    weights = build(TINY_LAYERS, TINY_SHAPE, 2).state_dict()
    return Network(TINY_LAYERS, input_shape=TINY_SHAPE, n_classes=2, weights=weights, **fields)


def file_bytes(header: Mapping[str, Any] | bytes, data: bytes = b"") -> bytes:
    """A safetensors-shaped file: length prefix, header (JSON or raw bytes), tensor bytes."""
    raw = (
        header if isinstance(header, bytes) else json.dumps(header, separators=(",", ":")).encode()
    )
    return struct.pack("<Q", len(raw)) + raw + data


def seal(data: bytes) -> bytes:
    """Fills in the version 2 digest of ``data``, whose digest is 64 ``0`` characters."""
    placeholder = b'"sha256":"' + b"0" * 64 + b'"'
    start = data.index(placeholder) + len(b'"sha256":"')
    digest = hashlib.sha256(data).hexdigest().encode()
    return data[:start] + digest + data[start + 64 :]


def craft(
    record: Mapping[str, Any] | None = None,
    weights: Mapping[str, torch.Tensor] | None = None,
    *,
    has_weights: str | None = None,
    version: int | None = None,
    **fields: Any,
) -> bytes:
    """A network file holding ``record`` (a tiny network's, with ``fields`` changed).

    Args:
        record: The JSON record; by default the one the codec writes for a tiny network.
        weights: The tensors to store; the tiny network's by default.
        has_weights: The ``has_weights`` metadata; "1" when there are weights.
        version: The format version claimed; the codec's current one by default.
        fields: Record fields to change.
    """
    net = tiny_network()
    if record is None:
        record = json.loads(_metadata_of(codec.to_bytes(net))["network"])
    record = {**record, **fields}
    weights = dict(net.weights or {}) if weights is None else dict(weights)
    version = codec.FORMAT_VERSION if version is None else version
    metadata = {
        "format": codec.FORMAT,
        "version": str(version),
        "network": json.dumps(record),
        "has_weights": has_weights if has_weights is not None else ("1" if weights else "0"),
    }
    if version == 1:
        metadata["weights_sha256"] = codec.weights_digest(weights)
    else:
        metadata["sha256"] = "0" * 64
    header: dict[str, Any] = {"__metadata__": metadata}
    data = b""
    for name in sorted(weights):
        tensor = weights[name].contiguous()
        raw = tensor.reshape(-1).view(torch.uint8).numpy().tobytes()
        header[name] = {
            "dtype": _DTYPES[tensor.dtype],
            "shape": list(tensor.shape),
            "data_offsets": [len(data), len(data) + len(raw)],
        }
        data += raw
    encoded = file_bytes(header, data)
    return encoded if version == 1 else seal(encoded)


def _metadata_of(data: bytes) -> dict[str, str]:
    (length,) = struct.unpack("<Q", data[:8])
    return dict(json.loads(data[8 : 8 + length])["__metadata__"])


def tiny_record() -> dict[str, Any]:
    """The JSON record the codec writes for a tiny network."""
    return dict(json.loads(_metadata_of(codec.to_bytes(tiny_network()))["network"]))


class Crafter:
    """What the ``crafter`` fixture gives: :func:`craft` and its helpers."""

    __call__ = staticmethod(craft)
    file_bytes = staticmethod(file_bytes)
    seal = staticmethod(seal)
    record = staticmethod(tiny_record)


@pytest.fixture
def crafter() -> Crafter:
    """:func:`craft` (hostile network files with a valid digest) and its helpers."""
    return Crafter()


@pytest.fixture
def tiny() -> Callable[..., Network]:
    """:func:`tiny_network`: a fresh tiny network with weights on each call."""
    return tiny_network
