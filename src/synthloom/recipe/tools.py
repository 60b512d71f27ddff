"""The tools of a `tool_use` recipe: where they come from and how calls to them are asked for.

Three sources, any mix, in `tools.sources`:

- `python: module:function` (or `path/to/file.py:function`): a Python
  function; its JSON schema comes from its signature and docstring.
- `function: {name, description, parameters}` (the OpenAI `tools` form,
  `type: function` optional): a JSON-schema signature, with an
  `implementation: module:function` or none (its calls are then not run).
- `mcp: {command, args, env, cwd}`: every tool of an MCP server started over
  stdio (or those named in `tools:`).

Paths are relative to the recipe. What can be checked without running
anything (a file that exists, a schema that is valid JSON Schema) is checked
here, with the recipe's line; importing a module or starting a server
happens when the run starts, before any model is asked.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal, Union

from pydantic import Discriminator, Field, Tag, ValidationInfo, field_validator, model_validator

from .common import Strict, expand_vars, resolve_path

CallKind = Literal["single", "multiple", "parallel"]
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]{0,63}$")


def resolve_reference(value: str, info: ValidationInfo) -> str:
    """`module:function` as given, or `file.py:function` with the file made absolute (and checked)."""
    module, sep, function = value.rpartition(":")
    if not sep or not module or not function.isidentifier():
        raise ValueError(f"{value!r}: expected module:function or path/to/file.py:function")
    if module.endswith(".py") or "/" in module:
        path = resolve_path(module, info)
        if not path.is_file():
            raise ValueError(f"tool module not found: {path}")
        return f"{path}:{function}"
    if not all(part.isidentifier() for part in module.split(".")):
        raise ValueError(f"{module!r} is neither a module name nor a .py file")
    return value


def check_json_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """A tool's `parameters`: valid JSON Schema (draft 2020-12) describing an object."""
    try:
        import jsonschema
    except ImportError:  # pragma: no cover - a dependency of the tools extra
        raise ValueError("JSON-schema tools need jsonschema: pip install 'synthloom[tools]'") from None
    try:
        jsonschema.Draft202012Validator.check_schema(schema)
    except jsonschema.SchemaError as exc:
        where = "/".join(str(p) for p in exc.absolute_path) or "(top)"
        raise ValueError(f"parameters is not valid JSON Schema at {where}: {exc.message}") from None
    if schema.get("type", "object") != "object":
        raise ValueError("parameters must describe an object (type: object)")
    return schema


class FunctionSignature(Strict):
    """One tool as the OpenAI `tools` list writes it (the inner `function`)."""

    name: str
    description: str = ""
    parameters: dict[str, Any] = Field(default_factory=lambda: {"type": "object", "properties": {}})
    strict: bool | None = None

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not _NAME.match(value):
            raise ValueError(f"tool name {value!r}: letters, digits, '_' and '-' only (at most 64)")
        return value

    @field_validator("parameters")
    @classmethod
    def _parameters(cls, value: dict[str, Any]) -> dict[str, Any]:
        return check_json_schema(value)


class PythonToolSpec(Strict):
    """A Python function as a tool; its schema comes from its signature and docstring."""

    python: str = Field(..., description="module:function or path/to/file.py:function (relative to the recipe)")
    name: str | None = Field(None, description="the tool's name; default: the function's")

    @field_validator("python")
    @classmethod
    def _reference(cls, value: str, info: ValidationInfo) -> str:
        return resolve_reference(value, info)


class SchemaToolSpec(Strict):
    """A JSON-schema signature (OpenAI `tools` form) with a Python implementation, or none."""

    type: Literal["function"] = "function"
    function: FunctionSignature
    implementation: str | None = Field(
        None, description="module:function that runs the calls; none: calls are checked, not run"
    )

    @field_validator("implementation")
    @classmethod
    def _reference(cls, value: str | None, info: ValidationInfo) -> str | None:
        return None if value is None else resolve_reference(value, info)


class McpServerSpec(Strict):
    """How to start an MCP server over stdio."""

    command: str = Field(..., min_length=1, description="the program; `python` means the interpreter synthloom runs on")
    args: list[str] = Field(default_factory=list)
    env: dict[str, str] | None = None
    cwd: str | None = Field(None, validate_default=True, description="its working directory; default: the recipe's folder")
    startup_timeout: float = Field(60.0, gt=0, le=3600, description="seconds to start and list its tools")

    @field_validator("cwd")
    @classmethod
    def _cwd(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None:
            base = (info.context or {}).get("base_dir")
            return str(Path(base).resolve()) if base else None
        path = resolve_path(value, info)
        if not path.is_dir():
            raise ValueError(f"cwd is not a folder: {path}")
        return str(path)

    @field_validator("args")
    @classmethod
    def _args(cls, value: list[str]) -> list[str]:
        return [expand_vars(a) for a in value]


class McpToolSpec(Strict):
    """The tools of one MCP server (all, or those named)."""

    mcp: McpServerSpec
    tools: list[str] | None = Field(None, description="take only these tools; default: all the server lists")


def _source_kind(value: Any) -> str | None:
    """Which source a mapping is, by its key: python, mcp, or function (a JSON-schema signature)."""
    if isinstance(value, dict):
        return "python" if "python" in value else "mcp" if "mcp" in value else "function"
    return "python" if isinstance(value, PythonToolSpec) else "mcp" if isinstance(value, McpToolSpec) else "function"


ToolSource = Annotated[
    Union[Annotated[PythonToolSpec, Tag("python")], Annotated[SchemaToolSpec, Tag("function")],
          Annotated[McpToolSpec, Tag("mcp")]],
    Discriminator(_source_kind),
]


class ToolsSpec(Strict):
    """A `tool_use` task's tools and how calls to them are asked for."""

    sources: list[ToolSource] = Field(..., min_length=1)  # type: ignore[valid-type]
    call_kinds: list[CallKind] = Field(
        default_factory=lambda: ["single", "multiple", "parallel"],
        description="query kinds drawn per record (APIGen): one call; calls to several tools; "
        "the same tool called several times at once",
    )
    max_calls: int = Field(3, ge=1, le=16, description="calls one assistant turn may make at most")
    constrain: Literal["schema", "names", "none"] = Field(
        "schema",
        description="JSON constraint of the calls: schema (each tool's argument schema), names (a tool name "
        "and any object), none (free text, parsed)",
    )
    timeout: float = Field(10.0, gt=0, le=3600, description="wall seconds per tool call")
    memory_mb: int = Field(1024, ge=64, le=1 << 20, description="address space of a Python tool's child")
    query_max_tokens: int = Field(60, ge=1, le=4096)
    calls_max_tokens: int = Field(120, ge=1, le=8192)
    answer_max_tokens: int = Field(80, ge=1, le=8192)

    @model_validator(mode="after")
    def _distinct(self) -> ToolsSpec:
        names = [s.name or s.python.rpartition(":")[2] for s in self.sources if isinstance(s, PythonToolSpec)]
        names += [s.function.name for s in self.sources if isinstance(s, SchemaToolSpec)]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"two tools are named {dup[0]!r}")
        if not self.call_kinds:
            raise ValueError("call_kinds needs at least one kind")
        return self


__all__ = [
    "CallKind",
    "FunctionSignature",
    "McpServerSpec",
    "McpToolSpec",
    "PythonToolSpec",
    "SchemaToolSpec",
    "ToolSource",
    "ToolsSpec",
    "check_json_schema",
    "resolve_reference",
]
