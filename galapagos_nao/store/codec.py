"""The network codec: one Network <-> the bytes of one safetensors file, checked on the way in.

The bytes hold the trained weights as safetensors tensors and, in the
safetensors header's JSON metadata, the genome and metrics (``network``), the
format's name and version, and a SHA-256 digest of the weights. Safetensors
itself only guards the header's structure, so the digest is what catches
altered weight bytes. Nothing here unpickles: a pickle (or a ``torch.save``
archive) is rejected as "not a safetensors file" before anything in it is
interpreted.

These bytes are what :mod:`~galapagos_nao.store.persistence` writes to files and
what the workspace stores for each Library entry and archive elite, so a
damaged entry there is reported the same way as a damaged file.
"""

from __future__ import annotations

import hashlib
import json
import struct
from collections.abc import Mapping
from typing import Any

import torch

from galapagos_nao.core import genome
from galapagos_nao.core.checks import describe
from galapagos_nao.core.network import Network, build
from galapagos_nao.core.transform import IDENTITY, InputTransform

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "CorruptFileError",
    "UnknownLayerError",
    "from_bytes",
    "to_bytes",
    "weights_digest",
]

#: Value of the ``format`` metadata key in every network file.
FORMAT = "galapagos_nao.core.network"
#: Version of the metadata layout; files of a newer version are refused.
FORMAT_VERSION = 1
#: The header of a network file is a few kilobytes; anything this large is not one.
_MAX_HEADER_BYTES = 16 * 2**20
# The record fields stored as JSON next to the weights, in the order Network declares them.
_RECORD_FIELDS = (
    "layers",
    "input_shape",
    "n_classes",
    "id",
    "test_acc",
    "val_acc",
    "train_acc",
    "loss",
    "n_params",
    "parent_id",
    "generation",
    "mutations",
)
# Written since input transforms were recorded; a record without it is an older
# file whose network takes standardized inputs, i.e. the identity transform.
_TRANSFORM_FIELD = "input_transform"


class CorruptFileError(ValueError):
    """A network file or workspace entry is damaged or is not what it claims to be.

    The message starts with the file (and entry) and says what is wrong.
    """


class UnknownLayerError(CorruptFileError):
    """A network file uses a layer type that this process has not registered.

    The file may be fine: register the type (``gn.register_layer``) as the
    process that wrote it did, then load it again.
    """


# -- encoding -----------------------------------------------------------------


