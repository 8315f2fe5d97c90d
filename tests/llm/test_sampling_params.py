"""SamplingParams validation: every out-of-range value is a typed ValueError."""
from __future__ import annotations

import math

import pytest

from edgegen.errors import EdgegenError, InvalidRequestError
from edgegen.sampling import SamplingParams


def test_defaults_are_valid():
    assert SamplingParams().validate() == SamplingParams()


@pytest.mark.parametrize(
    "field,value",
    [
        ("temperature", -0.1), ("temperature", math.nan), ("temperature", "hot"), ("top_k", -1), ("top_k", 1.5),
        ("top_p", 1.5), ("min_p", -0.01), ("repeat_penalty", 0.0), ("presence_penalty", 3.0),
        ("frequency_penalty", math.inf), ("seed", -1), ("seed", 2**32), ("seed", True), ("max_tokens", 0),
        ("stop", ("",)), ("stop", ("x" * 1000,)), ("stop", tuple("abcdefghijklmnopq")), ("logit_bias", {-1: 1.0}),
        ("logit_bias", {5: 1000.0}), ("logit_bias", {"x": 1.0}),
    ],
)
def test_out_of_range_values_raise_invalid_request(field, value):
    with pytest.raises(InvalidRequestError) as info:
        SamplingParams().with_overrides(**{field: value})
    assert isinstance(info.value, ValueError) and isinstance(info.value, EdgegenError)


def test_unknown_parameter_is_an_error():
    with pytest.raises(InvalidRequestError, match="unknown sampling parameter"):
        SamplingParams().with_overrides(temprature=0.5)


def test_overrides_normalise_stop_and_json_style_logit_bias():
    p = SamplingParams().with_overrides(stop="\n", logit_bias={"42": -100}, seed=7)
    assert p.stop == ("\n",)
    assert p.logit_bias == {42: -100.0}
    assert p.seed == 7


def test_openai_mapping_carries_the_request_fields():
    body = SamplingParams(temperature=0.0, max_tokens=5, stop=("x",), seed=3).to_openai()
    assert body == {"temperature": 0.0, "top_p": 0.95, "max_tokens": 5, "stop": ["x"], "seed": 3}
