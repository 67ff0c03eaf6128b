"""Shared argument checks: one place that phrases every "bad input" message.

Every public entry point validates up front with these helpers, so a message
always names the argument, what was expected and what was given, and nothing
has changed yet when it is raised.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any


def describe(value: Any) -> str:
    """Short, readable form of an offending value for error messages."""
    try:
        text = repr(value)
    except ValueError:  # an int too long to print (sys.get_int_max_str_digits)
        return f"an int of {value.bit_length()} bits"
    return text if len(text) <= 80 else text[:77] + "..."


def check_int(
    name: str, value: Any, *, minimum: int | None = None, maximum: int | None = None
) -> int:
    """Returns ``value`` if it is an int (not a bool) in ``[minimum, maximum]``.

    Raises:
        ValueError: naming ``name`` and the value otherwise.
    """
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{name} must be an int, got {describe(value)}")
    if minimum is not None and value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {describe(value)}")
    if maximum is not None and value > maximum:
        raise ValueError(f"{name} must be <= {maximum}, got {describe(value)}")
    return value


def check_number(
    name: str,
    value: Any,
    *,
    low: float | None = None,
    high: float | None = None,
    low_inclusive: bool = True,
    high_inclusive: bool = True,
) -> float:
    """Returns ``value`` as a float if it is a finite real number in range.

    Raises:
        ValueError: naming ``name``, the expected range and the value otherwise.
    """
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{name} must be a finite number, got {describe(value)}")
    try:
        number = float(value)  # an int beyond float's range overflows here, not later
    except OverflowError:
        number = math.inf
    if not math.isfinite(number):
        raise ValueError(f"{name} must be a finite number, got {describe(value)}")
    value = number
    too_low = low is not None and (value < low if low_inclusive else value <= low)
    too_high = high is not None and (value > high if high_inclusive else value >= high)
    if too_low or too_high:
        left = "[" if low_inclusive else "("
        right = "]" if high_inclusive else ")"
        bounds = f"{left}{'-inf' if low is None else low}, {'inf' if high is None else high}{right}"
        raise ValueError(f"{name} must be in {bounds}, got {value}")
    return float(value)


def check_choice(name: str, value: Any, choices: Iterable[Any]) -> Any:
    """Returns ``value`` if it is one of ``choices``.

    Raises:
        ValueError: naming ``name``, the value and the allowed choices otherwise.
    """
    allowed = list(choices)
    if value not in allowed:
        raise ValueError(f"{name} must be one of {allowed}, got {describe(value)}")
    return value
