"""The settings sections as frozen dataclasses: the one source of every default.

Each section (``selection``, ``orchestration``, ``evolution``, ``training``) is a
frozen, keyword-only dataclass. A field carries its default in the signature and,
in its metadata, the check a new value must pass and the line the docs'
parameters table shows (:func:`setting`). :class:`~galapagos_nao.config.parameters.Parameters`
checks values with :meth:`Section.check`, takes its defaults from
:meth:`Section.defaults`, and hands a generation a typed :class:`Settings` record.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar, TypeVar

from galapagos_nao.config.setting_checks import (
    Check,
    auto_or_boolean,
    auto_or_int,
    backend_name,
    boolean,
    check_device_available,
    device_name,
    forbidden_names,
    gpu_share,
    int_in,
    layer_type_defaults,
    memory_size,
    number_in,
    one_of,
    open_fraction,
    optional_address,
    optional_max_layers,
    optional_seed,
    positive_up_to,
    ranged,
)
from galapagos_nao.core.checks import describe
from galapagos_nao.core.evolution import (
    DEFAULT_LAYER_TYPES,
    DEFAULT_MUTATION_RATE,
    DEFAULT_STD_DEV,
)
from galapagos_nao.core.measures import (
    DEFAULT_RANGES,
    MAX_LEVELS,
    check_measure_levels,
    check_measure_ranges,
    check_measures,
)
from galapagos_nao.core.training import TrainSettings

__all__ = [
    "DEFAULT_MAX_LAYERS",
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

_S = TypeVar("_S", bound="Section")

#: Default ``evolution.max_layers``: without a ceiling a continual run's genomes
#: grow without bound (elites of 3 to 422 layers after 1,000 generations of a
#: small task), each generation slower than the last; 16 leaves room above the
#: starting genomes (the seed's has 8 layers, the seed CNN 5). docs/guide/growth.md.
DEFAULT_MAX_LAYERS = 16


def setting(default: Any, check: Check, doc: str) -> Any:
    """A section field: its default, how a new value is checked, and its parameters-table line.

    Args:
        default: Value before any ``put``; lists and dicts are copied per instance.
        check: ``(name, value) -> normalised value``, raising ValueError naming ``name``;
            its ``range`` attribute, if any, is the range the docs show (see
            :func:`~galapagos_nao.config.setting_checks.ranged`).
        doc: What the setting means, one line (the docs' parameters table).
    """
    metadata = {"default": default, "check": check, "doc": doc}
    metadata["range"] = getattr(check, "range", "")
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: copy.deepcopy(default), metadata=metadata)
    return field(default=default, metadata=metadata)


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
    def ranges(cls) -> dict[str, str]:
        """Each setting's accepted range as the docs show it ('' where the doc says it)."""
        return {f.name: f.metadata["range"] for f in fields(cls)}

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
        2, int_in(1, MAX_LEVELS), "levels the complexity axis is split into"
    )
    measures: list[str] = setting(
        ["layers"],
        ranged(check_measures, "registered measure names"),
        "behaviour measures, one archive axis each",
    )
    measure_levels: dict[str, int] = setting(
        {"params": 4},
        ranged(check_measure_levels, f"1..{MAX_LEVELS:,} per measure"),
        "levels of each measure but layers (see measures)",
    )
    measure_ranges: dict[str, list[float]] = setting(
        DEFAULT_RANGES,
        ranged(check_measure_ranges, "0 < low < high, finite"),
        "fixed [low, high] a measure's levels split",
    )


