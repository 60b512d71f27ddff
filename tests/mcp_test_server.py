"""A small MCP server for the tool-use tests, built with the SDK's MCPServer (FastMCP in mcp 1.x).

Started over stdio by the tests: `python tests/mcp_test_server.py`.
"""

import os
import time

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError

server = MCPServer("test-shop")
PRICES = {"apple": 0.5, "bread": 2.25, "milk": 1.1}


@server.tool()
def price(item: str, quantity: int = 1) -> float:
    """The price of some quantity of an item (apple, bread or milk)."""
    if item not in PRICES:
        raise ToolError(f"no item named {item!r}")
    return round(PRICES[item] * quantity, 2)


@server.tool()
def blank(item: str) -> str:
    """Returns an empty result."""
    return ""


@server.tool()
def hang(seconds: float) -> str:
    """Sleeps."""
    time.sleep(seconds)
    return "woke"


@server.tool()
def die() -> str:
    """Ends the server's process."""
    os._exit(3)


if __name__ == "__main__":
    server.run()
