"""Settings: the Parameters sections, their defaults, validation and documentation.

- :mod:`~galapagos_nao.config.settings`: one frozen dataclass per section
  (:class:`SelectionSettings`, :class:`OrchestrationSettings`,
  :class:`EvolutionSettings`, :class:`TrainingSettings`), the one source of each
  default, check and parameters-table line, and :class:`Settings`, all sections typed.
- :mod:`~galapagos_nao.config.parameters`: the thread-safe :class:`Parameters`
  store (``gn.Parameters``) that checks with them.

May import core only.
"""

from galapagos_nao.config.parameters import Parameters
from galapagos_nao.config.settings import (
    SECTIONS,
    EvolutionSettings,
    OrchestrationSettings,
    SelectionSettings,
    Settings,
    TrainingSettings,
    section_name,
)

__all__ = [
    # the store
    "Parameters",
    # the sections
    "SECTIONS",
    "EvolutionSettings",
    "OrchestrationSettings",
    "SelectionSettings",
    "Settings",
    "TrainingSettings",
    "section_name",
]
