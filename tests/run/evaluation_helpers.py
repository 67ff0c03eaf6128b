"""Helpers the evaluator tests share (imported by name: pytest puts this folder on the path)."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

import galapagos_nao as gn
from galapagos_nao.config.parameters import Parameters
from galapagos_nao.core.training import DeviceDataCache
from galapagos_nao.run.records import Candidate, EvaluationJob

#: Generous bounds for what takes well under a second, or a few, on an idle machine.
PATIENCE = 120.0


def backend_parameters(backend: str, **orchestration: Any) -> Parameters:
    """Parameters choosing ``backend``, with other ``orchestration`` settings."""
    parameters = Parameters()
    parameters.put(gn.orchestration, {"backend": backend, **orchestration})
    return parameters


def job_for(task: gn.datasets.Task, parameters: Parameters) -> EvaluationJob:
    """An evaluation job on ``task`` with the settings of ``parameters``."""
    return EvaluationJob(task, parameters.settings(), threading.Event(), DeviceDataCache())


def candidate(index: int, layers: list[Any], seed: int = 7) -> Candidate:
    """A parentless candidate of generation 0."""
    return Candidate(index=index, generation=0, layers=tuple(layers), seed=seed)


def wait_for(predicate: Any, what: str, timeout: float = PATIENCE) -> Any:
    """The first truthy value of ``predicate()``, polled; fails the test past ``timeout``."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    pytest.fail(f"gave up waiting for {what}")
