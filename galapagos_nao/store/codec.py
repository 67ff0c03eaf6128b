"""The network codec: one Network <-> the bytes of one safetensors file, checked on the way in.

The bytes hold the trained weights as safetensors tensors and, in the
safetensors header's JSON metadata, the genome and metrics (``network``) and
the format's name and version. Since version 2 one SHA-256 digest covers every
byte of the file (see :mod:`~galapagos_nao.store.layout`): a change to an id, a
metric, the mutation log, ``has_weights`` or a weight is caught alike. Version
1 files, whose digest covered the weights only, are refused
(:class:`OldFormatError`) except by the explicit upgrade step
(:func:`~galapagos_nao.store.persistence.upgrade`), which says what it cannot
verify; a single flipped bit cannot make a version 2 file claim version 1
(``"2"`` and ``"1"`` differ in two bits).

Decoding believes nothing before it is checked, in this order: the layout and
the digest; ids (they become file names); the record's metrics and the
genome's size, computed by building it on the ``meta`` device (no memory) and
compared with the stored tensors, ``n_params`` and
:data:`~galapagos_nao.store.layout.MAX_PARAMETERS`; only then are tensors read.
Those record checks are :mod:`~galapagos_nao.core.record_checks`, which
:func:`to_bytes` and every other writer run as well: what is written reads back.
Nothing here unpickles: a pickle (or a ``torch.save`` archive) is rejected as
"not a safetensors file" before anything in it is interpreted.

These bytes are what :mod:`~galapagos_nao.store.persistence` writes to files and
what the workspace stores for each Library entry and archive elite, so a
damaged entry there is reported the same way as a damaged file.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import json
from collections.abc import Mapping
from typing import Any

import torch

from galapagos_nao.core import genome
from galapagos_nao.core.checks import describe
from galapagos_nao.core.ids import check_id
from galapagos_nao.core.network import Network
from galapagos_nao.core.record_checks import (
    check_fit,
    check_metrics,
    check_parameter_count,
    check_record,
    check_size,
    check_total,
    shapes_and_count,
)
from galapagos_nao.core.transform import IDENTITY, InputTransform
from galapagos_nao.store.layout import (
    DIGEST_KEY,
    MAX_FILE_BYTES,
    MAX_LAYERS,
    MAX_PARAMETERS,
    CorruptFileError,
    check_seal,
    parse_header,
    parse_json,
    seal,
    tensor_table,
)

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "MAX_FILE_BYTES",
    "MAX_LAYERS",
    "MAX_PARAMETERS",
    "V1_UNVERIFIED",
    "CorruptFileError",
    "OldFormatError",
    "UnknownLayerError",
    "from_bytes",
    "to_bytes",
    "weights_digest",
]

#: Value of the ``format`` metadata key in every network file.
FORMAT = "galapagos_nao.core.network"
#: Version of the layout written: 2, one digest over the whole file.
FORMAT_VERSION = 2
# Versions read, with the metadata keys each must have.
_VERSION_KEYS = {"1": ("network", "has_weights", "weights_sha256"), "2": ("network", "has_weights")}
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


class OldFormatError(CorruptFileError):
    """A version 1 network file: its digest covers the weights only.

    Its genome, ids and metrics cannot be verified, so it is read only through
    :func:`~galapagos_nao.store.persistence.upgrade`, which says so and rewrites
    it as version 2.
    """


#: What a version 1 file's digest leaves unverified, as the upgrade step says it.
V1_UNVERIFIED = (
    "its genome, ids, metrics and mutation log were not covered by its digest (version 1 "
    "sealed the weights only), so a change to them cannot be detected"
)


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
    """The network as the bytes of one safetensors file (weights + JSON metadata), sealed.

    Raises:
        ValueError: naming the field, if ``net`` is not a Network or holds what
            :func:`from_bytes` would refuse (see
            :func:`~galapagos_nao.core.record_checks.check_record`): an unsafe
            id, a metric out of range, a genome past the limits, weights that do
            not fit it, an ``n_params`` that is not its count.
    """
    check_record(net)  # what could not be read back is never written
    weights = {} if net.weights is None else {k: v.contiguous() for k, v in net.weights.items()}
    metadata = {
        "format": FORMAT,
        "version": str(FORMAT_VERSION),
        "network": json.dumps(_record(net)),
        "has_weights": "1" if net.weights is not None else "0",
        DIGEST_KEY: "0" * 64,  # sealed below, once every other byte is known
    }
    data = _safetensors_bytes(weights, metadata)
    return seal(data, 8 + int.from_bytes(data[:8], "little"))


#: Tensor types numpy holds as they are: these go through safetensors' numpy writer.
_NUMPY_DTYPES = frozenset(
    {
        torch.float64,
        torch.float32,
        torch.float16,
        torch.int64,
        torch.int32,
        torch.int16,
        torch.int8,
        torch.uint8,
        torch.bool,
    }
)


def _safetensors_bytes(weights: Mapping[str, torch.Tensor], metadata: dict[str, str]) -> bytes:
    """``weights`` and ``metadata`` as the bytes of one safetensors file.

    Written by safetensors' numpy writer, which writes the same header and
    tensor bytes as its torch writer: the torch writer (0.8) makes a ctypes array type for every
    distinct tensor size it sees, and ctypes keeps each for the life of the
    process. A continual run checkpoints networks of ever-new shapes, so its
    memory grew without bound (measured: 111 MiB after 20,000 sizes; the numpy
    writer, 0.3 MiB). Types numpy lacks (bfloat16) still take the torch writer.
    """
    if all(tensor.dtype in _NUMPY_DTYPES for tensor in weights.values()):
        from safetensors.numpy import save as save_arrays

        arrays = {name: tensor.detach().cpu().numpy() for name, tensor in weights.items()}
        return bytes(save_arrays(arrays, metadata=metadata))
    from safetensors.torch import save as save_tensors

    return bytes(save_tensors(dict(weights), metadata=metadata))


# -- decoding -----------------------------------------------------------------


def _metadata(header: Mapping[str, Any], source: str) -> dict[str, str]:
    metadata = header.get("__metadata__")
    if not isinstance(metadata, dict) or metadata.get("format") != FORMAT:
        raise CorruptFileError(
            f"{source}: a safetensors file but not a galapagos_nao network (no {FORMAT!r} metadata)"
        )
    version = metadata.get("version")
    if version not in _VERSION_KEYS:
        raise CorruptFileError(
            f"{source}: network format version {describe(version)} is not supported "
            f"(this version reads {', '.join(_VERSION_KEYS)})"
        )
    for key in _VERSION_KEYS[version]:
        if not isinstance(metadata.get(key), str):
            raise CorruptFileError(f"{source}: metadata key {key!r} is missing")
    if metadata["has_weights"] not in ("0", "1"):
        raise CorruptFileError(
            f"{source}: has_weights must be '0' or '1', got {describe(metadata['has_weights'])}"
        )
    return metadata


def _fields(record: Any, source: str) -> dict[str, Any]:
    """The record's fields, with everything that sizes or names something checked first."""
    if not isinstance(record, dict):
        raise CorruptFileError(f"{source}: the network record is not a JSON object")
    missing = [name for name in _RECORD_FIELDS if name not in record]
    if missing:
        raise CorruptFileError(f"{source}: the network record lacks {missing}")
    fields = {name: record[name] for name in _RECORD_FIELDS}
    for name in ("layers", "input_shape", "mutations"):
        if not isinstance(fields[name], list):
            raise CorruptFileError(f"{source}: {name} must be a list, got {describe(fields[name])}")
    try:  # the gate every writer passes too (see core.record_checks)
        check_size(len(fields["layers"]), fields["input_shape"])
        check_id("id", fields["id"])
        if fields["parent_id"] is not None:
            check_id("parent_id", fields["parent_id"])
        check_metrics(fields)
    except ValueError as error:
        raise CorruptFileError(f"{source}: {error}") from None
    fields["input_shape"] = tuple(fields["input_shape"])
    _check_layer_types(fields["layers"], source)
    transform = record.get(_TRANSFORM_FIELD)
    try:
        fields[_TRANSFORM_FIELD] = (
            IDENTITY if transform is None else InputTransform.from_dict(transform)
        )
    except (ValueError, TypeError) as error:
        raise CorruptFileError(f"{source}: invalid input transform: {error}") from None
    return fields


