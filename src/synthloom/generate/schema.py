"""Typed output: a JSON schema for a step's fields, and a parser that checks and repairs answers.

The schema goes to the server as `response_format` (OpenAI's `json_schema`,
or llama.cpp's schema-constrained `json_object`, whichever the server
takes); when a server cannot constrain its output the answer may still
be JSON with small faults, or the plain-text layout. The parser takes
what it can: it repairs JSON cut off by the token limit or wrapped in
prose, coerces types ("3" -> 3), maps a label written loosely ("Spam.")
onto the label set, and raises `InvalidAnswer` (the scheduler then asks
again) for anything it cannot read. What it repaired travels with the value
(`Parsed.repairs`) into the record and the manifest's counts.
"""

from __future__ import annotations

import json
import re
from typing import Any, Callable, Mapping, Sequence

from ..llm import Completion, InvalidAnswer
from ..recipe import FieldSpec

_JSON_TYPES = {"string": "string", "integer": "integer", "number": "number", "boolean": "boolean"}


class Parsed(dict):
    """A parsed answer (field -> value) and the repairs it needed."""

    repairs: tuple[str, ...] = ()

    @classmethod
    def of(cls, values: Mapping[str, Any], repairs: Sequence[str] = ()) -> Parsed:
        out = cls(values)
        if repairs:
            out.repairs = tuple(repairs)
        return out


def field_schema(spec: FieldSpec) -> dict[str, Any]:
    if spec.type == "list":
        return {"type": "array", "items": {"type": "string"}, "minItems": 1}
    schema: dict[str, Any] = {"type": _JSON_TYPES[spec.type]}
    if spec.enum is not None:
        schema["enum"] = list(spec.enum)
    elif spec.type == "string":
        schema["minLength"] = 1
    return schema


def output_schema(fields: Mapping[str, FieldSpec]) -> dict[str, Any]:
    """The JSON schema of an answer that writes `fields`."""
    return {
        "type": "object",
        "properties": {name: field_schema(spec) for name, spec in fields.items()},
        "required": list(fields),
        "additionalProperties": False,
    }


def match_label(value: Any, labels: Sequence[str]) -> tuple[str, bool]:
    """The label `value` names, and whether that took more than an exact match."""
    text = str(value).strip()
    if text in labels:
        return text, False
    folded = _fold(text)
    by_fold = {_fold(label): label for label in labels}
    if folded in by_fold:
        return by_fold[folded], True
    # "The label is spam." -> the one label whose name appears as a whole word
    found = [label for key, label in by_fold.items() if key and re.search(rf"(?<![a-z0-9]){re.escape(key)}(?![a-z0-9])", folded)]
    if len(found) == 1:
        return found[0], True
    raise InvalidAnswer(f"{text[:40]!r} is not one of the labels ({', '.join(labels[:8])}{', ...' if len(labels) > 8 else ''})")


