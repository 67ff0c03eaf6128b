"""The checks settings pass at ``put``: each names ``section.key`` and carries its range.

Every check is ``(name, value) -> normalised value`` and raises ValueError
naming ``name`` and the value. Numeric settings all have a ceiling as well as a
floor (:func:`int_in`, :func:`positive_up_to`, ...): ``generation_size=10**9``
or ``complexity_levels=10**8`` would wedge or exhaust the machine. A check's
``range`` attribute is the text the docs' parameters table shows.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import Any

import torch

from galapagos_nao.core import genome
from galapagos_nao.core.checks import check_choice, check_int, check_number, describe
from galapagos_nao.core.extras import check_ray_installed

__all__ = [
    "Check",
    "MAX_GPUS",
    "auto_or_int",
    "backend_name",
    "boolean",
    "check_device_available",
    "device_name",
    "gpu_share",
    "int_in",
    "layer_type_defaults",
    "memory_size",
    "number_in",
    "one_of",
    "open_fraction",
    "optional_address",
    "optional_seed",
    "positive_up_to",
    "ranged",
]

#: ``(name, value) -> normalised value``; raises ValueError naming ``name``.
Check = Callable[[str, Any], Any]

#: GPUs one Ray task may ask for: a ceiling no machine reaches, against typos like 10**9.
MAX_GPUS = 64


def ranged(check: Check, text: str) -> Check:
    """Attaches ``text``, the range the docs show, to ``check``; returns ``check``."""
    # The range shown in the docs travels with the check that enforces it.
    check.range = text  # type: ignore[attr-defined]
    return check


def int_in(low: int, high: int) -> Check:
    """A check for an int in ``low..high``."""
    # Every count has a ceiling: 10**9 children or levels would wedge the machine.
    return ranged(
        lambda name, value: check_int(name, value, minimum=low, maximum=high), f"{low}..{high:,}"
    )


def number_in(low: float, high: float) -> Check:
    """A check for a finite number in ``[low, high]``."""
    return ranged(
        lambda name, value: check_number(name, value, low=low, high=high), f"[{low:g}, {high:g}]"
    )


def positive_up_to(high: float) -> Check:
    """A check for a finite number in ``(0, high]``."""
    return ranged(
        lambda name, value: check_number(name, value, low=0.0, high=high, low_inclusive=False),
        f"(0, {high:g}]",
    )


def auto_or_int(high: int) -> Check:
    """A check for ``'auto'`` or an int in ``1..high``."""
    ints = int_in(1, high)
    return ranged(
        lambda name, value: value if value == "auto" else ints(name, value),
        f"'auto' or {ints.range}",  # type: ignore[attr-defined]
    )


#: Bounds of ``training.max_memory`` in bytes: 1 MB (a seed genome's training) to 1 PB.
MIN_MEMORY = 10**6
MAX_MEMORY = 10**15
_MEMORY_UNITS = {
    "B": 1,
    "KB": 10**3,
    "MB": 10**6,
    "GB": 10**9,
    "TB": 10**12,
    "KIB": 2**10,
    "MIB": 2**20,
    "GIB": 2**30,
    "TIB": 2**40,
}


def memory_size(name: str, value: Any) -> int | str:
    """Checks a memory budget: ``'auto'``, bytes as an int, or a size like ``'8GB'``, ``'512MiB'``.

    Returns ``'auto'`` or the byte count.
    """
    if value == "auto":
        return "auto"
    if isinstance(value, str):
        text = value.strip().upper().replace(" ", "")
        longest_first = sorted(_MEMORY_UNITS, key=len, reverse=True)  # "MIB" before "B"
        unit = next((u for u in longest_first if text.endswith(u)), None)
        number = text[: -len(unit)] if unit else text
        try:
            amount = float(number)
        except ValueError:
            amount = float("nan")
        if unit is None or not amount == amount or amount <= 0 or amount == float("inf"):
            raise ValueError(
                f"{name} must be 'auto', a byte count, or a size like '8GB' or '512MiB', "
                f"got {describe(value)}"
            )
        value = int(amount * _MEMORY_UNITS[unit])
    return check_int(name, value, minimum=MIN_MEMORY, maximum=MAX_MEMORY)


ranged(memory_size, "'auto', or 1 MB..1 PB (bytes, or '8GB', '512MiB')")


def optional_seed(name: str, value: Any) -> int | None:
    """Checks a seed: None, or an int that fits SQLite's signed 64-bit INTEGER."""
    # SQLite stores the seed as a signed 64-bit INTEGER.
    return None if value is None else check_int(name, value, minimum=0, maximum=2**63 - 1)


ranged(optional_seed, "None or 0..2**63 - 1")


def boolean(name: str, value: Any) -> bool:
    """Checks ``True`` or ``False`` (not 0 or 1)."""
    if not isinstance(value, bool):
        raise ValueError(f"{name} must be True or False, got {describe(value)}")
    return value


def one_of(*choices: str) -> Check:
    """A check for one of ``choices``."""
    return ranged(lambda n, v: check_choice(n, v, choices), " or ".join(map(repr, choices)))


