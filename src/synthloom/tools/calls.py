"""Tool calls in a trajectory, and the format check of each (APIGen's first stage).

A trajectory is the OpenAI/TRL `messages` list: the assistant's turn holds
`tool_calls` (`{id, type: function, function: {name, arguments}}`, the
arguments a JSON string), each answered by a `tool` message with the same
`tool_call_id`. `format_problem` says, in one line with its kind first, why
a call does not stand: its arguments are not a JSON object, it names no
tool there is, a required argument is missing, or an argument does not
validate against the tool's JSON schema (jsonschema, draft 2020-12).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Mapping, Sequence


@dataclass
class ToolCall:
    """One call as the assistant wrote it; `arguments` is None when they are not a JSON object."""

    id: str
    name: str
    raw_arguments: str
    arguments: dict[str, Any] | None

    def to_message(self) -> dict[str, Any]:
        return {"id": self.id, "type": "function", "function": {"name": self.name, "arguments": self.raw_arguments}}


def make_call(index: int, name: Any, arguments: Any, prefix: str = "call") -> ToolCall:
    """A call from a parsed answer: arguments given as an object or as a JSON string."""
    raw = arguments if isinstance(arguments, str) else json.dumps(arguments, ensure_ascii=False)
    return ToolCall(f"{prefix}_{index}", str(name), raw, _object(raw))


def _object(raw: str) -> dict[str, Any] | None:
    try:
        value = json.loads(raw)
    except (TypeError, json.JSONDecodeError):
        return None
    return value if isinstance(value, dict) else None


def as_list(value: Any) -> list[Any]:
    """A field stored as a JSON string (in Parquet) or as a list."""
    if isinstance(value, str):
        value = json.loads(value) if value.strip() else []
    return list(value or [])


def calls_in(messages: Sequence[Mapping[str, Any]]) -> list[ToolCall]:
    """Every call of every assistant turn, in order."""
    out = []
    for message in messages:
        if message.get("role") != "assistant":
            continue
        for i, call in enumerate(message.get("tool_calls") or []):
            function = call.get("function") or {}
            raw = function.get("arguments")
            raw = raw if isinstance(raw, str) else json.dumps(raw)
            out.append(ToolCall(str(call.get("id") or f"call_{i}"), str(function.get("name")), raw, _object(raw)))
    return out


def tool_results(messages: Sequence[Mapping[str, Any]]) -> dict[str, str]:
    """tool_call_id -> the content of its `tool` message."""
    return {str(m.get("tool_call_id")): str(m.get("content") or "") for m in messages if m.get("role") == "tool"}


def schemas_of(tools: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """name -> parameters schema, from an OpenAI `tools` list."""
    out = {}
    for tool in tools:
        function = tool.get("function", tool)
        out[str(function.get("name"))] = dict(function.get("parameters") or {"type": "object"})
    return out


def format_problem(call: ToolCall, schemas: Mapping[str, Mapping[str, Any]]) -> str | None:
    """None when the call is well formed, else `kind: what` (kinds: bad_arguments, unknown_tool,
    missing_argument, invalid_argument)."""
    import jsonschema

    if call.arguments is None:
        return f"bad_arguments: {call.name}: arguments are not a JSON object: {call.raw_arguments[:80]!r}"
    schema = schemas.get(call.name)
    if schema is None:
        known = ", ".join(sorted(schemas)) or "none"
        return f"unknown_tool: {call.name!r} is not a tool (tools: {known})"
    missing = [name for name in schema.get("required", []) if name not in call.arguments]
    if missing:
        return f"missing_argument: {call.name}: required argument {missing[0]!r} is missing"
    error = jsonschema.exceptions.best_match(jsonschema.Draft202012Validator(schema).iter_errors(call.arguments))
    if error is not None:
        where = ".".join(str(p) for p in error.absolute_path) or "arguments"
        return f"invalid_argument: {call.name}: {where}: {error.message}"
    return None


def problem_kind(reason: str) -> str:
    """The kind at the front of a check's reason (`unknown_tool: ...` -> `unknown_tool`)."""
    head = reason.split(":", 1)[0].strip()
    return head if head.replace("_", "").isalpha() else "other"


__all__ = ["ToolCall", "as_list", "calls_in", "format_problem", "make_call", "problem_kind", "schemas_of", "tool_results"]