def _check_layer_types(layers: list[Any], source: str) -> None:
    """Tells an unregistered layer type from damage: the fix is a register_layer call."""
    known = genome.layer_types()
    for index, layer in enumerate(layers):
        type_name = layer[0] if isinstance(layer, list) and layer else None
        if isinstance(type_name, str) and type_name not in known:
            raise UnknownLayerError(
                f"{source}: layers[{index}] has layer type {type_name!r}, which is not "
                f"registered in this process (known: {sorted(known)}); register it with "
                f"gn.register_layer({type_name!r}, params, build) as the code that wrote "
                "the file did, then load it again"
            )


def _tensors(data: bytes, source: str) -> dict[str, torch.Tensor]:
    from safetensors import SafetensorError
    from safetensors.torch import load as load_tensors

    try:
        return dict(load_tensors(data))
    except (SafetensorError, ValueError, RuntimeError) as error:
        raise CorruptFileError(f"{source}: damaged safetensors data: {error}") from None


def from_bytes(data: bytes, source: str = "<bytes>", *, upgrade: bool = False) -> Network:
    """Decodes what :func:`to_bytes` wrote, checking every part.

    Args:
        data: The file's bytes.
        source: Names the file or entry in error messages.
        upgrade: True reads a version 1 file too (its weights checked against
            their digest, everything else as for version 2 but unsealed); only
            the explicit upgrade step passes it.

    Returns:
        The Network, with its id, metrics and weights.

    Raises:
        CorruptFileError: naming ``source`` and what is wrong (not safetensors,
            truncated, altered bytes, unsafe id, invalid or oversized genome,
            weights that do not fit); never another error for crafted bytes.
        OldFormatError: for a version 1 file unless ``upgrade``.
    """
    try:
        return _decode(data, source, upgrade)
    except (RecursionError, OverflowError, MemoryError) as error:
        # Every check above is bounded; this is the net under them for crafted input.
        raise CorruptFileError(
            f"{source}: refused ({type(error).__name__}: {describe(str(error))})"
        ) from None


