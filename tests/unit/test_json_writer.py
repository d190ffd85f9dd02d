"""`conversion.dump_json` writes exactly what `json.dumps(..., ensure_ascii=False, indent=2)` writes."""

from __future__ import annotations

import json
import math

from hypothesis import given, settings
from hypothesis import strategies as st

from adapter.conversion import dump_json

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.sampled_from([1e-05, 1.5e-09, 0.0001, 1e16, 1e22, -0.0, 123456789.125, 5e-324])
    | st.text()
)
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=8), inner, max_size=5), max_leaves=30)


def reference(obj: object) -> bytes:
    return (json.dumps(obj, ensure_ascii=False, indent=2) + "\n").encode("utf-8", "surrogatepass")


@settings(max_examples=400, deadline=None)
@given(values)
def test_same_bytes_as_the_standard_library(obj: object) -> None:
    assert dump_json(obj) == reference(obj)


def test_exponent_and_small_numbers_fall_back_to_the_standard_path() -> None:
    for obj in ({"a": 1e-05}, [1.5e-09, 2], 1e-07, {"x": {"y": [0.00001234]}}, {"big": 1e300}):
        assert dump_json(obj) == reference(obj)


def test_empty_containers_and_escapes() -> None:
    for obj in ({}, [], {"a": {}}, {"a": []}, {"q": 'say "hi"\n\t\\ \u2028 å'}, "\x00\x1f\x7f"):
        assert dump_json(obj) == reference(obj)


def test_non_finite_floats_as_python_writes_them() -> None:
    assert dump_json({"n": math.inf}) == reference({"n": math.inf})
