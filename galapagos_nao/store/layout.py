"""The bytes of a network file, checked before anything in them is believed.

A network file is a safetensors file: an 8-byte little-endian header length, a
JSON header (a tensor table plus string metadata), then the tensor bytes. Files
and workspace rows come from anyone, so this module reads that layout itself,
with limits, before any other code sees it:

- :func:`parse_header`: the length prefix and the JSON object, bounded in size
  and nesting, with duplicate keys refused (two parsers could disagree on them);
- :func:`tensor_table`: every tensor's dtype, shape and offsets, which must tile
  the data exactly, so a declared shape can never ask for more than the file holds;
- :func:`seal`/:func:`check_seal`: one SHA-256 digest over every byte of the file
  (the digest's own 64 hex characters counted as ``0``), so a change anywhere,
  metadata or tensors or the length prefix, is caught.

Everything wrong raises :class:`CorruptFileError` naming the file.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import math
import re
import struct
from typing import Any

from galapagos_nao.core.checks import describe
from galapagos_nao.core.record_checks import MAX_LAYERS, MAX_PARAMETERS

__all__ = [
    "DIGEST_KEY",
    "MAX_FILE_BYTES",
    "MAX_HEADER_BYTES",
    "MAX_LAYERS",
    "MAX_PARAMETERS",
    "CorruptFileError",
    "check_seal",
    "parse_header",
    "parse_json",
    "seal",
    "tensor_table",
]

#: The header of a network file is a few kilobytes; anything this large is not one.
MAX_HEADER_BYTES = 16 * 2**20
#: Largest network file read: the header plus every number as float64.
MAX_FILE_BYTES = 8 + MAX_HEADER_BYTES + 8 * MAX_PARAMETERS
#: Metadata key of the whole-file digest.
DIGEST_KEY = "sha256"

_PLACEHOLDER = b"0" * 64
_HEX64 = re.compile(r"[0-9a-f]{64}")
# Bytes per element of each safetensors dtype this library can read back.
_DTYPE_BYTES = {
    "BOOL": 1,
    "U8": 1,
    "I8": 1,
    "I16": 2,
    "U16": 2,
    "F16": 2,
    "BF16": 2,
    "I32": 4,
    "U32": 4,
    "F32": 4,
    "I64": 8,
    "U64": 8,
    "F64": 8,
}
_MAX_DIMS = 8


class CorruptFileError(ValueError):
    """A network file or workspace entry is damaged or is not what it claims to be.

    The message starts with the file (and entry) and says what is wrong.
    """


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for key, value in pairs:
        if key in found:
            raise ValueError(f"duplicate key {key!r}")
        found[key] = value
    return found


def parse_json(text: str | bytes, what: str, source: str) -> Any:
    """``json.loads`` for untrusted text: every failure is a :class:`CorruptFileError`.

    Deep nesting (RecursionError), integers too long to convert and duplicate
    keys are refused like malformed JSON.
    """
    try:
        return json.loads(text, object_pairs_hook=_no_duplicates)
    except RecursionError:
        raise CorruptFileError(f"{source}: {what} is nested too deeply") from None
    except ValueError as error:  # JSONDecodeError, UnicodeDecodeError, int digit limit
        raise CorruptFileError(f"{source}: {what} is unreadable ({error})") from None


def parse_header(data: bytes, source: str) -> tuple[dict[str, Any], int]:
    """The safetensors header of ``data`` and the offset where the tensor bytes start.

    Raises:
        CorruptFileError: if ``data`` is too large, too short, its length prefix
            is implausible (pickles and ``torch.save`` archives are named) or its
            header is not a JSON object.
    """
    if len(data) > MAX_FILE_BYTES:
        raise CorruptFileError(
            f"{source}: {len(data)} bytes; a network file has at most {MAX_FILE_BYTES}"
        )
    length = struct.unpack("<Q", data[:8])[0] if len(data) >= 8 else None
    if length is None or length > min(len(data) - 8, MAX_HEADER_BYTES):
        raise CorruptFileError(_not_safetensors(data, source, length))
    header = parse_json(data[8 : 8 + length], "the safetensors header", source)
    if not isinstance(header, dict):
        raise CorruptFileError(f"{source}: not a safetensors file: header is not a JSON object")
    return header, 8 + length


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


def tensor_table(
    header: dict[str, Any], data_bytes: int, source: str
) -> dict[str, tuple[str, tuple[int, ...]]]:
    """Every tensor's ``(dtype, shape)``, checked against the ``data_bytes`` that hold them.

    Raises:
        CorruptFileError: for an unknown dtype, a shape that is not a short list
            of non-negative ints within :data:`MAX_PARAMETERS`, offsets whose span
            is not what dtype and shape need, or spans that overlap, leave gaps or
            do not end where the data does.
    """
    table: dict[str, tuple[str, tuple[int, ...]]] = {}
    spans: list[tuple[int, int]] = []
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        where = f"{source}: tensor {describe(name)}"
        if not isinstance(entry, dict) or sorted(entry) != ["data_offsets", "dtype", "shape"]:
            raise CorruptFileError(f"{where}: its entry is not {{dtype, shape, data_offsets}}")
        dtype, shape, offsets = entry["dtype"], entry["shape"], entry["data_offsets"]
        if dtype not in _DTYPE_BYTES:
            raise CorruptFileError(f"{where}: unknown dtype {describe(dtype)}")
        if not _ints(shape, MAX_PARAMETERS) or len(shape) > _MAX_DIMS:
            raise CorruptFileError(f"{where}: shape {describe(shape)} is not a valid shape")
        elements = math.prod(shape)
        if elements > MAX_PARAMETERS:
            raise CorruptFileError(
                f"{where}: shape {shape} has {elements} elements, more than the limit of "
                f"{MAX_PARAMETERS}"
            )
        if not _ints(offsets, data_bytes) or len(offsets) != 2 or offsets[0] > offsets[1]:
            raise CorruptFileError(
                f"{where}: data_offsets {describe(offsets)} do not lie in its {data_bytes} bytes"
            )
        if offsets[1] - offsets[0] != elements * _DTYPE_BYTES[dtype]:
            raise CorruptFileError(
                f"{where}: data_offsets {offsets} span {offsets[1] - offsets[0]} bytes, "
                f"its {dtype} shape {shape} needs {elements * _DTYPE_BYTES[dtype]}"
            )
        table[name] = (dtype, tuple(shape))
        spans.append((offsets[0], offsets[1]))
    end = 0
    for begin, stop in sorted(spans):
        if begin != end:
            raise CorruptFileError(f"{source}: tensor data overlaps or has a gap at byte {begin}")
        end = stop
    if end != data_bytes:
        raise CorruptFileError(
            f"{source}: the tensors fill {end} bytes, the file holds {data_bytes} after its header"
        )
    return table


def _ints(values: Any, most: int) -> bool:
    """True for a list of ints (not bools) in ``[0, most]``."""
    return isinstance(values, list) and all(
        isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= most for v in values
    )


# -- the whole-file digest ------------------------------------------------------------


def _marker(digest: bytes) -> bytes:
    # The compact JSON of the metadata entry; a key inside a JSON string value would
    # have its quotes escaped, so this exact text can only be the entry itself.
    return b'"' + DIGEST_KEY.encode() + b'":"' + digest + b'"'


def _whole_digest(data: bytes, start: int) -> str:
    """SHA-256 of ``data`` with the 64 characters at ``start`` counted as ``0``."""
    view = memoryview(data)
    digest = hashlib.sha256(view[:start])
    digest.update(_PLACEHOLDER)
    digest.update(view[start + 64 :])
    return digest.hexdigest()


def seal(data: bytes, header_end: int) -> bytes:
    """Writes the whole-file digest into ``data``, whose digest entry holds 64 ``0``.

    Raises:
        ValueError: if the header does not hold the placeholder exactly once.
    """
    marker = _marker(_PLACEHOLDER)
    start = data.find(marker, 8, header_end)
    if start < 0 or data.find(marker, start + 1, header_end) >= 0:
        raise ValueError("the header must hold the digest placeholder exactly once")
    start += len(marker) - 65
    return data[:start] + _whole_digest(data, start).encode() + data[start + 64 :]


def check_seal(data: bytes, header_end: int, claimed: Any, source: str) -> None:
    """Checks the whole-file digest ``claimed`` by the metadata against every byte of ``data``.

    Raises:
        CorruptFileError: if the digest is missing, malformed, not found exactly
            once in the header's text, or does not match.
    """
    if not isinstance(claimed, str) or _HEX64.fullmatch(claimed) is None:
        raise CorruptFileError(f"{source}: the SHA-256 digest is missing or malformed")
    marker = _marker(claimed.encode())
    start = data.find(marker, 8, header_end)
    if start < 0 or data.find(marker, start + 1, header_end) >= 0:
        raise CorruptFileError(f"{source}: the SHA-256 digest is not where the format puts it")
    start += len(marker) - 65
    if not hmac.compare_digest(_whole_digest(data, start), claimed):
        raise CorruptFileError(
            f"{source}: the file does not match its SHA-256 digest (altered or damaged bytes)"
        )
