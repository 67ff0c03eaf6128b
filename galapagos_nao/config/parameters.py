"""Runtime settings in named sections, with defaults and validation.

Sections mirror the seed: ``gn.Parameters.put(gn.Selection, {"complexity_levels": 4})``
addresses the Selection's section through its singleton; modules
(``gn.orchestration``, ``gn.evolution``, ``gn.training``) and plain names
(``"selection"``) work too. A running generation reads one consistent
:meth:`Parameters.snapshot`, so a change applies from the next generation.
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from galapagos_nao.core import genome
from galapagos_nao.core.checks import check_choice, check_int, check_number, describe
from galapagos_nao.core.evolution import DEFAULT_LAYER_TYPES
from galapagos_nao.core.extras import check_ray_installed
from galapagos_nao.core.measures import check_measure_levels, check_measures

__all__ = ["SETTINGS", "Parameters", "Setting", "section_name"]


@dataclass(frozen=True)
class Setting:
    """One setting: its default, how to check a new value, and what it means.

    Attributes:
        default: Value before any ``put``.
        check: ``(name, value) -> normalised value``; raises ValueError naming ``name``.
        doc: One line for the README's parameters table.
    """

    default: Any
    check: Callable[[str, Any], Any]
    doc: str


def _int_at_least(minimum: int) -> Callable[[str, Any], int]:
    return lambda name, value: check_int(name, value, minimum=minimum)


def _positive_number(name: str, value: Any) -> float:
    return check_number(name, value, low=0.0, low_inclusive=False)


def _auto_or_int(name: str, value: Any) -> Any:
    return value if value == "auto" else check_int(name, value, minimum=1)


def _optional_seed(name: str, value: Any) -> int | None:
    return None if value is None else check_int(name, value, minimum=0)


def _bool(name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"{name} must be True or False, got {describe(value)}")
    return value


def _device(name: str, value: Any) -> str:
    if not isinstance(value, str) or not (
        value in ("auto", "cpu", "cuda") or value.startswith("cuda:")
    ):
        raise ValueError(f"{name} must be 'auto', 'cpu', 'cuda' or 'cuda:N', got {describe(value)}")
    return value


def _layer_types(name: str, value: Any) -> dict[str, list[Any]]:
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


def _backend(name: str, value: Any) -> str:
    check_choice(name, value, ["threads", "ray"])
    if value == "ray":
        check_ray_installed()  # choosing Ray without the extra fails now, naming the extra
    return str(value)


def _optional_address(name: str, value: Any) -> str | None:
    if value is not None and (not isinstance(value, str) or not value.strip()):
        raise ValueError(
            f"{name} must be None or an address like 'host:6379', got {describe(value)}"
        )
    return value


def _gpu_share(name: str, value: Any) -> float:
    share = check_number(name, value, low=0.0)
    if share > 1 and share != int(share):  # Ray's rule: a fraction of one GPU or whole GPUs
        raise ValueError(f"{name} must be in [0, 1] or a whole number of GPUs, got {value}")
    return share


#: Every section, its settings and their defaults (the seed's, plus training).
SETTINGS: dict[str, dict[str, Setting]] = {
    "selection": {
        "complexity_levels": Setting(
            2, _int_at_least(1), "levels the complexity axis is split into"
        ),
        "measures": Setting(
            ["layers"], check_measures, "behaviour measures, one archive axis each"
        ),
        "measure_levels": Setting(
            {"params": 4}, check_measure_levels, "levels of each measure but layers (see measures)"
        ),
    },
    "orchestration": {
        "generation_size": Setting(
            4, _int_at_least(1), "children bred per generation (at least one per parent)"
        ),
        "timeout": Setting(
            300, _positive_number, "seconds a candidate may train before it is dropped"
        ),
        "workers": Setting("auto", _auto_or_int, "candidates trained at once ('auto': see README)"),
        "threads_per_worker": Setting("auto", _auto_or_int, "intra-op threads of each CPU worker"),
        "backend": Setting("threads", _backend, "'threads' (this machine) or 'ray' (a cluster)"),
        "ray_address": Setting(None, _optional_address, "Ray cluster (None: RAY_ADDRESS or local)"),
        "num_cpus": Setting(1, _positive_number, "CPUs Ray reserves per candidate task"),
        "num_gpus": Setting(0, _gpu_share, "GPUs per Ray task (fractions share one GPU)"),
        "max_retries": Setting(2, _int_at_least(0), "Ray retries of a task that failed or died"),
    },
    "evolution": {
        "layer_types": Setting(
            DEFAULT_LAYER_TYPES, _layer_types, "types a replaced layer may become"
        ),
        "mutation_rate": Setting(
            0.25, lambda n, v: check_number(n, v, low=0.0, high=1.0), "probability of each mutation"
        ),
        "std_dev": Setting(
            2, lambda n, v: check_number(n, v, low=0.0), "spread of integer mutations"
        ),
        "inherit_weights": Setting(
            True, _bool, "children start from their parent's trained weights"
        ),
    },
    "training": {
        "epochs": Setting(1, _int_at_least(1), "epochs per candidate"),
        "batch_size": Setting(
            "auto", _auto_or_int, "mini-batch size ('auto': 512, smaller on small data; see README)"
        ),
        "optimizer": Setting(
            "adam", lambda n, v: check_choice(n, v, ["adam", "adamw", "sgd"]), "optimizer"
        ),
        "learning_rate": Setting(3e-3, _positive_number, "optimizer learning rate"),
        "validation_fraction": Setting(
            0.1,
            lambda n, v: check_number(
                n, v, low=0.0, high=1.0, low_inclusive=False, high_inclusive=False
            ),
            "share of the training data held out for fitness",
        ),
        "device": Setting(
            "auto", _device, "'auto' (CUDA when available), 'cpu', 'cuda' or 'cuda:N'"
        ),
        "precision": Setting(
            "float32", lambda n, v: check_choice(n, v, ["float32", "bf16"]), "bf16 autocast on CUDA"
        ),
        "group_size": Setting(
            "auto", _auto_or_int, "candidates trained together as one stacked model (1: alone)"
        ),
        "seed": Setting(None, _optional_seed, "seed of the run's generator (None: fresh entropy)"),
    },
}


def section_name(section: Any) -> str:
    """The section a singleton, module or name addresses.

    Raises:
        ValueError: listing the known sections when ``section`` names none.
    """
    name = section if isinstance(section, str) else getattr(section, "PARAMETER_SECTION", None)
    if isinstance(name, str) and name.lower() in SETTINGS:
        return name.lower()
    raise ValueError(f"section: unknown section {describe(section)}; known: {sorted(SETTINGS)}")


class Parameters:
    """Thread-safe store of settings by section; ``gn.Parameters`` is the shared one.

    Every operation is atomic under one lock; readers get deep copies.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._values = self.defaults()

    @staticmethod
    def defaults() -> dict[str, dict[str, Any]]:
        """A fresh copy of every section's defaults."""
        return {
            section: {key: copy.deepcopy(s.default) for key, s in settings.items()}
            for section, settings in SETTINGS.items()
        }

    def put(self, section: Any, values: Mapping[str, Any]) -> None:
        """Merges ``values`` into ``section``, keeping its other keys.

        All values are checked before any is stored: on error nothing changes.

        Raises:
            ValueError: for an unknown section or key (listing the known ones) or
                a value of the wrong type or range (naming the key and value).
        """
        name = section_name(section)
        if not isinstance(values, Mapping):
            raise ValueError(f"values must be a dict of settings, got {describe(values)}")
        settings = SETTINGS[name]
        checked = {}
        for key, value in values.items():
            if key not in settings:
                raise ValueError(f"{name}: unknown key {describe(key)}; known: {sorted(settings)}")
            checked[key] = settings[key].check(f"{name}.{key}", value)
        with self._lock:
            self._values[name].update(copy.deepcopy(checked))

    def get(self, section: Any, key: str | None = None) -> Any:
        """One setting's value, or a copy of the whole section when ``key`` is None.

        Raises:
            ValueError: for an unknown section.
            KeyError: for an unknown key, listing the known ones.
        """
        name = section_name(section)
        with self._lock:
            if key is None:
                return copy.deepcopy(self._values[name])
            if key not in self._values[name]:
                raise KeyError(f"{name}: unknown key {key!r}; known: {sorted(self._values[name])}")
            return copy.deepcopy(self._values[name][key])

    def snapshot(self) -> dict[str, dict[str, Any]]:
        """A consistent deep copy of every section, taken under one lock."""
        with self._lock:
            return copy.deepcopy(self._values)

    def load(self, values: Mapping[str, Mapping[str, Any]]) -> None:
        """Replaces all settings from a snapshot (e.g. a resumed run's), checked first."""
        fresh = self.defaults()
        for section, section_values in values.items():
            name = section_name(section)
            settings = SETTINGS[name]
            for key, value in section_values.items():
                if key in settings:  # keys of a newer/older version are ignored
                    fresh[name][key] = settings[key].check(f"{name}.{key}", value)
        with self._lock:
            self._values = fresh

    def reset(self) -> None:
        """Restores every default."""
        with self._lock:
            self._values = self.defaults()

    def __repr__(self) -> str:
        return f"Parameters({self.snapshot()!r})"