def weights_digest(weights: Mapping[str, torch.Tensor]) -> str:
    """SHA-256 over every tensor's name, dtype, shape and bytes, in name order."""
    digest = hashlib.sha256()
    for name in sorted(weights):
        tensor = weights[name].detach().to("cpu").contiguous()
        digest.update(f"{name}\0{tensor.dtype}\0{tuple(tensor.shape)}\0".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def _record(net: Network) -> dict[str, Any]:
    record = {name: getattr(net, name) for name in _RECORD_FIELDS}
    record["layers"] = net.genome
    record["input_shape"] = list(net.input_shape)
    record["mutations"] = list(net.mutations)
    record[_TRANSFORM_FIELD] = net.input_transform.to_dict()
    return record


def to_bytes(net: Network) -> bytes:
    """The network as the bytes of one safetensors file (weights + JSON metadata).

    Raises:
        ValueError: if ``net`` is not a Network.
    """
    if not isinstance(net, Network):
        raise ValueError(f"net must be a Network, got {describe(net)}")
    from safetensors.torch import save as save_tensors

    weights = {} if net.weights is None else {k: v.contiguous() for k, v in net.weights.items()}
    metadata = {
        "format": FORMAT,
        "version": str(FORMAT_VERSION),
        "network": json.dumps(_record(net)),
        "has_weights": "1" if net.weights is not None else "0",
        "weights_sha256": weights_digest(weights),
    }
    return bytes(save_tensors(weights, metadata=metadata))


# -- decoding -----------------------------------------------------------------


def _header(data: bytes, source: str) -> dict[str, Any]:
    """The safetensors header, checked enough to give a precise message."""
    length = struct.unpack("<Q", data[:8])[0] if len(data) >= 8 else None
    if length is None or length > min(len(data) - 8, _MAX_HEADER_BYTES):
        raise CorruptFileError(_not_safetensors(data, source, length))
    try:
        header = json.loads(data[8 : 8 + length].decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise CorruptFileError(
            f"{source}: not a safetensors file: unreadable header ({error})"
        ) from None
    if not isinstance(header, dict):
        raise CorruptFileError(f"{source}: not a safetensors file: header is not a JSON object")
    return header


def _not_safetensors(data: bytes, source: str, length: int | None) -> str:
    """Why ``data`` cannot be a safetensors file, naming pickles and torch.save archives."""
    # Only once the length prefix is implausible: a real length may begin with 0x80.
    if data[:4] == b"PK\x03\x04" or data[:1] == b"\x80":
        kind = "a zip archive (torch.save?)" if data[:2] == b"PK" else "a pickle"
        return (
            f"{source}: is {kind}, not a safetensors file; "
            "it is not loaded because unpickling can run code"
        )
    if length is None:
        return f"{source}: not a safetensors file: only {len(data)} bytes"
    return (
        f"{source}: not a safetensors file (or truncated): its header claims {length} bytes "
        f"but the file has {len(data)}"
    )


def _metadata(header: Mapping[str, Any], source: str) -> dict[str, str]:
    metadata = header.get("__metadata__")
    if not isinstance(metadata, dict) or metadata.get("format") != FORMAT:
        raise CorruptFileError(
            f"{source}: a safetensors file but not a galapagos_nao network (no {FORMAT!r} metadata)"
        )
    version = metadata.get("version")
    if version != str(FORMAT_VERSION):
        raise CorruptFileError(
            f"{source}: network format version {version!r} is not supported "
            f"(this version reads {FORMAT_VERSION})"
        )
    for key in ("network", "has_weights", "weights_sha256"):
        if not isinstance(metadata.get(key), str):
            raise CorruptFileError(f"{source}: metadata key {key!r} is missing")
    return metadata


def _tensors(data: bytes, source: str) -> dict[str, torch.Tensor]:
    from safetensors import SafetensorError
    from safetensors.torch import load as load_tensors

    try:
        return dict(load_tensors(data))
    except (SafetensorError, ValueError, RuntimeError) as error:
        raise CorruptFileError(f"{source}: damaged safetensors data: {error}") from None


def _network(record: Any, weights: dict[str, torch.Tensor] | None, source: str) -> Network:
    if not isinstance(record, dict):
        raise CorruptFileError(f"{source}: the network record is not a JSON object")
    missing = [name for name in _RECORD_FIELDS if name not in record]
    if missing:
        raise CorruptFileError(f"{source}: the network record lacks {missing}")
    fields = {name: record[name] for name in _RECORD_FIELDS}
    for name in ("input_shape", "mutations"):
        if not isinstance(fields[name], list):
            raise CorruptFileError(f"{source}: {name} must be a list, got {describe(fields[name])}")
    fields["input_shape"] = tuple(fields["input_shape"])
    _check_layer_types(fields["layers"], source)
    try:
        transform = record.get(_TRANSFORM_FIELD)
        fields[_TRANSFORM_FIELD] = (
            IDENTITY if transform is None else InputTransform.from_dict(transform)
        )
        return Network(**fields, weights=weights)
    except (ValueError, TypeError) as error:
        raise CorruptFileError(f"{source}: invalid network record: {error}") from None


def _check_layer_types(layers: Any, source: str) -> None:
    """Tells an unregistered layer type from damage: the fix is a register_layer call."""
    known = genome.layer_types()
    for index, layer in enumerate(layers if isinstance(layers, list) else ()):
        type_name = layer[0] if isinstance(layer, list) and layer else None
        if isinstance(type_name, str) and type_name not in known:
            raise UnknownLayerError(
                f"{source}: layers[{index}] has layer type {type_name!r}, which is not "
                f"registered in this process (known: {sorted(known)}); register it with "
                f"gn.register_layer({type_name!r}, params, build) as the code that wrote "
                "the file did, then load it again"
            )


def _check_fit(net: Network, source: str) -> None:
    """The weights must be exactly what the genome compiles to, or model() would fail later."""
    if net.weights is None:
        return
    expected = build(net.layers, net.input_shape, net.n_classes).state_dict()
    for name, tensor in expected.items():
        found = net.weights.get(name)
        if found is None:
            raise CorruptFileError(f"{source}: weights lack {name!r}, which the genome needs")
        if tuple(found.shape) != tuple(tensor.shape):
            raise CorruptFileError(
                f"{source}: weight {name!r} has shape {tuple(found.shape)}, "
                f"the genome needs {tuple(tensor.shape)}"
            )
    extra = sorted(set(net.weights) - set(expected))
    if extra:
        raise CorruptFileError(f"{source}: weights {extra} do not belong to the genome")


def from_bytes(data: bytes, source: str = "<bytes>") -> Network:
    """Decodes what :func:`to_bytes` wrote, checking every part.

    Args:
        data: The file's bytes.
        source: Names the file or entry in error messages.

    Returns:
        The Network, with its id, metrics and weights.

    Raises:
        CorruptFileError: naming ``source`` and what is wrong (not safetensors,
            truncated, altered weights, invalid genome, weights that do not fit).
    """
    header = _header(data, source)
    metadata = _metadata(header, source)
    try:
        record = json.loads(metadata["network"])
    except json.JSONDecodeError as error:
        raise CorruptFileError(f"{source}: unreadable network record ({error})") from None
    tensors = _tensors(data, source)
    if weights_digest(tensors) != metadata["weights_sha256"]:
        raise CorruptFileError(
            f"{source}: the weights do not match their SHA-256 digest (altered or damaged bytes)"
        )
    net = _network(record, tensors if metadata["has_weights"] == "1" else None, source)
    _check_fit(net, source)
    return net
