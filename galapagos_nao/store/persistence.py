"""Network files: one safetensors file per network, loaded without running code.

A file holds the trained weights as safetensors tensors and, in the safetensors
header's JSON metadata, the genome and metrics (``network``), the format's name
and version, and a SHA-256 digest of the weights. Safetensors itself only
guards the header's structure, so the digest is what catches altered weight
bytes. Nothing here unpickles: a pickle (or a ``torch.save`` archive) is
rejected as "not a safetensors file" before anything in it is interpreted.

The same bytes are what the workspace stores for each Library entry and archive
elite, so a damaged entry there is reported the same way as a damaged file.

Files are written atomically (a temporary file in the same folder, fsynced, then
renamed over the target), so a crash never leaves a half-written network.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import struct
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, BinaryIO

import torch

from galapagos_nao.core.checks import describe
from galapagos_nao.core.network import Network, build

__all__ = [
    "FILE_SUFFIX",
    "FORMAT",
    "FORMAT_VERSION",
    "CorruptFileError",
    "export_networks",
    "from_bytes",
    "load",
    "read_networks",
    "save",
    "to_bytes",
    "to_onnx",
    "weights_digest",
]

logger = logging.getLogger("galapagos_nao.store.persistence")

#: Value of the ``format`` metadata key in every network file.
FORMAT = "galapagos_nao.core.network"
#: Version of the metadata layout; files of a newer version are refused.
FORMAT_VERSION = 1
#: Suffix of the files :func:`export_networks` writes and :func:`read_networks` reads.
FILE_SUFFIX = ".safetensors"
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


class CorruptFileError(ValueError):
    """A network file or workspace entry is damaged or is not what it claims to be.

    The message starts with the file (and entry) and says what is wrong.
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
    try:
        return Network(**fields, weights=weights)
    except (ValueError, TypeError) as error:
        raise CorruptFileError(f"{source}: invalid network record: {error}") from None


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


# -- files --------------------------------------------------------------------


def _check_path(name: str, path: Any) -> Path:
    if not isinstance(path, (str, os.PathLike)) or not os.fspath(path):
        raise ValueError(f"{name} must be a non-empty str or os.PathLike, got {describe(path)}")
    return Path(path).expanduser()


def write_atomically(path: Path, data: bytes) -> None:
    """Writes ``data`` to ``path`` so that a crash leaves either the old file or the new one.

    The bytes are written and fsynced before the file gets its name, and the
    folder is fsynced so the name survives a power cut too. On Linux the file
    is written unnamed (``O_TMPFILE``) and linked into place, so even a SIGKILL
    mid-write leaves no partial file behind; elsewhere a temporary file is
    renamed over ``path``.
    """
    if not _write_unnamed(path, data):
        handle, temporary = tempfile.mkstemp(
            dir=path.parent, prefix=f".{path.name}.", suffix=".tmp"
        )
        try:
            with os.fdopen(handle, "wb") as file:
                _write_synced(file, data)
            os.replace(temporary, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temporary)
            raise
    _fsync_folder(path.parent)


def _write_synced(file: BinaryIO, data: bytes) -> None:
    file.write(data)
    file.flush()
    os.fsync(file.fileno())


def _write_unnamed(path: Path, data: bytes) -> bool:
    """The O_TMPFILE way of :func:`write_atomically`; False where the OS or file system lacks it."""
    flag = getattr(os, "O_TMPFILE", None)
    if flag is None:
        return False
    try:
        handle = os.open(path.parent, flag | os.O_WRONLY, 0o644)
    except OSError:
        return False
    folder = os.open(path.parent, os.O_RDONLY)
    try:
        with os.fdopen(handle, "wb") as file:
            _write_synced(file, data)
            # Linking through /proc with a dir_fd makes CPython call linkat(AT_SYMLINK_FOLLOW).
            source = f"/proc/self/fd/{file.fileno()}"
            try:
                os.link(source, path.name, dst_dir_fd=folder, follow_symlinks=True)
                return True  # a new name appears complete or not at all
            except FileExistsError:
                pass
            # Replacing needs a rename; its window leaves at worst a complete, hidden copy.
            temporary = f".{path.name}.{os.getpid()}.{id(data):x}.tmp"
            os.link(source, temporary, dst_dir_fd=folder, follow_symlinks=True)
        try:
            os.replace(temporary, path.name, src_dir_fd=folder, dst_dir_fd=folder)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temporary, dir_fd=folder)
            raise
        return True
    finally:
        os.close(folder)


