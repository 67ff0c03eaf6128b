"""The explicit upgrade of version 1 network files, which plain reading refuses.

Version 1 sealed only a file's weights, so a change to its genome, ids or
metrics cannot be detected. :func:`upgrade` is the one way such a file is read:
it says what it cannot verify and rewrites the network as version 2, sealed
whole, so that every later read verifies it.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from galapagos_nao.core.checks import describe
from galapagos_nao.core.network import Network
from galapagos_nao.store.codec import V1_UNVERIFIED, OldFormatError, from_bytes
from galapagos_nao.store.persistence import read_file, save

__all__ = ["upgrade"]

logger = logging.getLogger("galapagos_nao.store.old_files")


def upgrade(path: str | os.PathLike[str], target: str | os.PathLike[str] | None = None) -> Network:
    """Reads a version 1 network file, says what it cannot verify, and rewrites it as version 2.

    The weights are checked against their version 1 digest, and the genome,
    metrics and ids pass every check a version 2 file's do; but a change to
    them cannot be detected, which a warning naming the file says. A version 2
    file is read and returned, and nothing is written.

    Args:
        path: The file to read.
        target: Where to write the version 2 file; ``path`` itself (replaced
            atomically) when None.

    Returns:
        The network read.

    Raises:
        ValueError: if ``path`` or ``target`` is not a path.
        FileNotFoundError: if there is no such file, or no folder for ``target``.
        CorruptFileError: as :func:`~galapagos_nao.store.persistence.load`;
            nothing is written then.
    """
    source = _path("path", path)
    destination = source if target is None else _path("target", target)
    data = read_file(source, follow_links=True)
    try:
        return from_bytes(data, str(source))
    except OldFormatError:
        pass  # the one case this step exists for
    net = from_bytes(data, str(source), upgrade=True)
    save(net, destination)
    logger.warning(
        "%s: read as network format version 1: %s; its weights matched their digest. "
        "Rewritten as version 2 to %s, sealed whole.",
        source,
        V1_UNVERIFIED,
        destination,
    )
    return net


def _path(name: str, value: object) -> Path:
    if not isinstance(value, (str, os.PathLike)) or not os.fspath(value):
        raise ValueError(f"{name} must be a non-empty str or os.PathLike, got {describe(value)}")
    return Path(value).expanduser()
