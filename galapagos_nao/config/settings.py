"""The settings sections as frozen dataclasses: the one source of every default.

Each section (``selection``, ``orchestration``, ``evolution``, ``training``) is a
frozen, keyword-only dataclass. A field carries its default in the signature and,
in its metadata, the check a new value must pass and the line the README's
parameters table shows (:func:`setting`). :class:`~galapagos_nao.config.parameters.Parameters`
checks values with :meth:`Section.check`, takes its defaults from
:meth:`Section.defaults`, and hands a generation a typed :class:`Settings` record.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar, TypeVar

import torch

from galapagos_nao.core import genome
from galapagos_nao.core.checks import check_choice, check_int, check_number, describe
from galapagos_nao.core.evolution import (
    DEFAULT_LAYER_TYPES,
    DEFAULT_MUTATION_RATE,
    DEFAULT_STD_DEV,
)
from galapagos_nao.core.extras import check_ray_installed
from galapagos_nao.core.measures import (
    DEFAULT_RANGES,
    check_measure_levels,
    check_measure_ranges,
    check_measures,
)
from galapagos_nao.core.training import TrainSettings

__all__ = [
    "check_device_available",
    "SECTIONS",
    "EvolutionSettings",
    "OrchestrationSettings",
    "Section",
    "SelectionSettings",
    "Settings",
    "TrainingSettings",
    "section_name",
    "setting",
]

#: ``(name, value) -> normalised value``; raises ValueError naming ``name``.
Check = Callable[[str, Any], Any]
_S = TypeVar("_S", bound="Section")


def setting(default: Any, check: Check, doc: str) -> Any:
    """A section field: its default, how a new value is checked, and its README line.

    Args:
        default: Value before any ``put``; lists and dicts are copied per instance.
        check: ``(name, value) -> normalised value``, raising ValueError naming ``name``.
        doc: What the setting means, one line (the README's parameters table).
    """
    metadata = {"default": default, "check": check, "doc": doc}
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: copy.deepcopy(default), metadata=metadata)
    return field(default=default, metadata=metadata)


# -- checks the sections share (the messages name ``section.key`` and the value) ----------


def _int_at_least(minimum: int) -> Check:
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
        value in ("auto", "cpu", "cuda") or (value.startswith("cuda:") and value[5:].isdigit())
    ):
        raise ValueError(f"{name} must be 'auto', 'cpu', 'cuda' or 'cuda:N', got {describe(value)}")
    return value


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


def _optional_max_layers(name: str, value: Any) -> int | None:
    return None if value is None else check_int(name, value, minimum=1)


def _forbidden_names(name: str, value: Any) -> list[str]:
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


def _fraction(name: str, value: Any) -> float:
    return check_number(name, value, low=0.0, high=1.0)


def _open_fraction(name: str, value: Any) -> float:
    return check_number(name, value, low=0.0, high=1.0, low_inclusive=False, high_inclusive=False)


def _non_negative(name: str, value: Any) -> float:
    return check_number(name, value, low=0.0)


# -- the sections ---------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class Section:
    """What every section shares: each value is checked (and normalised) when it is made.

    Raises:
        ValueError: naming ``section.key`` and the value when one is out of type or range.
    """

    #: The section's name in Parameters (``gn.Parameters.get(NAME)``).
    NAME: ClassVar[str] = ""

    def __post_init__(self) -> None:
        for f in fields(self):
            # Frozen: the checked value replaces the given one through object.__setattr__.
            object.__setattr__(self, f.name, self.check(f.name, getattr(self, f.name)))

    @classmethod
    def names(cls) -> list[str]:
        """The section's setting names, in declaration order."""
        return [f.name for f in fields(cls)]

    @classmethod
    def defaults(cls) -> dict[str, Any]:
        """A fresh copy of every default, as written in the signature."""
        return {f.name: copy.deepcopy(f.metadata["default"]) for f in fields(cls)}

    @classmethod
    def docs(cls) -> dict[str, str]:
        """Each setting's one-line meaning."""
        return {f.name: f.metadata["doc"] for f in fields(cls)}

    @classmethod
    def check(cls, key: str, value: Any) -> Any:
        """``value`` checked and normalised as setting ``key`` of this section.

        Raises:
            ValueError: listing the known keys when ``key`` is unknown, or naming
                ``section.key`` and the value when the value is wrong.
        """
        for f in fields(cls):
            if f.name == key:
                return f.metadata["check"](f"{cls.NAME}.{key}", value)
        raise cls._unknown_key(key)

    @classmethod
    def from_mapping(cls: type[_S], values: Mapping[str, Any]) -> _S:
        """The section with ``values`` over its defaults.

        Raises:
            ValueError: for an unknown key or a bad value, as :meth:`check` words it.
        """
        for key in values:
            if key not in cls.names():
                raise cls._unknown_key(key)
        return cls(**values)

    @classmethod
    def _unknown_key(cls, key: Any) -> ValueError:
        return ValueError(f"{cls.NAME}: unknown key {describe(key)}; known: {sorted(cls.names())}")

    def as_dict(self) -> dict[str, Any]:
        """The values as a plain dict (copies: the record stays as it is)."""
        return {f.name: copy.deepcopy(getattr(self, f.name)) for f in fields(self)}


@dataclass(frozen=True, kw_only=True)
class SelectionSettings(Section):
    """The ``selection`` section (``gn.Selection``): the archive's axes and their levels."""

    NAME: ClassVar[str] = "selection"

    complexity_levels: int = setting(
        2, _int_at_least(1), "levels the complexity axis is split into"
    )
    measures: list[str] = setting(
        ["layers"], check_measures, "behaviour measures, one archive axis each"
    )
    measure_levels: dict[str, int] = setting(
        {"params": 4}, check_measure_levels, "levels of each measure but layers (see measures)"
    )
    measure_ranges: dict[str, list[float]] = setting(
        DEFAULT_RANGES, check_measure_ranges, "fixed [low, high] a measure's levels split"
    )


@dataclass(frozen=True, kw_only=True)
class OrchestrationSettings(Section):
    """The ``orchestration`` section (``gn.orchestration``): how a generation is trained."""

    NAME: ClassVar[str] = "orchestration"

    generation_size: int = setting(
        4, _int_at_least(1), "children bred per generation (at least one per parent)"
    )
    timeout: float = setting(
        300, _positive_number, "seconds a candidate may train before it is dropped"
    )
    workers: int | str = setting(
        "auto", _auto_or_int, "candidates trained at once ('auto': see README)"
    )
    threads_per_worker: int | str = setting(
        "auto", _auto_or_int, "intra-op threads of each CPU worker"
    )
    backend: str = setting("threads", _backend, "'threads' (this machine) or 'ray' (a cluster)")
    ray_address: str | None = setting(
        None, _optional_address, "Ray cluster (None: RAY_ADDRESS or local)"
    )
    num_cpus: float = setting(1, _positive_number, "CPUs Ray reserves per candidate task")
    num_gpus: float = setting(0, _gpu_share, "GPUs per Ray task (fractions share one GPU)")
    max_retries: int = setting(2, _int_at_least(0), "Ray retries of a task that failed or died")
    max_failed_generations: int = setting(
        3, _int_at_least(1), "generations in a row where every candidate fails before the run stops"
    )


@dataclass(frozen=True, kw_only=True)
class EvolutionSettings(Section):
    """The ``evolution`` section (``gn.evolution``): how children are bred."""

    NAME: ClassVar[str] = "evolution"

    layer_types: dict[str, list[Any]] = setting(
        DEFAULT_LAYER_TYPES, _layer_types, "types a replaced layer may become"
    )
    mutation_rate: float = setting(DEFAULT_MUTATION_RATE, _fraction, "probability of each mutation")
    std_dev: float = setting(DEFAULT_STD_DEV, _non_negative, "spread of integer mutations")
    inherit_weights: bool = setting(
        True, _bool, "children start from their parent's trained weights"
    )
    max_layers: int | None = setting(
        None, _optional_max_layers, "most layers a child may have (None: no limit)"
    )
    forbid: list[str] = setting(
        [], _forbidden_names, "layer types and activations no child may use"
    )


@dataclass(frozen=True, kw_only=True)
class TrainingSettings(Section):
    """The ``training`` section (``gn.training``): how each candidate is trained."""

    NAME: ClassVar[str] = "training"

    epochs: int = setting(1, _int_at_least(1), "epochs per candidate")
    batch_size: int | str = setting(
        "auto", _auto_or_int, "mini-batch size ('auto': 512, smaller on small data; see README)"
    )
    optimizer: str = setting(
        "adam", lambda n, v: check_choice(n, v, ["adam", "adamw", "sgd"]), "optimizer"
    )
    learning_rate: float = setting(3e-3, _positive_number, "optimizer learning rate")
    validation_fraction: float = setting(
        0.1, _open_fraction, "share of the training data held out for fitness"
    )
    device: str = setting(
        "auto", _device, "'auto' (CUDA when available), 'cpu', 'cuda' or 'cuda:N'"
    )
    precision: str = setting(
        "float32", lambda n, v: check_choice(n, v, ["float32", "bf16"]), "bf16 autocast on CUDA"
    )
    group_size: int | str = setting(
        "auto",
        _auto_or_int,
        "candidates trained together as one stacked model ('auto': 1 on CPU, 256 on CUDA)",
    )
    seed: int | None = setting(
        None, _optional_seed, "seed of the run's generator (None: fresh entropy)"
    )
    replay: int = setting(
        0,
        _int_at_least(0),
        "samples kept per past task of a task stream, class-balanced, replayed in training; "
        "fitness is then the mean over the tasks seen (0: naive fine-tuning)",
    )
    replay_mixing: str = setting(
        "balanced",
        lambda n, v: check_choice(n, v, ["balanced", "appended"]),
        "how replay joins the training data: 'balanced' repeats each past task's samples "
        "to as many as the current task's; 'appended' adds them once",
    )

    def train_settings(self) -> TrainSettings:
        """The record :func:`galapagos_nao.core.training.fit` takes (core cannot read config)."""
        return TrainSettings(
            epochs=self.epochs,
            batch_size=self.batch_size,
            optimizer=self.optimizer,
            learning_rate=self.learning_rate,
            validation_fraction=self.validation_fraction,
            device=self.device,
            precision=self.precision,
            group_size=self.group_size,
        )


#: Every section by name, in the order the README lists them.
SECTIONS: dict[str, type[Section]] = {
    section.NAME: section
    for section in (SelectionSettings, OrchestrationSettings, EvolutionSettings, TrainingSettings)
}


def section_name(section: Any) -> str:
    """The section a singleton, module or name addresses.

    A singleton or module names its section in ``PARAMETER_SECTION``; names
    are case-insensitive.

    Raises:
        ValueError: listing the known sections when ``section`` names none.
    """
    name = section if isinstance(section, str) else getattr(section, "PARAMETER_SECTION", None)
    if isinstance(name, str) and name.lower() in SECTIONS:
        return name.lower()
    raise ValueError(f"section: unknown section {describe(section)}; known: {sorted(SECTIONS)}")


@dataclass(frozen=True, kw_only=True)
class Settings:
    """Every section at one moment, typed: what one generation reads.

    :meth:`~galapagos_nao.config.parameters.Parameters.settings` builds it from
    a deep copy, so changing its lists or dicts changes no Parameters.
    """

    selection: SelectionSettings = field(default_factory=SelectionSettings)
    orchestration: OrchestrationSettings = field(default_factory=OrchestrationSettings)
    evolution: EvolutionSettings = field(default_factory=EvolutionSettings)
    training: TrainingSettings = field(default_factory=TrainingSettings)

    @classmethod
    def from_snapshot(cls, snapshot: Mapping[str, Mapping[str, Any]]) -> Settings:
        """The typed record of a Parameters snapshot (missing sections and keys: defaults).

        Raises:
            ValueError: naming an unknown section or key, or ``section.key`` and a bad value.
        """
        given = {section_name(name): values for name, values in snapshot.items()}
        return cls(
            selection=SelectionSettings.from_mapping(given.get("selection", {})),
            orchestration=OrchestrationSettings.from_mapping(given.get("orchestration", {})),
            evolution=EvolutionSettings.from_mapping(given.get("evolution", {})),
            training=TrainingSettings.from_mapping(given.get("training", {})),
        )
