"""Experiment names: what a workspace accepts as the name of an experiment.

A name becomes part of a lock file's name (``<workspace>.<name>.lock``), so it
is checked before it touches the file system: letters, digits, ``_``, ``-``
and ``.``, starting with a letter or digit, at most 64 characters.
"""

from __future__ import annotations

import re
from typing import Any

from galapagos_nao.core.checks import describe

__all__ = ["check_experiment_name"]

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")


def check_experiment_name(argument: str, name: Any) -> str:
    """``name`` if it is a valid experiment name, else ValueError naming ``argument``."""
    if not isinstance(name, str) or _NAME.fullmatch(name) is None:
        raise ValueError(
            f"{argument} must be an experiment name (letters, digits, '_', '-', '.', "
            f"starting with a letter or digit, at most 64 characters), got {describe(name)}"
        )
    return name