ranged(boolean, "True or False")


def auto_or_boolean(name: str, value: Any) -> bool | str:
    """Checks ``'auto'``, ``True`` or ``False`` (not 0 or 1, nor other strings)."""
    if value == "auto" and isinstance(value, str):
        return value
    if not isinstance(value, bool):
        raise ValueError(f"{name} must be 'auto', True or False, got {describe(value)}")
    return value


ranged(auto_or_boolean, "'auto', True or False")


def device_name(name: str, value: Any) -> str:
    """Checks the spelling of a device: 'auto', 'cpu', 'cuda' or 'cuda:N'."""
    if not isinstance(value, str) or not (
        value in ("auto", "cpu", "cuda") or (value.startswith("cuda:") and value[5:].isdigit())
    ):
        raise ValueError(f"{name} must be 'auto', 'cpu', 'cuda' or 'cuda:N', got {describe(value)}")
    return value


ranged(device_name, "'auto', 'cpu', 'cuda' or 'cuda:N'")


def check_device_available(name: str, device: str) -> str:
    """Returns ``device`` if this machine has it ('auto' and 'cpu' always).

    Raises:
        ValueError: naming ``name``, the device and the devices available here.
    """
    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if device in ("auto", "cpu"):
        return device
    index = 0 if device == "cuda" else device.partition(":")[2]
    if not str(index).isdigit() or int(index) >= count:
        available = ["auto", "cpu"] + (["cuda"] if count else [])
        available += [f"cuda:{i}" for i in range(count)]
        raise ValueError(
            f"{name}: {device!r} is not available on this machine; available: {available}"
        )
    return device


def layer_type_defaults(name: str, value: Any) -> dict[str, list[Any]]:
    """Checks ``evolution.layer_types``: registered type -> valid default params."""
    if not isinstance(value, Mapping) or not value:
        raise ValueError(
            f"{name} must be a non-empty dict of type -> default params, got {describe(value)}"
        )
    checked: dict[str, list[Any]] = {}
    for type_name, params in value.items():
        try:
            genome.validate([(type_name, params)])
        except ValueError as error:
            raise ValueError(f"{name}[{type_name!r}]: {error}") from None
        checked[type_name] = list(params)
    return checked


def backend_name(name: str, value: Any) -> str:
    """Checks the backend: 'threads', 'processes' where POSIX, or 'ray' when Ray is installed."""
    check_choice(name, value, ["threads", "processes", "ray"])
    if value == "processes" and os.name != "posix":
        # Its worker processes are waited on with select() on pipes, which Windows lacks.
        raise ValueError(f"{name} 'processes' needs Linux or macOS here; use 'threads'")
    if value == "ray":
        check_ray_installed()  # choosing Ray without the extra fails now, naming the extra
    return str(value)


def optional_address(name: str, value: Any) -> str | None:
    """Checks a Ray address: None or a non-empty string."""
    if value is not None and (not isinstance(value, str) or not value.strip()):
        raise ValueError(
            f"{name} must be None or an address like 'host:6379', got {describe(value)}"
        )
    return value


def gpu_share(name: str, value: Any) -> float:
    """Checks GPUs per Ray task: a fraction of one GPU, or whole GPUs up to :data:`MAX_GPUS`."""
    share = check_number(name, value, low=0.0, high=MAX_GPUS)
    if share > 1 and share != int(share):  # Ray's rule: a fraction of one GPU or whole GPUs
        raise ValueError(f"{name} must be in [0, 1] or a whole number of GPUs, got {value}")
    return share


ranged(gpu_share, "[0, 1] or a whole number up to 64")


ranged(backend_name, "'threads', 'processes' or 'ray'")
ranged(optional_address, "None or 'host:port'")


def open_fraction(name: str, value: Any) -> float:
    """Checks a number strictly between 0 and 1."""
    return check_number(name, value, low=0.0, high=1.0, low_inclusive=False, high_inclusive=False)


ranged(open_fraction, "(0, 1)")


def optional_max_layers(name: str, value: Any) -> int | None:
    """Checks a genome length limit: None, or an int in ``1..MAX_LAYERS``."""
    return None if value is None else check_int(name, value, minimum=1, maximum=genome.MAX_LAYERS)


ranged(optional_max_layers, f"None or 1..{genome.MAX_LAYERS:,}")


def forbidden_names(name: str, value: Any) -> list[str]:
    """Checks a list of layer types and activations no child may use."""
    # Layer types and activations are both names a genome can spell; others would never match.
    if isinstance(value, str) or not isinstance(value, (list, tuple)):
        raise ValueError(
            f"{name} must be a list of layer types or activations, got {describe(value)}"
        )
    known = sorted(set(genome.layer_types()) | set(genome.ACTIVATIONS))
    for index, item in enumerate(value):
        if item not in known:
            raise ValueError(
                f"{name}[{index}]: unknown layer type or activation {describe(item)}; "
                f"known: {known}"
            )
    return list(value)


ranged(forbidden_names, "known layer types and activations")
