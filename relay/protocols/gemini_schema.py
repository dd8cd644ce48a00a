"""JSON Schema (OpenAI tools, response_format) ⇄ Gemini's OpenAPI-subset Schema (protocols.md §5.1). Pure."""

from __future__ import annotations

import json
import re
from typing import Any

# The OpenAPI subset Gemini's Schema accepts (python-genai types.Schema). `title` and `default` are left out: the
# Gemini API (not Vertex) rejects them (python-genai _transformers.process_schema).
_SCHEMA_KEYS = {"type", "format", "description", "nullable", "enum", "items", "minItems", "maxItems", "properties",
                "required", "minProperties", "maxProperties", "minLength", "maxLength", "pattern", "anyOf",
                "propertyOrdering", "minimum", "maximum", "example"}
_STRING_FORMATS = {"enum", "date-time"}  # the only string formats the Gemini API accepts
# The JSON type each kept key must have; anything else is dropped rather than sent to be rejected.
_SHAPES: dict[str, type] = {"type": str, "format": str, "description": str, "pattern": str, "properties": dict,
                            "items": dict, "anyOf": list, "required": list, "enum": list, "propertyOrdering": list}
_MAX_REF_DEPTH = 8
_VALUES = ("enum", "const", "example", "default")  # data, not schemas


def _resolve(node: Any, root: dict, depth: int) -> Any:
    """Inline local `$ref`s (#/$defs/X, #/definitions/X) and merge `allOf`; recursion stops at _MAX_REF_DEPTH."""
    if isinstance(node, list):
        return [_resolve(item, root, depth) for item in node]
    if not isinstance(node, dict):
        return node
    ref = node.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/"):
        target: Any = root
        for key in ref[2:].split("/"):
            target = target.get(key) if isinstance(target, dict) else None
        rest = {k: v for k, v in node.items() if k != "$ref"}
        if depth >= _MAX_REF_DEPTH or not isinstance(target, dict):
            return _resolve({"type": "object", **rest}, root, depth)
        return _resolve({**target, **rest}, root, depth + 1)
    if isinstance(node.get("allOf"), list):
        merged = {k: v for k, v in node.items() if k != "allOf"}
        for sub in node["allOf"]:
            sub = _resolve(sub, root, depth)
            merged = {**sub, **merged} if isinstance(sub, dict) else merged
        node = merged
    return {k: v if k in _VALUES else _resolve(v, root, depth)
            for k, v in node.items() if k not in ("$defs", "definitions")}


def _clean(schema: Any) -> dict:
    if not isinstance(schema, dict):
        return {}
    schema = dict(schema)
    if "const" in schema and "enum" not in schema:
        schema["enum"] = [schema["const"]]
    if "oneOf" in schema and "anyOf" not in schema:
        schema["anyOf"] = schema["oneOf"]
    kind = schema.get("type")
    if isinstance(kind, list):  # ["string", "null"] -> STRING + nullable
        real = [t for t in kind if t != "null"]
        schema["type"] = real[0] if real else None
        if "null" in kind:
            schema["nullable"] = True
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key not in _SCHEMA_KEYS or value is None or not isinstance(value, _SHAPES.get(key, object)):
            continue
        if key == "type" and isinstance(value, str):
            value = value.upper()
        elif key == "properties":
            value = {name: _clean(sub) for name, sub in value.items()}
        elif key == "items":
            value = _clean(value)
        elif key == "anyOf":
            value = [_clean(sub) for sub in value]
        elif key == "required":
            value = [name for name in value if isinstance(name, str)]
        out[key] = value
    if isinstance(out.get("enum"), list) and out.get("type", "STRING") != "STRING":
        # Gemini allows enum on strings only: keep the type, tell the model the values in words instead
        values = ", ".join(json.dumps(v, ensure_ascii=False) for v in out.pop("enum"))
        out["description"] = f"{out.get('description', '')} Allowed values: {values}.".strip()
    elif isinstance(out.get("enum"), list):
        out["enum"] = [v if isinstance(v, str) else json.dumps(v) for v in out["enum"]]
        out["type"] = "STRING"  # a bare `const`/`enum` has no type; Gemini wants one
    if out.get("type") == "STRING" and out.get("format") not in _STRING_FORMATS:
        out.pop("format", None)
    if "properties" in out:
        if not out["properties"]:
            del out["properties"]  # Gemini: "properties: should be non-empty for OBJECT type"
        if isinstance(out.get("required"), list):
            out["required"] = [r for r in out["required"] if r in out.get("properties", {})]
    if out.get("required") == []:
        del out["required"]
    return out


def schema_to_gemini(schema: Any) -> dict:
    """A JSON Schema (as OpenAI tools and response_format carry) -> Gemini's OpenAPI-subset Schema."""
    return _clean(_resolve(schema, schema, 0)) if isinstance(schema, dict) else {}


def schema_from_gemini(schema: Any) -> Any:
    """Gemini Schema -> JSON Schema: lower-case types, `nullable` as a "null" type."""
    if not isinstance(schema, dict):
        return schema
    out: dict[str, Any] = {}
    for key, value in schema.items():
        key = re.sub(r"_([a-z])", lambda m: m[1].upper(), key)
        if key == "type" and isinstance(value, str):
            value = value.lower()
        elif key == "properties" and isinstance(value, dict):
            value = {name: schema_from_gemini(sub) for name, sub in value.items()}
        elif key == "items":
            value = schema_from_gemini(value)
        elif key == "anyOf" and isinstance(value, list):
            value = [schema_from_gemini(sub) for sub in value]
        elif key in ("nullable", "propertyOrdering"):
            continue
        out[key] = value
    if schema.get("nullable") is True and isinstance(out.get("type"), str):
        out["type"] = [out["type"], "null"]
    return out
