"""What travels between the run and a local worker process, as bytes: no pickle.

The ``processes`` backend (:mod:`galapagos_nao.run.processes`) talks to each
worker (:mod:`galapagos_nao.run.process_worker`) over its stdin and stdout.
Every message is one frame: two little-endian 8-byte lengths, a JSON header,
then a blob. The data travels as the tensors' raw bytes, described in the
header; networks as the library's own sealed file format
(:mod:`galapagos_nao.store.codec`), so reading a message never executes code.
What a worker sends back is checked like any input: a frame past
:data:`MAX_RESULT_BYTES`, a network whose seal does not hold, or a field of the
wrong type or range is refused with a :class:`WireError` naming it.

The messages:

- ``data``: the run's splits (parent to worker, once per task, validation
  fraction and worker);
- ``unit``: a group of candidates to train (parent to worker);
- ``result``: one outcome per candidate and the log records training emitted.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from galapagos_nao.core.checks import describe
from galapagos_nao.core.device_data import DeviceData
from galapagos_nao.core.fit_records import TrainSettings
from galapagos_nao.core.network import Network
from galapagos_nao.core.transform import InputTransform
from galapagos_nao.run.log_relay import LogEntry
from galapagos_nao.run.records import Candidate, Outcome
from galapagos_nao.store import codec

__all__ = [
    "MAX_RESULT_BYTES",
    "PREFIX_BYTES",
    "SPLITS",
    "Unit",
    "WireError",
    "frame_lengths",
    "frame_prefix",
    "result_message",
    "data_from_message",
    "data_message",
    "unit_from_message",
    "unit_message",
    "outcomes_from_message",
]

#: Bytes of a frame's prefix: the header's length, then the blob's.
PREFIX_BYTES = 16
#: Largest header and result frame the run reads from a worker (a trained
#: group's networks and log lines fit many times over).
MAX_HEADER_BYTES = 64 << 20
MAX_RESULT_BYTES = 4 << 30
#: Log records one result may carry; more is a worker gone wrong.
MAX_LOG_ENTRIES = 100_000
#: The splits the data message carries, in the order of their bytes.
SPLITS = ("x_train", "y_train", "x_val", "y_val", "x_test", "y_test")


class WireError(ValueError):
    """A message that is not what the protocol allows; names the field and value."""


def frame_prefix(header: Mapping[str, Any], blob_length: int) -> bytes:
    """The prefix and JSON header of a frame; a blob of ``blob_length`` bytes follows them."""
    text = json.dumps(header, allow_nan=False).encode()
    return len(text).to_bytes(8, "little") + blob_length.to_bytes(8, "little") + text


def frame_lengths(prefix: bytes | bytearray, max_blob: int) -> tuple[int, int]:
    """The header's and blob's lengths a prefix announces, checked before memory is spent.

    Raises:
        WireError: if either is past its limit.
    """
    header_length = int.from_bytes(prefix[:8], "little")
    blob_length = int.from_bytes(prefix[8:PREFIX_BYTES], "little")
    if header_length > MAX_HEADER_BYTES:
        raise WireError(f"frame header of {header_length} bytes is over {MAX_HEADER_BYTES}")
    if blob_length > max_blob:
        raise WireError(f"frame blob of {blob_length} bytes is over {max_blob}")
    return header_length, blob_length


def parse_header(text: bytes | bytearray) -> dict[str, Any]:
    """A frame's JSON header.

    Raises:
        WireError: if it is not a JSON object.
    """
    try:
        header = json.loads(text)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as error:
        raise WireError(f"frame header is not JSON: {error}") from None
    if not isinstance(header, dict):
        raise WireError(f"frame header must be a JSON object, got {describe(header)}")
    return header


# -- the data -----------------------------------------------------------------

#: Tensor types the data may hold, by name.
_DTYPES = {"float32": torch.float32, "int64": torch.int64}


def data_message(data: DeviceData) -> tuple[dict[str, Any], list[memoryview]]:
    """The run's splits on the CPU as a header and the tensors' own bytes, uncopied.

    The worker's tensors are views of the bytes it reads (:func:`data_from_message`),
    so each worker holds one copy of the splits and nothing else of the task.
    """
    tensors, parts, offset = {}, [], 0
    for name in SPLITS:
        tensor = getattr(data, name).contiguous()
        dtype = str(tensor.dtype).removeprefix("torch.")
        if dtype not in _DTYPES:
            raise ValueError(f"data: {name} is {tensor.dtype}, not one of {sorted(_DTYPES)}")
        part = memoryview(tensor.numpy()).cast("B")
        tensors[name] = [dtype, list(tensor.shape), offset, part.nbytes]
        parts.append(part)
        offset += part.nbytes
    header = {
        "kind": "data",
        "tensors": tensors,
        "input_shape": list(data.input_shape),
        "n_classes": data.n_classes,
        "input_transform": data.input_transform.to_dict(),
    }
    return header, parts


def data_from_message(header: Mapping[str, Any], blob: bytearray) -> DeviceData:
    """The inverse of :func:`data_message` (run by the worker): tensors viewing ``blob``."""
    tensors = {}
    for name in SPLITS:
        dtype, shape, offset, nbytes = header["tensors"][name]
        kind = _DTYPES[dtype]
        count = nbytes // kind.itemsize
        flat = torch.frombuffer(blob, dtype=kind, count=count, offset=offset) if count else None
        tensors[name] = (flat if flat is not None else torch.empty(0, dtype=kind)).view(shape)
    return DeviceData(
        device=torch.device("cpu"),
        input_shape=tuple(header["input_shape"]),
        n_classes=header["n_classes"],
        input_transform=InputTransform.from_dict(header["input_transform"]),
        **tensors,
    )


# -- a unit of training --------------------------------------------------------


@dataclass(frozen=True)
class Unit:
    """A group of candidates to train in a worker, as the worker reads it.

    Attributes:
        candidates: The group, in order (one: it trains alone).
        settings: The generation's training settings.
        device: Where it trains.
        timeout: Seconds it may train (the whole group's allowance).
        threads: Torch intra-op threads, as a local worker thread would use.
        budget: Bytes it may need to train, or None.
        padded_share: The group's share of multiply-adds spent on padding.
        log_level: The run's level for ``galapagos_nao``; records below it stay behind.
    """

    candidates: tuple[Candidate, ...]
    settings: TrainSettings
    device: str
    timeout: float
    threads: int
    budget: int | None
    padded_share: float
    log_level: int


def unit_message(unit: Unit) -> tuple[dict[str, Any], bytes]:
    """The unit as a header and a blob holding each parent as a sealed network file.

    Raises:
        ValueError: if a parent record cannot be written (see :func:`codec.to_bytes`).
    """
    blob = bytearray()
    candidates = []
    for candidate in unit.candidates:
        fields = {
            "index": candidate.index,
            "generation": candidate.generation,
            "layers": [[name, list(params)] for name, params in candidate.layers],
            "seed": candidate.seed,
            "origins": None if candidate.origins is None else list(candidate.origins),
            "mutations": list(candidate.mutations),
            "inherit": candidate.inherit,
            "parent": None,
        }
        if candidate.parent is not None:
            parent = candidate.parent
            if candidate.inherited_weights is None:  # only what training reads travels
                parent = parent.replace(weights=None)
            data = codec.to_bytes(parent)
            fields["parent"] = [len(blob), len(data)]
            blob += data
        candidates.append(fields)
    plain = {f.name: getattr(unit, f.name) for f in dataclasses.fields(unit)}
    plain.update(kind="unit", candidates=candidates, settings=dataclasses.asdict(unit.settings))
    return plain, bytes(blob)


def unit_from_message(header: Mapping[str, Any], blob: bytes | bytearray) -> Unit:
    """The inverse of :func:`unit_message` (run by the worker)."""
    candidates = []
    for fields in header["candidates"]:
        parent = None
        if fields["parent"] is not None:
            start, length = fields["parent"]
            parent = codec.from_bytes(bytes(blob[start : start + length]), "the parent record")
        candidates.append(
            Candidate(
                index=fields["index"],
                generation=fields["generation"],
                layers=tuple((name, list(params)) for name, params in fields["layers"]),
                seed=fields["seed"],
                parent=parent,
                origins=None if fields["origins"] is None else tuple(fields["origins"]),
                mutations=tuple(fields["mutations"]),
                inherit=fields["inherit"],
            )
        )
    plain = {k: v for k, v in header.items() if k not in ("kind", "candidates", "settings")}
    return Unit(candidates=tuple(candidates), settings=TrainSettings(**header["settings"]), **plain)


# -- the result ----------------------------------------------------------------


def result_message(
    outcomes: Sequence[Outcome], logs: Sequence[LogEntry]
) -> tuple[dict[str, Any], bytes]:
    """What a worker sends back: each outcome without its candidate, networks in the blob."""
    blob = bytearray()
    entries = []
    for outcome in outcomes:
        entry: dict[str, Any] = {
            "failure": outcome.failure,
            "stopped": outcome.stopped,
            "seconds": outcome.seconds,
            "group_size": outcome.group_size,
            "padded_share": outcome.padded_share,
            "network": None,
        }
        if outcome.network is not None:
            data = codec.to_bytes(outcome.network)
            entry["network"] = [len(blob), len(data)]
            blob += data
        entries.append(entry)
    return {"kind": "result", "outcomes": entries, "logs": [list(e) for e in logs]}, bytes(blob)


def outcomes_from_message(
    header: Mapping[str, Any], blob: bytes, group: Sequence[Candidate], source: str
) -> tuple[list[Outcome], list[LogEntry]]:
    """The outcomes of ``group`` and the log records a worker's result carries.

    Args:
        header: The result's header.
        blob: The result's blob.
        group: The candidates the unit held, in the order sent.
        source: Names the worker in errors.

    Raises:
        WireError: naming the outcome index, field and value that is not allowed,
            or the network whose file does not read back.
    """
    entries = _field(header, "outcomes", list, source)
    if len(entries) != len(group):
        raise WireError(f"{source}: {len(entries)} outcomes for a unit of {len(group)}")
    outcomes = [
        _outcome(entry, blob, candidate, f"{source}: outcome {index}")
        for index, (entry, candidate) in enumerate(zip(entries, group, strict=True))
    ]
    return outcomes, _logs(_field(header, "logs", list, source), source)


def _outcome(entry: Any, blob: bytes, candidate: Candidate, where: str) -> Outcome:
    if not isinstance(entry, dict):
        raise WireError(f"{where} must be a JSON object, got {describe(entry)}")
    failure = _field(entry, "failure", (str, type(None)), where)
    stopped = _field(entry, "stopped", bool, where)
    seconds = _number(entry, "seconds", where, 0.0, math.inf)
    padded_share = _number(entry, "padded_share", where, 0.0, 1.0)
    group_size = _field(entry, "group_size", int, where)
    if isinstance(group_size, bool) or group_size < 1:
        raise WireError(f"{where}: group_size must be an int >= 1, got {describe(group_size)}")
    network = _network(_field(entry, "network", (list, type(None)), where), blob, where)
    if (network is not None) + (failure is not None) + stopped != 1:
        raise WireError(f"{where}: must hold exactly one of a network, a failure or stopped")
    if network is not None and _plain(network.layers) != _plain(candidate.layers):
        raise WireError(f"{where}: its network's layers are not the candidate's")
    return Outcome(
        candidate,
        network=network,
        failure=failure,
        stopped=stopped,
        seconds=seconds,
        group_size=group_size,
        padded_share=padded_share,
    )


def _plain(layers: Sequence[Any]) -> list[tuple[str, list[Any]]]:
    return [(name, list(params)) for name, params in layers]


def _network(span: list[Any] | None, blob: bytes, where: str) -> Network | None:
    if span is None:
        return None
    if len(span) != 2 or not all(type(n) is int and 0 <= n <= len(blob) for n in span):
        raise WireError(f"{where}: network must be [offset, length] within the blob, got {span}")
    start, length = span
    try:
        return codec.from_bytes(blob[start : start + length], f"{where}'s network")
    except codec.CorruptFileError as error:
        raise WireError(str(error)) from None


def _logs(entries: list[Any], source: str) -> list[LogEntry]:
    if len(entries) > MAX_LOG_ENTRIES:
        raise WireError(f"{source}: {len(entries)} log records, over {MAX_LOG_ENTRIES}")
    logs = []
    for index, entry in enumerate(entries):
        if not (
            isinstance(entry, list)
            and len(entry) == 3
            and isinstance(entry[0], str)
            and entry[0].startswith("galapagos_nao")
            and type(entry[1]) is int
            and isinstance(entry[2], str)
        ):
            raise WireError(f"{source}: log record {index} is not [name, level, message]")
        logs.append((entry[0], entry[1], entry[2]))
    return logs


def _field(fields: Mapping[str, Any], name: str, kind: Any, where: str) -> Any:
    if name not in fields:
        raise WireError(f"{where}: missing field {name!r}")
    value = fields[name]
    if not isinstance(value, kind):
        raise WireError(f"{where}: {name} has the wrong type: {describe(value)}")
    return value


def _number(fields: Mapping[str, Any], name: str, where: str, low: float, high: float) -> float:
    value = _field(fields, name, (int, float), where)
    if isinstance(value, bool) or not (low <= value <= high) or math.isnan(value):
        raise WireError(f"{where}: {name} must be a number in [{low}, {high}], got {value!r}")
    return float(value)
