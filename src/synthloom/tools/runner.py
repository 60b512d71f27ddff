"""Run tool calls for real: Python tools in the sandbox, MCP tools on their server.

    async with ToolRunner(recipe.tools) as runner:
        runner.toolset.openai()                      # the `tools` list of the trajectory
        results = await runner.call_many(calls)      # CallResult per call, in order

A Python tool's call is one sandboxed child (`_worker.py` imports the
module, validates the arguments with pydantic's `validate_call`, calls the
function and prints the result as JSON) with the recipe's timeout and
memory limit: a tool that hangs is cut off and counted as a timeout. A tool
with no implementation is not run (`not_run`). `run_calls` is the thin
synchronous wrapper the curation stages use.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import asdict, dataclass
from typing import Any, Sequence

from ..recipe import McpToolSpec, ToolsSpec
from ..sandbox import Limits, Sandbox
from .calls import ToolCall
from .catalog import Tool, Toolset, python_tools, worker_program
from .mcp_client import McpServer


@dataclass
class CallResult:
    """What one call gave: status ok, error, timeout, killed or not_run; the result as text; the error."""

    name: str
    status: str
    content: str = ""
    error: str = ""
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def message_content(self) -> str:
        """What the `tool` message says: the result, or the error as JSON."""
        if self.ok:
            return self.content
        return json.dumps({"error": self.error or self.status}, ensure_ascii=False)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def empty(content: str) -> bool:
    """A result with nothing in it: no text, or JSON null, "", [] or {}."""
    text = content.strip()
    if not text:
        return True
    try:
        return json.loads(text) in (None, "", [], {})
    except json.JSONDecodeError:
        return False


class ToolRunner:
    """The recipe's tools, described and started; calls them until closed."""

    def __init__(self, spec: ToolsSpec, timeout: float | None = None, parallel: int = 1):
        self.spec = spec
        self.timeout = timeout or spec.timeout
        self.limits = Limits(wall_seconds=self.timeout, cpu_seconds=self.timeout, memory_mb=spec.memory_mb)
        self.parallel = parallel
        self.toolset = Toolset()
        self.servers: dict[int, McpServer] = {}
        self.box: Sandbox | None = None

    async def __aenter__(self) -> ToolRunner:
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def open(self) -> None:
        self.box = Sandbox(self.limits, parallel=self.parallel)
        try:
            found: list[tuple[int, Tool]] = await asyncio.to_thread(python_tools, self.spec, self.limits, self.box)
            for i, source in enumerate(self.spec.sources):
                if isinstance(source, McpToolSpec):
                    server = McpServer(source, i)
                    self.servers[i] = server
                    found += [(i, tool) for tool in await server.start()]
            for i, tool in sorted(found, key=lambda item: item[0]):
                self.toolset.add(tool, f"tools.sources[{i}]")
        except BaseException:
            await self.close()
            raise

    async def close(self) -> None:
        for server in reversed(list(self.servers.values())):
            await server.stop()
        self.servers.clear()
        if self.box is not None:
            self.box.close()
            self.box = None

    async def call(self, call: ToolCall) -> CallResult:
        """Run one call (its format is assumed checked); never raises for the tool's own failures."""
        tool = self.toolset.tools.get(call.name)
        loop = asyncio.get_running_loop()
        started = loop.time()
        if tool is None:
            return CallResult(call.name, "error", error=f"unknown tool {call.name!r}")
        if not tool.runnable:
            return CallResult(call.name, "not_run", error=f"{call.name} has no implementation")
        if tool.source == "mcp":
            status, text, error = await self.servers[tool.server].call(call.name, call.arguments or {}, self.timeout)  # type: ignore[index]
            return CallResult(call.name, status, text, error, round(loop.time() - started, 3))
        program = worker_program({"mode": "call", "ref": tool.ref, "arguments": call.arguments or {}})
        result = await asyncio.to_thread(self.box.run, program)  # type: ignore[union-attr]
        seconds = round(result.duration, 3)
        lines = [line for line in result.stdout.splitlines() if line.startswith("{")]
        if not result.ok or not lines:
            status = result.status if result.status in ("timeout", "killed") else "error"
            return CallResult(call.name, status, error=f"{result.status}: {result.error}".strip(": "), seconds=seconds)
        answer = json.loads(lines[-1])
        if not answer["ok"]:
            return CallResult(call.name, "error", error=answer["error"], seconds=seconds)
        value = answer["result"]
        text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
        return CallResult(call.name, "ok", text, seconds=seconds)

    async def call_many(self, calls: Sequence[ToolCall]) -> list[CallResult]:
        return list(await asyncio.gather(*(self.call(c) for c in calls)))


def run_calls(spec: ToolsSpec, batches: Sequence[Sequence[ToolCall]], timeout: float | None = None,
              parallel: int = 1) -> list[list[CallResult]]:
    """Start the tools, run each batch of calls (a record's), stop them: results per batch."""

    async def work() -> list[list[CallResult]]:
        async with ToolRunner(spec, timeout, parallel) as runner:
            return [await runner.call_many(batch) for batch in batches]

    return asyncio.run(work())


def load_toolset(spec: ToolsSpec) -> Toolset:
    """The tools alone (described, servers started and stopped), e.g. to plan a run without running it."""

    async def work() -> Toolset:
        async with ToolRunner(spec) as runner:
            return runner.toolset

    return asyncio.run(work())


__all__ = ["CallResult", "ToolRunner", "empty", "load_toolset", "run_calls"]
