"""Optional dependencies: whether an extra is installed, and the message that names it.

Checked without importing the package, so choosing a feature fails fast (when a
setting is put) with the ``pip install`` line to run.
"""

from __future__ import annotations

import importlib.util

__all__ = ["MISSING_RAY", "check_ray_installed"]

#: The message of the ImportError raised when Ray is chosen but not installed.
MISSING_RAY = (
    "the Ray backend (orchestration.backend='ray') needs Ray: pip install 'galapagos-nao[ray]'"
)


def check_ray_installed() -> None:
    """Fails fast, without importing Ray, when it is not installed.

    Raises:
        ImportError: naming the ``galapagos-nao[ray]`` extra.
    """
    if importlib.util.find_spec("ray") is None:
        raise ImportError(MISSING_RAY)
