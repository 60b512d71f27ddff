"""A scripted model for generation tests: plain text, or JSON that follows the request's schema."""

from __future__ import annotations

import json
from typing import Any

from synthloom.llm import FakeBackend, FakeConfig, Request


def value_for(name: str, schema: dict[str, Any], request: Request) -> Any:
    if "enum" in schema:
        return schema["enum"][(request.seed or 0) % len(schema["enum"])]
    kind = schema.get("type")
    if kind == "array":
        return [f"{name} {i} {(request.seed or 0) % 997}" for i in range(schema.get("minItems", 2))]
    if kind == "integer":
        return (request.seed or 0) % 10
    if kind == "number":
        return 0.5
    if kind == "boolean":
        return True
    return f"{name} {(request.seed or 0) % 99991} {request.attempt}"


def scripted_answer(request: Request) -> str:
    if request.json_schema is not None:
        props = request.json_schema["properties"]
        return json.dumps({name: value_for(name, spec, request) for name, spec in props.items()})
    return f"Answer {(request.seed or 0) % 99991} to: {request.messages[-1]['content'][:40]}."


def scripted_backend(responder=scripted_answer) -> FakeBackend:
    return FakeBackend(FakeConfig(), responder)
