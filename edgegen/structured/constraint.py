"""What a caller asks the output to be: a JSON Schema, any JSON object, a regex, a Lark or GBNF
grammar. `Constraint` is the checked, canonical form of one request's constraint; it is plain data
(hashable, the compile cache's key) and knows nothing about tokenizers.

Every constraint is untrusted input (an HTTP body, a file a user brought): sizes and nesting are
bounded here, before anything is compiled, and every problem is a `ConstraintError` (HTTP 400).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Literal, Mapping, Optional

from ..errors import ConstraintError

ConstraintKind = Literal["json_schema", "json_object", "regex", "lark", "gbnf"]

MAX_CONSTRAINT_CHARS = 256 * 1024  # a schema or grammar beyond this is refused before compiling
MAX_SCHEMA_DEPTH = 64              # nesting of objects/arrays in the schema document itself


@dataclass(frozen=True)
class Constraint:
    """One output constraint. `source` is canonical text: compact JSON for a schema, the pattern
    or grammar text otherwise. `name` labels a JSON schema (OpenAI's json_schema.name)."""

    kind: ConstraintKind
    source: str
    name: str = ""

    @property
    def schema(self) -> Optional[dict[str, Any]]:
        """The JSON Schema (json_schema / json_object kinds), else None."""
        if self.kind == "json_object":
            return {"type": "object"}
        if self.kind == "json_schema":
            return json.loads(self.source)
        return None

    # ---- constructors ---------------------------------------------------------------------------
    @classmethod
    def json_schema(cls, schema: Any, name: str = "") -> "Constraint":
        if isinstance(schema, str):
            _check_size("json_schema", schema)
            try:
                schema = json.loads(schema)
            except RecursionError:
                raise ConstraintError(f"the JSON schema nests deeper than {MAX_SCHEMA_DEPTH} levels",
                                      param="response_format") from None
            except ValueError as exc:
                raise ConstraintError(f"json_schema is not valid JSON: {exc}", param="response_format") from None
        if isinstance(schema, bool):  # JSON Schema allows true (anything) and false (nothing)
            schema = {} if schema else {"not": {}}
        if not isinstance(schema, Mapping):
            raise ConstraintError("a JSON schema must be an object", param="response_format")
        _check_depth(schema)
        try:
            # key order kept: properties are generated in the order the schema lists them
            text = json.dumps(schema, separators=(",", ":"), allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise ConstraintError(f"the JSON schema is not plain JSON: {exc}", param="response_format") from None
        _check_size("json_schema", text)
        return cls("json_schema", text, name)

    @classmethod
    def json_object(cls) -> "Constraint":
        return cls("json_object", "")

    @classmethod
    def regex(cls, pattern: Any) -> "Constraint":
        if not isinstance(pattern, str) or not pattern:
            raise ConstraintError("regex must be a non-empty string", param="regex")
        _check_size("regex", pattern)
        return cls("regex", pattern)

    @classmethod
    def grammar(cls, text: Any, syntax: str = "auto") -> "Constraint":
        """A context-free grammar in Lark syntax (llguidance's dialect) or llama.cpp's GBNF.
        `syntax="auto"` reads `::=` rules as GBNF and anything else as Lark."""
        if not isinstance(text, str) or not text.strip():
            raise ConstraintError("grammar must be a non-empty string", param="grammar")
        _check_size("grammar", text)
        if syntax == "auto":
            syntax = "gbnf" if "::=" in text else "lark"
        if syntax not in ("lark", "gbnf"):
            raise ConstraintError(f"grammar syntax must be 'lark', 'gbnf' or 'auto', not {syntax!r}", param="grammar")
        return cls(syntax, text)  # type: ignore[arg-type]


def constraint_from_request(
    response_format: Any = None, grammar: Any = None, regex: Any = None
) -> Optional[Constraint]:
    """The one constraint a request asks for (None when it asks for none): OpenAI's
    `response_format` ({"type": "text" | "json_object" | "json_schema", ...}), `grammar=` or `regex=`.
    Asking for two at once is an error rather than a silent choice."""
    given = [n for n, v in (("response_format", response_format), ("grammar", grammar), ("regex", regex)) if v is not None]
    if len(given) > 1:
        raise ConstraintError(f"give one of response_format, grammar and regex, not {' and '.join(given)}", param=given[1])
    if grammar is not None:
        if isinstance(grammar, Constraint):
            return grammar
        return Constraint.grammar(grammar)
    if regex is not None:
        return Constraint.regex(regex)
    if response_format is None:
        return None
    if isinstance(response_format, Constraint):
        return response_format
    if not isinstance(response_format, Mapping):
        raise ConstraintError("response_format must be an object with a 'type'", param="response_format")
    kind = response_format.get("type")
    if kind == "text":
        return None
    if kind == "json_object":
        return Constraint.json_object()
    if kind == "json_schema":
        spec = response_format.get("json_schema")
        if not isinstance(spec, Mapping) or "schema" not in spec:
            raise ConstraintError("response_format json_schema needs {'json_schema': {'name': ..., 'schema': {...}}}",
                                  param="response_format")
        name = spec.get("name", "")
        return Constraint.json_schema(spec["schema"], name if isinstance(name, str) else "")
    raise ConstraintError(f"response_format type must be 'text', 'json_object' or 'json_schema', not {kind!r}",
                          param="response_format")


def _check_size(what: str, text: str) -> None:
    if len(text) > MAX_CONSTRAINT_CHARS:
        raise ConstraintError(f"the {what} is {len(text)} characters; the limit is {MAX_CONSTRAINT_CHARS}",
                              param="grammar" if what == "grammar" else "regex" if what == "regex" else "response_format")


def _check_depth(doc: Any) -> None:
    """Iterative (a hostile document must not exhaust Python's stack) nesting check."""
    stack = [(doc, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_SCHEMA_DEPTH:
            raise ConstraintError(f"the JSON schema nests deeper than {MAX_SCHEMA_DEPTH} levels", param="response_format")
        if isinstance(node, Mapping):
            stack.extend((v, depth + 1) for v in node.values())
        elif isinstance(node, (list, tuple)):
            stack.extend((v, depth + 1) for v in node)
