"""Every setting has a sane range, checked at put: no value can wedge or exhaust the machine."""

from __future__ import annotations

import pytest

from galapagos_nao.config.parameters import Parameters
from galapagos_nao.config.settings import SECTIONS


@pytest.mark.parametrize(
    ("section", "key", "value"),
    [
        ("orchestration", "generation_size", 10**9),
        ("selection", "measure_levels", {"params": 10**8}),
        ("selection", "complexity_levels", 10**8),
        ("orchestration", "threads_per_worker", 10**6),
        ("orchestration", "threads_per_worker", 2**31),
        ("orchestration", "workers", 10**6),
        ("orchestration", "timeout", 1e12),
        ("orchestration", "max_retries", 10**9),
        ("orchestration", "max_failed_generations", 10**9),
        ("orchestration", "num_cpus", 1e9),
        ("orchestration", "num_gpus", 1e9),
        ("evolution", "std_dev", 1e300),
        ("training", "epochs", 10**9),
        ("training", "batch_size", 2**40),
        ("training", "learning_rate", 1e300),
        ("training", "seed", 2**63),
        ("training", "device", "cuda:abc"),
    ],
)
def test_values_beyond_the_sane_range_are_refused_at_put(section, key, value):
    params = Parameters()
    before = params.snapshot()
    with pytest.raises(ValueError, match=rf"{section}\.{key}"):
        params.put(section, {key: value})
    assert params.snapshot() == before


@pytest.mark.parametrize(
    ("section", "key"),
    [
        ("orchestration", "timeout"),
        ("orchestration", "num_cpus"),
        ("orchestration", "num_gpus"),
        ("evolution", "mutation_rate"),
        ("evolution", "std_dev"),
        ("training", "learning_rate"),
        ("training", "validation_fraction"),
    ],
)
def test_a_huge_int_for_a_float_setting_names_the_key(section, key):
    params = Parameters()
    with pytest.raises(ValueError, match=rf"{section}\.{key}"):
        params.put(section, {key: 10**400})


def test_every_numeric_setting_documents_its_range():
    # The README table shows the range beside each setting; it comes from the check itself.
    for section in SECTIONS.values():
        for key, text in section.ranges().items():
            assert text, f"{section.NAME}.{key} has no documented range"


def test_the_edges_of_each_range_are_accepted():
    params = Parameters()
    params.put("orchestration", {"generation_size": 10_000, "threads_per_worker": 256})
    params.put("selection", {"complexity_levels": 1000, "measure_levels": {"params": 1000}})
    params.put("training", {"seed": 2**63 - 1, "epochs": 10_000})