def _decode(data: bytes, source: str, upgrade: bool) -> Network:
    header, header_end = parse_header(data, source)
    metadata = _metadata(header, source)
    if metadata["version"] == "1" and not upgrade:
        raise OldFormatError(
            f"{source}: a version 1 network file: {V1_UNVERIFIED}; read it through "
            "gn.upgrade(path), which says so and rewrites it as version 2"
        )
    if metadata["version"] != "1":
        check_seal(data, header_end, metadata.get(DIGEST_KEY), source)
    table = tensor_table(header, len(data) - header_end, source)
    fields = _fields(parse_json(metadata["network"], "the network record", source), source)
    try:
        net = Network(**fields)
    except (ValueError, TypeError) as error:
        raise CorruptFileError(f"{source}: invalid network record: {error}") from None
    try:
        expected, counted = shapes_and_count(net)
        if metadata["has_weights"] == "1":
            check_fit(expected, {name: shape for name, (_, shape) in table.items()})
        check_total(expected)
        check_parameter_count(net.n_params, counted)
    except ValueError as error:
        raise CorruptFileError(f"{source}: {error}") from None
    if metadata["has_weights"] == "0" and table:
        raise CorruptFileError(f"{source}: has_weights is '0' but the file holds tensors")
    if metadata["has_weights"] == "0":
        return net
    tensors = _tensors(data, source)
    if metadata["version"] == "1" and not hmac.compare_digest(
        weights_digest(tensors), metadata["weights_sha256"]
    ):
        raise CorruptFileError(
            f"{source}: the weights do not match their SHA-256 digest (altered or damaged bytes)"
        )
    return dataclasses.replace(net, weights=tensors)