def _fold(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", " ", text.casefold()).strip()


def _coerce(name: str, value: Any, spec: FieldSpec) -> tuple[Any, bool]:
    """`value` as the field's type; the flag says a conversion was needed."""
    kind = spec.type
    try:
        if kind == "string":
            if isinstance(value, (dict, list)):
                raise InvalidAnswer(f"field {name!r} is not a text")
            text = str(value).strip()
            if not text:
                raise InvalidAnswer(f"field {name!r} is empty")
            if spec.enum is not None:
                return match_label(text, spec.enum)
            return text, not isinstance(value, str)
        if kind == "integer":
            if isinstance(value, bool):
                raise ValueError
            if isinstance(value, int):
                return value, False
            number = float(str(value).strip().replace(",", ""))
            if not number.is_integer():
                raise ValueError
            return int(number), True
        if kind == "number":
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                return float(value), False
            return float(str(value).strip().replace(",", "")), True
        if kind == "boolean":
            if isinstance(value, bool):
                return value, False
            folded = str(value).strip().casefold()
            if folded in ("true", "yes", "1"):
                return True, True
            if folded in ("false", "no", "0"):
                return False, True
            raise ValueError
        if kind == "list":
            if isinstance(value, list) and value and all(isinstance(v, str) and v.strip() for v in value):
                return [v.strip() for v in value], False
            if isinstance(value, str) and value.strip():
                items = [p.strip(" -*\t") for p in re.split(r"\n|;|,", value) if p.strip(" -*\t")]
                if items:
                    return items, True
            raise ValueError
    except (ValueError, TypeError):
        raise InvalidAnswer(f"field {name!r} is not a {kind}: {str(value)[:40]!r}") from None
    raise AssertionError(kind)  # pragma: no cover


def extract_json(text: str) -> tuple[Any, list[str]]:
    """The first JSON object in `text`, repaired when needed; the list names the repairs."""
    start = text.find("{")
    if start < 0:
        raise InvalidAnswer(f"no JSON object in the answer: {text[:60]!r}")
    repairs = [] if not text[:start].strip() else ["prose_around_json"]
    body = text[start:]
    decoder = json.JSONDecoder()
    try:
        value, end = decoder.raw_decode(body)
        if body[end:].strip():
            repairs = repairs or ["prose_around_json"]
        return value, repairs
    except ValueError:
        pass
    closed = _close_json(body)
    if closed is not None:
        try:
            return decoder.raw_decode(closed)[0], repairs + ["unclosed_json"]
        except ValueError:
            pass
    loose = re.sub(r",\s*([}\]])", r"\1", body.replace("'", '"'))
    try:
        return decoder.raw_decode(loose)[0], repairs + ["loose_json"]
    except ValueError:
        raise InvalidAnswer(f"answer is not valid JSON: {text[:60]!r}") from None


def _close_json(body: str) -> str | None:
    """JSON cut off mid-way, closed after its last complete value (strings, arrays, objects)."""
    stack: list[str] = []
    in_string = escaped = False
    last_safe = -1
    for i, ch in enumerate(body):
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
                last_safe = i
            continue
        if ch == '"':
            in_string = True
        elif ch in "{[":
            stack.append("}" if ch == "{" else "]")
        elif ch in "}]":
            if stack:
                stack.pop()
            last_safe = i
            if not stack:
                return None  # complete yet unparsable: not a truncation
        elif ch.isdigit() or ch in "el":  # end of a number, true, false, null
            last_safe = i
    if not stack or last_safe < 0:
        return None
    if in_string:  # keep the text written so far
        return body + '"' + "".join(reversed(stack))
    head = body[: last_safe + 1].rstrip().rstrip(",:")
    return head + "".join(reversed(stack))


def check_values(data: Mapping[str, Any], fields: Mapping[str, FieldSpec], repairs: list[str], text: str = "") -> Parsed:
    """The fields' values from `data`, typed; names and types fixed where that is safe."""
    by_fold = {_fold(k): v for k, v in data.items()}
    values: dict[str, Any] = {}
    for name, spec in fields.items():
        if name in data:
            raw = data[name]
        elif _fold(name) in by_fold:
            raw = by_fold[_fold(name)]
            repairs.append("key_name")
        else:
            raise InvalidAnswer(f"answer lacks field {name!r}: {text[:60]!r}")
        value, changed = _coerce(name, raw, spec)
        if changed:
            repairs.append("label" if spec.enum is not None else "type")
        values[name] = value
    return Parsed.of(values, repairs)


class JsonAnswerParser:
    """Answers as JSON objects with typed fields; falls back to a plain-text parser."""

    def __init__(self, fields: Mapping[str, FieldSpec], fallback: Callable[[Completion], Mapping[str, Any]] | None = None):
        self.fields = dict(fields)
        self.fallback = fallback

    def __call__(self, completion: Completion) -> Parsed:
        try:
            data, repairs = extract_json(completion.text)
        except InvalidAnswer:
            if self.fallback is None:
                raise
            data = dict(self.fallback(completion))
            repairs = ["text_layout"]
        if not isinstance(data, dict):
            raise InvalidAnswer(f"answer is JSON but not an object: {completion.text[:60]!r}")
        return check_values(data, self.fields, repairs, completion.text)


class TypedTextParser:
    """The plain-text layout, then the fields' types and labels checked as for JSON."""

    def __init__(self, fields: Mapping[str, FieldSpec], text_parser: Callable[[Completion], Mapping[str, Any]]):
        self.fields = dict(fields)
        self.text_parser = text_parser

    def __call__(self, completion: Completion) -> Parsed:
        data = self.text_parser(completion)
        return check_values(data, self.fields, list(getattr(data, "repairs", ())), completion.text)


__all__ = [
    "JsonAnswerParser",
    "Parsed",
    "TypedTextParser",
    "check_values",
    "extract_json",
    "field_schema",
    "match_label",
    "output_schema",
]
