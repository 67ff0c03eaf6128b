"""Old home of the run layer (``gn.orchestration``); kept so existing scripts work.

Also the ``orchestration`` section's key: ``gn.Parameters.put(gn.orchestration, {...})``.
``evolve`` and ``evolve_continual`` are the shared session's (``gn.evolve``).
New code imports from :mod:`galapagos_nao.run`.
"""

from __future__ import annotations

import galapagos_nao as _gn
from galapagos_nao.run.arguments import initial_networks
from galapagos_nao.run.devices import (
    STREAMS_PER_GPU,
    assign_devices,
    longest_first,
    plan_cpu_workers,
    plan_workers,
    training_devices,
    usable_cores,
)
from galapagos_nao.run.generation import breed, make_evaluator
from galapagos_nao.run.local import LocalEvaluator
from galapagos_nao.run.loop import GenerationReport, Run, RunStatus
from galapagos_nao.run.records import Candidate, EvaluationJob, Evaluator, Outcome
from galapagos_nao.run.train import failed_outcome, train_candidate

#: Name of this module's section in Parameters.
PARAMETER_SECTION = "orchestration"

evolve = _gn.session.evolve
evolve_continual = _gn.session.evolve_continual

__all__ = [
    "PARAMETER_SECTION",
    "STREAMS_PER_GPU",
    "Candidate",
    "EvaluationJob",
    "Evaluator",
    "GenerationReport",
    "LocalEvaluator",
    "Outcome",
    "Run",
    "RunStatus",
    "assign_devices",
    "breed",
    "evolve",
    "evolve_continual",
    "failed_outcome",
    "initial_networks",
    "longest_first",
    "make_evaluator",
    "plan_cpu_workers",
    "plan_workers",
    "train_candidate",
    "training_devices",
    "usable_cores",
]
