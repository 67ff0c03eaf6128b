"""Network files: one safetensors file per network, loaded without running code.

A file holds exactly the bytes of :mod:`~galapagos_nao.store.codec` (weights,
genome and metrics under one digest); this module puts them on disk and reads
them back: :func:`save`/:func:`load` for one network,
:func:`export_networks`/:func:`read_networks` for a folder of them, and
:func:`to_onnx` for an ONNX graph of the model. The codec's names
(:func:`to_bytes`, :func:`from_bytes`, :class:`CorruptFileError`, ...) are
re-exported here, where callers have always found them.

Files are written atomically (a temporary file in the same folder, fsynced, then
renamed over the target), so a crash never leaves a half-written network.
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any, BinaryIO

import torch

from galapagos_nao.core.checks import describe
from galapagos_nao.core.network import Network
from galapagos_nao.store.codec import (
    FORMAT,
    FORMAT_VERSION,
    CorruptFileError,
    UnknownLayerError,
    from_bytes,
    to_bytes,
    weights_digest,
)

__all__ = [
    "FILE_SUFFIX",
    "FORMAT",
    "FORMAT_VERSION",
    "CorruptFileError",
    "UnknownLayerError",
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

#: Suffix of the files :func:`export_networks` writes and :func:`read_networks` reads.
FILE_SUFFIX = ".safetensors"


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
        UnknownLayerError: naming the file and a layer type not registered in
            this process (a CorruptFileError, though the file may be fine).
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

    The graph takes ``input`` of shape ``(batch, *input_shape)`` float32 as
    users hold the data (0..1 images for MNIST: the network's input transform
    is part of the graph) and returns ``logits`` of shape ``(batch, n_classes)``.

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
