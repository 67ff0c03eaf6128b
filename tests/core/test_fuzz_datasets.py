"""Fuzzing from_tensors: odd shapes, dtypes and labels are refused naming the argument, or work.

Refused: a ValueError/TypeError naming ``x_train``, ``y_train``, ``x_test``,
``y_test`` or ``n_classes``, and the given arrays unchanged. Accepted: a task
a network of that task can run a forward pass on.
"""

from __future__ import annotations

import numpy as np
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from galapagos_nao.core import datasets
from galapagos_nao.core.network import build

NAMES = ("x_train", "y_train", "x_test", "y_test", "n_classes")
dtypes = st.sampled_from(
    [np.float32, np.float64, np.int64, np.int32, np.uint8, np.uint32, np.bool_, np.complex64]
)
inputs = hnp.arrays(dtypes, hnp.array_shapes(min_dims=1, max_dims=3, min_side=0, max_side=4))
labels = st.one_of(
    hnp.arrays(
        st.sampled_from([np.int64, np.int32, np.uint8, np.uint16, np.uint32, np.float32]),
        hnp.array_shapes(min_dims=1, max_dims=2, min_side=0, max_side=6),
    ),
    st.lists(st.integers(min_value=-2, max_value=10**9), min_size=0, max_size=6).map(
        lambda xs: np.array(xs, dtype=np.int64)
    ),
)
n_classes = st.one_of(st.none(), st.integers(min_value=-2, max_value=10**10), st.just(True))


@settings(max_examples=2000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(inputs, labels, inputs, labels, n_classes)
def test_from_tensors_refuses_naming_the_argument_or_gives_a_usable_task(xtr, ytr, xte, yte, k):
    copies = [a.copy() for a in (xtr, ytr, xte, yte)]
    try:
        task = datasets.from_tensors(xtr, ytr, xte, yte, n_classes=k)
    except (ValueError, TypeError) as error:
        assert any(name in str(error) for name in NAMES), str(error)
        for given_array, copy in zip((xtr, ytr, xte, yte), copies, strict=True):
            np.testing.assert_array_equal(given_array, copy)
        return
    model = build([("dense", [3, "relu"])], task.input_shape, task.n_classes).eval()
    with torch.no_grad():
        out = model(task.x_train[:2])
    assert out.shape == (min(2, task.n_train), task.n_classes)
