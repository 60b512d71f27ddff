"""The tools of a recipe as one list: name, description, JSON schema, and how a call runs.

Python tools are described by importing their module in the sandbox (never
in synthloom's process): the JSON schema comes from the signature through
pydantic's `TypeAdapter`, the description and each argument's from the
docstring. JSON-schema tools are taken as written. MCP tools are listed by
their server (`mcp_client.py`). A module that does not import, or a name
that is not a function, is a `RecipeError` naming the source, raised before
any model is asked.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Sequence

from ..recipe import PythonToolSpec, RecipeError, SchemaToolSpec, ToolsSpec
from ..sandbox import Limits, Program, Sandbox

WORKER = Path(__file__).with_name("_worker.py")
Source = Literal["python", "schema", "mcp"]


@dataclass(frozen=True)
class Tool:
    """One tool. `ref` (module:function) runs python and schema tools; `server` indexes an MCP server."""

    name: str
    description: str
    parameters: dict[str, Any]
    source: Source
    ref: str | None = None
    server: int | None = None

    @property
    def runnable(self) -> bool:
        return self.source == "mcp" or self.ref is not None

    def openai(self) -> dict[str, Any]:
        """The tool in the OpenAI/TRL `tools` form."""
        return {"type": "function",
                "function": {"name": self.name, "description": self.description, "parameters": self.parameters}}


@dataclass
class Toolset:
    tools: dict[str, Tool] = field(default_factory=dict)

    def add(self, tool: Tool, where: str) -> None:
        if tool.name in self.tools:
            raise RecipeError(f"two tools are named {tool.name!r}", key=where)
        self.tools[tool.name] = tool

    def openai(self) -> list[dict[str, Any]]:
        return [t.openai() for t in self.tools.values()]

    def schemas(self) -> dict[str, dict[str, Any]]:
        return {name: t.parameters for name, t in self.tools.items()}

    def __len__(self) -> int:
        return len(self.tools)


def worker_program(job: dict[str, Any]) -> Program:
    return Program(WORKER.read_text(encoding="utf-8"), {"job.json": json.dumps(job)})


def describe_python(refs: Sequence[str], limits: Limits, box: Sandbox | None = None) -> list[dict[str, Any]]:
    """Each Python tool's name, description and schema, from one sandboxed child."""
    if not refs:
        return []
    own = box is None
    box = box or Sandbox(limits, parallel=1)
    try:
        result = box.run(worker_program({"mode": "describe", "refs": list(refs)}), Limits(
            wall_seconds=max(30.0, limits.wall_seconds), cpu_seconds=max(20.0, limits.cpu_seconds),
            memory_mb=limits.memory_mb))
    finally:
        if own:
            box.close()
    lines = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    if len(lines) < len(refs):
        raise RecipeError(f"describing the Python tools stopped: {result.status} {result.error}".strip(), key="tools")
    return lines


def python_tools(spec: ToolsSpec, limits: Limits, box: Sandbox | None = None) -> list[tuple[int, Tool]]:
    """The recipe's Python and JSON-schema tools, with their position in `tools.sources`; every module
    (a tool's or an implementation's) is imported once in the sandbox to see that it loads."""
    refs = [(i, s.python if isinstance(s, PythonToolSpec) else s.implementation) for i, s in enumerate(spec.sources)
            if isinstance(s, PythonToolSpec) or (isinstance(s, SchemaToolSpec) and s.implementation)]
    described = describe_python([ref for _, ref in refs], limits, box)
    info_at = {i: (ref, info) for (i, ref), info in zip(refs, described)}
    out = []
    for i, source in enumerate(spec.sources):
        if i in info_at and not info_at[i][1]["ok"]:
            ref, info = info_at[i]
            raise RecipeError(f"tool {ref}: {ref.rpartition(':')[0]} does not load: {info['error']}",
                              key=f"tools.sources[{i}]")
        if isinstance(source, PythonToolSpec):
            info = info_at[i][1]
            out.append((i, Tool(source.name or info["name"], info["description"], info["schema"], "python", source.python)))
        elif isinstance(source, SchemaToolSpec):
            f = source.function
            out.append((i, Tool(f.name, f.description, f.parameters, "schema", source.implementation)))
    return out


__all__ = ["Tool", "Toolset", "describe_python", "python_tools", "worker_program"]
