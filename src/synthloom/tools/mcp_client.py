"""MCP servers over stdio, through the official `mcp` SDK: start, list tools, call, stop.

Each server a recipe names is started as a child speaking MCP on its stdin
and stdout (`python` as the command means the interpreter synthloom runs
on); its stderr goes to a temporary file whose last line is quoted when it
fails. A server that does not start or answer within `startup_timeout` is a
`RecipeError` naming the source; a server that dies mid-run turns each call
to it into an error result, and the run goes on.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import tempfile
from typing import Any

from ..recipe import McpToolSpec, RecipeError
from .catalog import Tool


def _command(command: str) -> str:
    return sys.executable if command in ("python", "python3") else command


def _last_line(log: Any) -> str:
    try:
        log.flush()
        log.seek(0)
        lines = [line.strip() for line in log.read().splitlines() if line.strip()]
    except (OSError, ValueError):
        return ""
    return lines[-1][:300] if lines else ""


def result_text(result: Any) -> str:
    """An MCP tool result as text: its structured content as JSON, else its text blocks joined."""
    import json

    structured = getattr(result, "structured_content", None)
    if structured is not None:
        value = structured.get("result", structured) if isinstance(structured, dict) and len(structured) == 1 else structured
        return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    parts = [getattr(block, "text", None) or str(block) for block in (result.content or [])]
    return "\n".join(p for p in parts if p)


class McpServer:
    """One started server: `start()` (listing its tools), `call()`, `stop()`, all in one task's lifetime."""

    def __init__(self, spec: McpToolSpec, index: int):
        self.spec = spec
        self.index = index
        self.where = f"tools.sources[{index}]"
        self.tools: list[Tool] = []
        self._stack = contextlib.AsyncExitStack()
        self._log = tempfile.TemporaryFile(mode="w+", encoding="utf-8", errors="replace")  # closed when collected
        self.session: Any = None
        self.dead: str | None = None

    @property
    def label(self) -> str:
        server = self.spec.mcp
        return " ".join([server.command, *server.args])

    async def start(self) -> list[Tool]:
        try:
            from mcp import ClientSession, StdioServerParameters, stdio_client
        except ImportError:
            raise RecipeError("MCP tools need the mcp package: pip install 'synthloom[tools]'", key=self.where) from None
        server = self.spec.mcp
        params = StdioServerParameters(command=_command(server.command), args=list(server.args),
                                       env=server.env, cwd=server.cwd)
        try:
            async with asyncio.timeout(server.startup_timeout):
                read, write = await self._stack.enter_async_context(stdio_client(params, errlog=self._log))
                self.session = await self._stack.enter_async_context(ClientSession(read, write))
                await self.session.initialize()
                listed = await self.session.list_tools()
        except BaseException as exc:  # noqa: BLE001 - any failure to start is the recipe's to fix
            logged = _last_line(self._log)
            await self.stop()
            if isinstance(exc, (KeyboardInterrupt, asyncio.CancelledError)):
                raise
            why = logged or f"{type(exc).__name__}: {exc}".strip(": ")
            if isinstance(exc, TimeoutError):
                why = f"no answer within {server.startup_timeout:g} s" + (f" ({why})" if why else "")
            raise RecipeError(f"MCP server `{self.label}` failed to start: {why}", key=self.where) from None
        wanted = self.spec.tools
        names = {t.name for t in listed.tools}
        for name in wanted or []:
            if name not in names:
                raise RecipeError(f"MCP server `{self.label}` has no tool {name!r} (it has: {', '.join(sorted(names))})",
                                  key=self.where)
        self.tools = [
            Tool(t.name, t.description or "", dict(t.input_schema or {"type": "object"}), "mcp", server=self.index)
            for t in listed.tools if wanted is None or t.name in wanted
        ]
        return self.tools

    async def call(self, name: str, arguments: dict[str, Any], timeout: float) -> tuple[str, str, str]:
        """(status, text, error): status ok, error or timeout; the text of the result."""
        if self.dead is not None:
            return "error", "", self.dead
        try:
            result = await asyncio.wait_for(self.session.call_tool(name, arguments), timeout)
        except TimeoutError:
            return "timeout", "", f"no result within {timeout:g} s"
        except Exception as exc:  # noqa: BLE001 - the server went away or broke the protocol
            self.dead = f"MCP server `{self.label}` stopped: {_last_line(self._log) or type(exc).__name__ + ': ' + str(exc)}"
            return "error", "", self.dead
        text = result_text(result)
        if result.is_error:
            return "error", text, (text or "the tool reported an error").splitlines()[0][:300]
        return "ok", text, ""

    async def stop(self) -> None:
        with contextlib.suppress(Exception):
            await self._stack.aclose()
        self.session = None


__all__ = ["McpServer", "result_text"]