@dataclass(frozen=True, kw_only=True)
class OrchestrationSettings(Section):
    """The ``orchestration`` section (``gn.orchestration``): how a generation is trained."""

    NAME: ClassVar[str] = "orchestration"

    generation_size: int = setting(
        4, int_in(1, 10_000), "children bred per generation (at least one per parent)"
    )
    timeout: float = setting(
        300, positive_up_to(7 * 24 * 3600), "seconds a candidate may train before it is dropped"
    )
    workers: int | str = setting(
        "auto", auto_or_int(1024), "candidates trained at once ('auto': see the Performance guide)"
    )
    threads_per_worker: int | str = setting(
        "auto",
        auto_or_int(256),
        "intra-op threads of each CPU worker (workers × threads is cut to what the machine runs)",
    )
    backend: str = setting(
        "threads",
        backend_name,
        "'threads' or 'processes' (this machine; processes train more a minute on a CPU) "
        "or 'ray' (a cluster)",
    )
    ray_address: str | None = setting(
        None, optional_address, "Ray cluster (None: RAY_ADDRESS or local)"
    )
    num_cpus: float = setting(1, positive_up_to(1024), "CPUs Ray reserves per candidate task")
    num_gpus: float = setting(0, gpu_share, "GPUs per Ray task (fractions share one GPU)")
    max_retries: int = setting(2, int_in(0, 100), "Ray retries of a task that failed or died")
    max_failed_generations: int = setting(
        3, int_in(1, 1000), "generations in a row where every candidate fails before the run stops"
    )


@dataclass(frozen=True, kw_only=True)
class EvolutionSettings(Section):
    """The ``evolution`` section (``gn.evolution``): how children are bred."""

    NAME: ClassVar[str] = "evolution"

    layer_types: dict[str, list[Any]] = setting(
        DEFAULT_LAYER_TYPES,
        ranged(layer_type_defaults, "registered types, valid params"),
        "types a replaced layer may become",
    )
    mutation_rate: float = setting(
        DEFAULT_MUTATION_RATE, number_in(0, 1), "probability of each mutation"
    )
    std_dev: float = setting(DEFAULT_STD_DEV, number_in(0, 1000), "spread of integer mutations")
    inherit_weights: bool = setting(
        True, boolean, "children start from their parent's trained weights"
    )
    max_layers: int | None = setting(
        DEFAULT_MAX_LAYERS,
        optional_max_layers,
        "most layers a child may have; also the top of the complexity axis (None: no limit)",
    )
    forbid: list[str] = setting([], forbidden_names, "layer types and activations no child may use")


@dataclass(frozen=True, kw_only=True)
class TrainingSettings(Section):
    """The ``training`` section (``gn.training``): how each candidate is trained."""

    NAME: ClassVar[str] = "training"

    epochs: int = setting(1, int_in(1, 10_000), "epochs per candidate")
    batch_size: int | str = setting(
        "auto",
        auto_or_int(2**20),
        "mini-batch size ('auto': 512, smaller on small data; see the Performance guide)",
    )
    optimizer: str = setting("adam", one_of("adam", "adamw", "sgd"), "optimizer")
    learning_rate: float = setting(3e-3, positive_up_to(100), "optimizer learning rate")
    validation_fraction: float = setting(
        0.1, open_fraction, "share of the training data held out for fitness"
    )
    device: str = setting(
        "auto", device_name, "'auto' (CUDA when available), 'cpu', 'cuda' or 'cuda:N'"
    )
    precision: str = setting("float32", one_of("float32", "bf16"), "bf16 autocast on CUDA")
    group_size: int | str = setting(
        "auto",
        auto_or_int(4096),
        "candidates trained together as one stacked model ('auto': 1 on CPU, 256 on CUDA)",
    )
    max_memory: int | str = setting(
        "auto",
        memory_size,
        "estimated memory one candidate (or group) may need to train, else it is dropped "
        "('auto': half the free RAM or GPU memory, shared by the workers)",
    )
    cuda_graphs: bool | str = setting(
        "auto",
        auto_or_boolean,
        "a group training on CUDA replays its full-batch step as one CUDA graph "
        "('auto': when it has more than 8 full batches; never on the CPU; see Grouped training)",
    )
    seed: int | None = setting(
        None, optional_seed, "seed of the run's generator (None: fresh entropy)"
    )
    replay: int = setting(
        0,
        int_in(0, 100_000),
        "samples kept per past task of a task stream, class-balanced, replayed in training; "
        "fitness is then the mean over the tasks seen (0: naive fine-tuning)",
    )
    replay_mixing: str = setting(
        "balanced",
        one_of("balanced", "appended"),
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
            max_memory=self.max_memory,
            cuda_graphs=self.cuda_graphs,
        )


#: Every section by name, in the order the docs' parameters table lists them.
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
