"""JSON Schema ⇄ Gemini Schema: what Gemini rejects is removed, what it lacks is rewritten."""

from __future__ import annotations

import pytest

from relay.protocols.gemini_schema import schema_from_gemini, schema_to_gemini


@pytest.mark.parametrize(
    "schema, expected",
    [
        pytest.param({"type": "object", "additionalProperties": False, "$schema": "x", "strict": True, "title": "T",
                      "properties": {"a": {"type": "string", "default": "d", "examples": ["e"], "$id": "i"}}},
                     {"type": "OBJECT", "properties": {"a": {"type": "STRING"}}}, id="unsupported-keys-recursively"),
        pytest.param({"type": "string", "format": "email"}, {"type": "STRING"}, id="unsupported-string-format"),
        pytest.param({"type": "string", "format": "date-time"}, {"type": "STRING", "format": "date-time"},
                     id="supported-string-format"),
        pytest.param({"type": "integer", "format": "int64"}, {"type": "INTEGER", "format": "int64"},
                     id="numeric-format"),
        pytest.param({"type": ["integer", "null"]}, {"type": "INTEGER", "nullable": True}, id="nullable-type-list"),
        pytest.param({"type": "null"}, {"type": "NULL"}, id="plain-null-type"),
        pytest.param({"oneOf": [{"type": "string"}, {"type": "number"}]},
                     {"anyOf": [{"type": "STRING"}, {"type": "NUMBER"}]}, id="oneOf-as-anyOf"),
        pytest.param({"type": "array", "items": {"type": "object", "properties": {}, "additionalProperties": True}},
                     {"type": "ARRAY", "items": {"type": "OBJECT"}}, id="nested-empty-properties"),
        pytest.param({"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a", "ghost"]},
                     {"type": "OBJECT", "properties": {"a": {"type": "STRING"}}, "required": ["a"]},
                     id="required-only-known-properties"),
        pytest.param({"allOf": [{"type": "object", "properties": {"a": {"type": "boolean"}}}], "description": "d"},
                     {"type": "OBJECT", "properties": {"a": {"type": "BOOLEAN"}}, "description": "d"},
                     id="allOf-merged"),
        pytest.param({"type": "number", "enum": [0.5, 1]}, {"type": "NUMBER", "description": "Allowed values: 0.5, 1."},
                     id="numeric-enum-in-words"),
        pytest.param({"enum": ["a", "b"]}, {"type": "STRING", "enum": ["a", "b"]}, id="bare-enum-is-string"),
        pytest.param("not a schema", {}, id="not-a-dict"),
    ],
)
def test_schema_to_gemini(schema, expected):
    assert schema_to_gemini(schema) == expected


def test_refs_are_inlined_and_recursion_is_bounded():
    schema = {"type": "object", "$defs": {"Node": {"type": "object", "properties": {
        "value": {"type": "integer"}, "children": {"type": "array", "items": {"$ref": "#/$defs/Node"}}}}},
        "properties": {"root": {"$ref": "#/$defs/Node", "description": "top"}, "bad": {"$ref": "#/$defs/Missing"}}}
    out = schema_to_gemini(schema)
    assert out["properties"]["root"]["description"] == "top"
    assert out["properties"]["bad"] == {"type": "OBJECT"}
    depth, node = 0, out["properties"]["root"]
    while "properties" in node:
        node, depth = node["properties"]["children"]["items"], depth + 1
    assert depth == 8 and node == {"type": "OBJECT"}
    assert "$defs" not in out


def test_definitions_refs_are_inlined_too():
    schema = {"definitions": {"Id": {"type": "string"}}, "type": "object",
              "properties": {"id": {"$ref": "#/definitions/Id"}}}
    assert schema_to_gemini(schema) == {"type": "OBJECT", "properties": {"id": {"type": "STRING"}}}


def test_schema_from_gemini_lowercases_and_spells_nullable_as_json_schema():
    schema = {"type": "OBJECT", "properties": {"a": {"type": "STRING", "nullable": True},
                                               "b": {"type": "ARRAY", "items": {"type": "INTEGER"}, "max_items": 3},
                                               "c": {"any_of": [{"type": "STRING"}, {"type": "NUMBER"}]}},
              "propertyOrdering": ["a", "b", "c"], "required": ["a"]}
    assert schema_from_gemini(schema) == {
        "type": "object", "required": ["a"], "properties": {
            "a": {"type": ["string", "null"]}, "b": {"type": "array", "items": {"type": "integer"}, "maxItems": 3},
            "c": {"anyOf": [{"type": "string"}, {"type": "number"}]}}}


def test_wrongly_typed_keywords_are_dropped():
    assert schema_to_gemini({"type": {"x": 1}, "properties": [1], "format": {}, "required": "a", "anyOf": {}}) == {}