def _fsync_folder(folder: Path) -> None:
    try:
        handle = os.open(folder, os.O_RDONLY)
    except OSError:  # folders cannot be opened on some platforms (Windows)
        return
    try:
        os.fsync(handle)
    except OSError:
        pass
    finally:
        os.close(handle)


def save(net: Network, path: str | os.PathLike[str]) -> Path:
    """Writes ``net`` (genome, metrics, weights) to one safetensors file, atomically.

    Args:
        net: The network.
        path: The file to write; its folder must exist. Replaced if present.

    Returns:
        The path written.

    Raises:
        ValueError: if ``net`` is not a Network or ``path`` is not a path.
        FileNotFoundError: if the folder does not exist.
    """
    target = _check_path("path", path)
    data = to_bytes(net)
    if not target.parent.is_dir():
        raise FileNotFoundError(f"path: folder {str(target.parent)!r} does not exist")
    write_atomically(target, data)
    return target


def load(path: str | os.PathLike[str]) -> Network:
    """Reads a network file written by :func:`save` (or ``net.save``); never runs code.

    Raises:
        ValueError: if ``path`` is not a path.
        FileNotFoundError: if there is no such file.
        CorruptFileError: naming the file and what is wrong with it.
    """
    source = _check_path("path", path)
    if not source.is_file():
        raise FileNotFoundError(f"path: no file {str(source)!r}")
    return from_bytes(source.read_bytes(), str(source))


def export_networks(nets: Iterable[Network], directory: str | os.PathLike[str]) -> list[Path]:
    """Saves each network as ``<id>.safetensors`` in ``directory`` (created if needed).

    Returns:
        The files written, in the order of ``nets``.
    """
    folder = _check_path("directory", directory)
    encoded = [(net.id, to_bytes(net)) for net in nets]  # encode all before touching the disk
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for net_id, data in encoded:
        target = folder / f"{net_id}{FILE_SUFFIX}"
        write_atomically(target, data)
        written.append(target)
    return written


def read_networks(directory: str | os.PathLike[str]) -> list[Network]:
    """Reads every ``*.safetensors`` network file in ``directory``, all or none.

    Raises:
        ValueError: if ``directory`` is not a path or holds no network files.
        FileNotFoundError: if it is not a folder.
        CorruptFileError: naming every damaged file and what is wrong with it.
    """
    folder = _check_path("directory", directory)
    if not folder.is_dir():
        raise FileNotFoundError(f"directory: no folder {str(folder)!r}")
    files = sorted(folder.glob(f"*{FILE_SUFFIX}"))
    if not files:
        raise ValueError(f"directory: {str(folder)!r} holds no {FILE_SUFFIX} network files")
    nets, problems = [], []
    for file in files:
        try:
            nets.append(from_bytes(file.read_bytes(), str(file)))
        except CorruptFileError as error:
            problems.append(str(error))
    if problems:
        raise CorruptFileError("; ".join(problems))
    return nets


# -- ONNX -----------------------------------------------------------------------

#: What to install for :func:`to_onnx`.
ONNX_EXTRA = "pip install 'galapagos-nao[onnx]'"


def to_onnx(net: Network, path: str | os.PathLike[str]) -> Path:
    """Exports the network's model (eval mode) to an ONNX file with a dynamic batch size.

    The graph takes ``input`` of shape ``(batch, *input_shape)`` float32 and
    returns ``logits`` of shape ``(batch, n_classes)``.

    Raises:
        ImportError: naming the ``onnx`` extra when onnx or onnxscript is missing.
        ValueError: if ``net`` is not a Network or ``path`` is not a path.
        FileNotFoundError: if the folder does not exist.
    """
    if not isinstance(net, Network):
        raise ValueError(f"net must be a Network, got {describe(net)}")
    target = _check_path("path", path)
    try:
        import onnx  # noqa: F401 - torch's exporter needs both
        import onnxscript  # noqa: F401
    except ImportError as error:
        raise ImportError(
            f"Network.to_onnx needs the 'onnx' extra: {ONNX_EXTRA} ({error})"
        ) from error
    if not target.parent.is_dir():
        raise FileNotFoundError(f"path: folder {str(target.parent)!r} does not exist")
    model = net.model()
    example = torch.zeros(2, *net.input_shape)
    batch = torch.export.Dim("batch", min=1)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".onnx-") as scratch:
        exported = Path(scratch) / target.name
        torch.onnx.export(
            model,
            (example,),
            str(exported),
            input_names=["input"],
            output_names=["logits"],
            dynamic_shapes=({0: batch},),
            external_data=False,  # one self-contained file
            dynamo=True,
            verbose=False,
        )
        write_atomically(target, exported.read_bytes())
    return target
