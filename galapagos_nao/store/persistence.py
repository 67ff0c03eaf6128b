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

Files are read as untrusted: only regular files, at most
:data:`~galapagos_nao.store.layout.MAX_FILE_BYTES`, opened without blocking (a
FIFO cannot stall a read) and, inside a folder being imported, without
following symbolic links. Export writes each network under its id, which is
checked (see :func:`~galapagos_nao.core.ids.check_id`) for every network before
the first file is written, so no id can point outside the folder or stop an
export half-way.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import stat
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any, BinaryIO

import torch

from galapagos_nao.core.checks import describe
from galapagos_nao.core.ids import check_id
from galapagos_nao.core.network import Network
from galapagos_nao.store.codec import (
    FORMAT,
    FORMAT_VERSION,
    MAX_FILE_BYTES,
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

    A symbolic link named here is followed, to a regular file only.

    Raises:
        ValueError: if ``path`` is not a path.
        FileNotFoundError: if there is no such file.
        UnknownLayerError: naming the file and a layer type not registered in
            this process (a CorruptFileError, though the file may be fine).
        CorruptFileError: naming the file and what is wrong with it (also when
            it is not a regular file or is larger than any network file).
    """
    source = _check_path("path", path)
    return from_bytes(read_file(source, follow_links=True), str(source))


def read_file(path: Path, *, follow_links: bool) -> bytes:
    """The bytes of ``path`` if it is a regular file of at most ``MAX_FILE_BYTES``.

    It is opened non-blocking (a FIFO answers at once) and checked with
    ``fstat`` on the open descriptor, so what is checked is what is read.

    Args:
        path: The file.
        follow_links: False refuses a symbolic link (for files found in a
            folder); True follows one the caller named, to a regular file only.

    Raises:
        FileNotFoundError: if there is no such file.
        CorruptFileError: naming the file if it is a link (when not followed),
            not a regular file, or too large.
    """
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
    if not follow_links:
        flags |= getattr(os, "O_NOFOLLOW", 0)
    try:
        handle = os.open(path, flags)
    except FileNotFoundError:
        raise FileNotFoundError(f"path: no file {str(path)!r}") from None
    except OSError as error:
        if error.errno == errno.ELOOP and not follow_links:
            raise CorruptFileError(
                f"{path}: is a symbolic link; only regular files are read from a folder"
            ) from None
        raise
    try:
        status = os.fstat(handle)
        if not stat.S_ISREG(status.st_mode):
            raise CorruptFileError(f"{path}: not a regular file ({_kind(status.st_mode)})")
        if status.st_size > MAX_FILE_BYTES:
            raise CorruptFileError(
                f"{path}: {status.st_size} bytes; a network file has at most {MAX_FILE_BYTES}"
            )
        chunks, left = [], MAX_FILE_BYTES + 1  # a file growing while read stops at the cap too
        while left > 0:
            chunk = os.read(handle, min(left, 2**24))
            if not chunk:
                break
            chunks.append(chunk)
            left -= len(chunk)
        return b"".join(chunks)
    finally:
        os.close(handle)


def _kind(mode: int) -> str:
    kinds = {
        stat.S_ISDIR: "a folder",
        stat.S_ISFIFO: "a FIFO",
        stat.S_ISCHR: "a character device",
        stat.S_ISBLK: "a block device",
        stat.S_ISSOCK: "a socket",
    }
    return next((name for test, name in kinds.items() if test(mode)), "not a file")


def export_networks(nets: Iterable[Network], directory: str | os.PathLike[str]) -> list[Path]:
    """Saves each network as ``<id>.safetensors`` in ``directory`` (created if needed).

    Every id is checked and every network encoded before the folder is touched,
    so a bad one changes nothing.

    Returns:
        The files written, in the order of ``nets``.

    Raises:
        ValueError: naming the network (``nets[i]``) whose id or parent id is
            not a safe id, or whose record is not a Network.
    """
    folder = _check_path("directory", directory)
    nets = list(nets)
    for index, net in enumerate(nets):
        if not isinstance(net, Network):
            raise ValueError(f"nets[{index}] must be a Network, got {describe(net)}")
        check_id(f"nets[{index}].id", net.id)
    encoded = [(net.id, to_bytes(net)) for net in nets]  # encode all before touching the disk
    folder.mkdir(parents=True, exist_ok=True)
    inside = folder.resolve()
    written = []
    for net_id, data in encoded:
        target = inside / f"{net_id}{FILE_SUFFIX}"
        if target.parent != inside:  # cannot happen with a checked id; never write if it does
            raise ValueError(f"nets: id {net_id!r} would write outside {str(inside)!r}")
        write_atomically(target, data)
        written.append(folder / target.name)
    return written


def read_networks(directory: str | os.PathLike[str]) -> list[Network]:
    """Reads every ``*.safetensors`` network file in ``directory``, all or none.

    Only regular files are read: a symbolic link, FIFO or device under the
    suffix is reported as damaged.

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
            nets.append(from_bytes(read_file(file, follow_links=False), str(file)))
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
