"""Fuzzing Parameters.put: any value is refused with a ValueError naming the key, or accepted.

Refused: nothing changes. Accepted: the stored value reads back, and the typed
settings a generation reads still build.
"""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from galapagos_nao.config.parameters import Parameters
from galapagos_nao.config.settings import SECTIONS

KEYS = [(name, key) for name, section in SECTIONS.items() for key in section.names()]

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=-(10**500), max_value=10**500),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    st.sampled_from(["auto", "cpu", "cuda", "cuda:0", "cuda:abc", "threads", "adam", "bf16"]),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)

PARAMETERS = Parameters()


@settings(max_examples=2000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(KEYS), values)
def test_put_refuses_naming_the_key_or_accepts(where, value):
    section, key = where
    PARAMETERS.reset()
    before = PARAMETERS.snapshot()
    try:
        PARAMETERS.put(section, {key: value})
    except ValueError as error:
        assert f"{section}.{key}" in str(error), str(error)
        assert PARAMETERS.snapshot() == before
        return
    assert PARAMETERS.get(section, key) is not None or value is None
    PARAMETERS.settings()  # what a generation reads still builds
