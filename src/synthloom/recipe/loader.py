"""YAML with line numbers, and errors that say where.

A recipe error must name the key, the file and the line, on one line. PyYAML
throws positions away once it builds Python objects, so the loader composes
the node tree itself and keeps a map from each key path (("generation",
"temperature"), ("curation", 1, "min_chars")) to the line it is on.
Validation errors from pydantic are then mapped back through that map.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

PathKey = tuple[Any, ...]


class RecipeError(ValueError):
    """A recipe problem, printed as `file:line: key: message`."""

    def __init__(self, message: str, file: str | None = None, line: int | None = None, key: str = ""):
        self.message = message
        self.file = file
        self.line = line
        self.key = key
        super().__init__(self.one_line())

    def one_line(self) -> str:
        where = ""
        if self.file:
            where = f"{self.file}:{self.line}: " if self.line else f"{self.file}: "
        key = f"{self.key}: " if self.key else ""
        return f"{where}{key}{self.message}"


class _Lines:
    def __init__(self) -> None:
        self.lines: dict[PathKey, int] = {}


def load_yaml(path: str | Path) -> tuple[Any, dict[PathKey, int]]:
    """Parse a YAML file into plain values and a map of key path -> 1-based line."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise RecipeError("recipe file not found", str(path)) from None
    except IsADirectoryError:
        raise RecipeError("a folder, not a recipe file (give the path of a .yaml file)", str(path)) from None
    except UnicodeDecodeError as exc:
        raise RecipeError(f"not UTF-8 text (byte {exc.start})", str(path)) from None
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problem = getattr(exc, "problem", None) or str(exc)
        raise RecipeError(
            f"YAML syntax error: {problem}", str(path), mark.line + 1 if mark else None
        ) from None
    lines = _Lines()
    if node is None:
        return {}, lines.lines
    value = _build(node, (), lines, str(path))
    return value, lines.lines


def _build(node: yaml.Node, path: PathKey, lines: _Lines, file: str) -> Any:
    lines.lines.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        out: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = _scalar(key_node)
            if key in out:
                raise RecipeError(
                    "key appears twice", file, key_node.start_mark.line + 1, _dotted(path + (key,))
                )
            lines.lines[path + (key,)] = key_node.start_mark.line + 1
            out[key] = _build(value_node, path + (key,), lines, file)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_build(item, path + (i,), lines, file) for i, item in enumerate(node.value)]
    return _scalar(node)


def _scalar(node: yaml.Node) -> Any:
    if not isinstance(node, yaml.ScalarNode):
        raise RecipeError("a mapping key must be a plain value", None, node.start_mark.line + 1)
    loader = yaml.SafeLoader("")
    try:
        return loader.construct_object(node, deep=True)
    finally:
        loader.dispose()


def _dotted(path: PathKey) -> str:
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


def error_from_validation(
    exc: ValidationError, data: Any, lines: dict[PathKey, int], file: str | None
) -> RecipeError:
    """The first validation error, located in the recipe file."""
    err = exc.errors(include_url=False)[0]
    loc = tuple(err["loc"])
    if err["type"] in ("union_tag_invalid", "union_tag_not_found"):
        loc += (str(err.get("ctx", {}).get("discriminator", "")).strip("'"),)
    path, missing_tail = _data_path(loc, data)
    line = lines.get(path)
    probe = path
    while line is None and probe:
        probe = probe[:-1]
        line = lines.get(probe)
    key = _dotted(path + missing_tail)
    message = validation_message(err)
    return RecipeError(message, file, line, key)


def _data_path(loc: tuple[Any, ...], data: Any) -> tuple[PathKey, PathKey]:
    """Follow pydantic's `loc` through the data, skipping union tags it adds."""
    path: list[Any] = []
    node = data
    tail: list[Any] = []
    for part in loc:
        if isinstance(node, dict) and part in node:
            path.append(part)
            node = node[part]
        elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            path.append(part)
            node = node[part]
        elif isinstance(part, str) and (part.startswith(("function-", "union[", "json-or")) or "[" in part):
            continue
        elif isinstance(node, dict) and isinstance(part, str):
            tags = {node.get("backend"), node.get("stage"), node.get("kind")}
            if part in tags:
                continue
            tail.append(part)
            node = None
        else:
            continue
    return tuple(path), tuple(tail)


def validation_message(err: dict[str, Any]) -> str:
    """One pydantic error as the short phrase a one-line error shows."""
    kind = err["type"]
    if kind == "extra_forbidden":
        return "unknown key"
    if kind == "missing":
        return "required key is missing"
    if kind == "union_tag_invalid":
        ctx = err.get("ctx", {})
        return f"unknown value {ctx.get('tag')!r}; expected one of {ctx.get('expected_tags')}"
    if kind == "union_tag_not_found":
        return f"required key {err.get('ctx', {}).get('discriminator')} is missing"
    msg = err["msg"]
    if msg.startswith("Value error, "):
        msg = msg[len("Value error, ") :]
    if kind not in ("value_error", "assertion_error") and "input" in err:
        value = err["input"]
        if not isinstance(value, (dict, list)):
            shown = repr(value)
            msg = f"{msg} (got {shown[:60]})"
    return msg
