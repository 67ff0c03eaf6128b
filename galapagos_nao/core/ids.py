"""Network ids: what one may look like, checked before it names a file.

An id becomes a file name (``<id>.safetensors`` on export) and a workspace key,
and ids arrive from files and rows that anyone may have written. So an id is a
uuid or, more generally, 1 to 64 ASCII letters, digits, ``-`` or ``_``: never a
path separator, a dot, a NUL or a name too long for a file system.
"""

from __future__ import annotations

import re
from typing import Any

from galapagos_nao.core.checks import describe

__all__ = ["ID_PATTERN", "check_id"]

#: What every network id matches in full (a uuid4 string does).
ID_PATTERN = re.compile(r"[A-Za-z0-9_-]{1,64}")


def check_id(name: str, value: Any) -> str:
    """Returns ``value`` if it is a safe network id (see :data:`ID_PATTERN`).

    Raises:
        ValueError: naming ``name`` and the value otherwise.
    """
    if not isinstance(value, str) or ID_PATTERN.fullmatch(value) is None:
        raise ValueError(
            f"{name} must be 1 to 64 ASCII letters, digits, '-' or '_' (a uuid fits), "
            f"got {describe(value)}"
        )
    return value
