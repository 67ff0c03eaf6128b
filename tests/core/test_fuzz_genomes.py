"""Fuzzing genomes: validate, Network and build refuse naming the layer, or accept and run.

Refused: a ValueError naming the layer index (or ``layers``), the input left
as it was. Accepted: the compiled model takes a tiny batch and gives one row
of logits per sample.
"""

from __future__ import annotations

import copy

import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from galapagos_nao.core import genome
from galapagos_nao.core.network import Network, build

TYPES = ["dense", "activation", "dropout", "batch_norm", "leaky_relu", "flatten", "nope", 3, None]
# Sizes stay small when valid (the forward pass must be quick); huge and odd ones must be refused.
params = st.one_of(
    st.integers(min_value=-3, max_value=24),
    st.integers(min_value=-(10**400), max_value=10**400),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(["relu", "sigmoid", "tanh", "softrelu", "none", "swish", ""]),
    st.none(),
    st.booleans(),
)
dense_units = st.one_of(st.integers(min_value=-3, max_value=24), params)
layer = st.one_of(
    st.tuples(st.sampled_from(TYPES), st.lists(params, max_size=3)),
    st.tuples(st.just("dense"), st.tuples(dense_units, params).map(list)),
    st.tuples(st.just("leaky_relu"), st.lists(params, min_size=1, max_size=1)),
    st.tuples(st.just("dropout"), st.lists(params, min_size=1, max_size=1)),
    st.lists(st.sampled_from(["dense", 1, None]), max_size=3),
    params,
)
genomes = st.one_of(st.lists(layer, max_size=5), params, st.text(max_size=5))


def _small(layers) -> bool:
    # Valid dense layers may still be large through huge ints: keep forward passes tiny.
    return all(
        not (isinstance(p, int) and not isinstance(p, bool) and p > 64)
        for _, ps in layers
        for p in ps
    )


@settings(max_examples=2000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(genomes)
def test_a_genome_is_refused_naming_the_layer_or_runs(layers):
    before = copy.deepcopy(layers)
    try:
        checked = genome.validate(layers)
    except ValueError as error:
        assert "layers" in str(error), str(error)
        assert layers == before or layers != layers  # NaN never equals itself
        try:
            Network(layers, input_shape=(3,), n_classes=2)
        except ValueError as again:
            assert "layers" in str(again)
        else:
            raise AssertionError(f"Network accepted a genome validate refused: {layers!r}")
        return
    if not _small(checked):
        return
    net = Network(layers, input_shape=(3,), n_classes=2)
    model = build(net.layers, (3,), 2).eval()
    with torch.no_grad():
        out = model(torch.randn(2, 3))
    assert out.shape == (2, 2)
    assert net.predict(torch.randn(2, 3)).shape == (2,)
