"""Fixtures for the structured-output tests: the default model (SmolLM2) on the native engine,
loaded once, and the same file on the llama.cpp backend; a varied set of JSON schemas."""
from __future__ import annotations

import pytest

N_CTX = 512

# Schemas that cover the supported keywords; bounded so a reply fits in MAX_TOKENS.
ROBOT = {
    "type": "object",
    "properties": {
        "action": {"enum": ["move", "grip", "release", "stop"]},
        "joint": {"type": "string", "enum": ["base", "shoulder", "elbow", "wrist"]},
        "degrees": {"type": "integer", "minimum": -180, "maximum": 180},
    },
    "required": ["action", "joint", "degrees"],
    "additionalProperties": False,
}
SCHEMAS = {
    "robot": ROBOT,
    "nested": {
        "type": "object",
        "properties": {
            "name": {"type": "string", "minLength": 1, "maxLength": 12, "pattern": "^[A-Za-z ]+$"},
            "pose": {"type": "object", "properties": {"x": {"type": "number", "minimum": -1, "maximum": 1},
                                                      "y": {"type": "number", "minimum": -1, "maximum": 1}},
                     "required": ["x", "y"], "additionalProperties": False},
            "tags": {"type": "array", "items": {"type": "string", "maxLength": 8}, "minItems": 1, "maxItems": 3},
            "note": {"type": "string", "maxLength": 10},
        },
        "required": ["name", "pose", "tags"],
        "additionalProperties": False,
    },
    "anyof_const_ref": {
        "$defs": {"color": {"enum": ["red", "green", "blue"]}},
        "type": "object",
        "properties": {
            "kind": {"const": "light"},
            "value": {"anyOf": [{"$ref": "#/$defs/color"}, {"type": "integer", "minimum": 0, "maximum": 255}]},
            "mode": {"oneOf": [{"type": "boolean"}, {"type": "null"}]},
        },
        "required": ["kind", "value", "mode"],
        "additionalProperties": False,
    },
    "array_root": {"type": "array", "items": {"type": "integer", "minimum": 1, "maximum": 9},
                   "minItems": 2, "maxItems": 4},
}
MAX_TOKENS = 96


@pytest.fixture(scope="session")
def native_llm():
    import edgegen

    llm = edgegen.load("smollm2", backend="native", n_ctx=N_CTX, n_threads=2)
    yield llm
    llm.backend.close()


@pytest.fixture(scope="session")
def llama_llm():
    import edgegen

    llm = edgegen.load("smollm2", backend="llama.cpp", n_ctx=N_CTX, n_threads=1)
    yield llm
    llm.backend.close()
