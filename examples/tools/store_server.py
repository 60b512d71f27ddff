"""A small shop's stock as an MCP server over stdio (SQLite in memory), for examples/tool_use.yaml.

    python examples/tools/store_server.py        # speaks MCP on stdin/stdout

Built with the official SDK's `MCPServer` (called `FastMCP` before mcp 2).
"""

import sqlite3

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError

server = MCPServer("store")
db = sqlite3.connect(":memory:", check_same_thread=False)
db.executescript("""
CREATE TABLE products (name TEXT PRIMARY KEY, category TEXT, price REAL, stock INTEGER);
INSERT INTO products VALUES
  ('kettle', 'kitchen', 24.5, 12), ('toaster', 'kitchen', 31.0, 0), ('blender', 'kitchen', 55.0, 4),
  ('desk lamp', 'office', 18.0, 25), ('stapler', 'office', 6.5, 40), ('notebook', 'office', 3.2, 100),
  ('tent', 'outdoor', 120.0, 3), ('torch', 'outdoor', 14.0, 18), ('sleeping bag', 'outdoor', 65.0, 7);
""")


@server.tool()
def find_products(category: str, max_price: float | None = None) -> list[dict]:
    """Products of a category (kitchen, office or outdoor), at most max_price if given."""
    rows = db.execute("SELECT name, price, stock FROM products WHERE category = ? AND price <= ?",
                      (category, max_price if max_price is not None else 1e18)).fetchall()
    return [{"name": n, "price": p, "stock": s} for n, p, s in rows]


@server.tool()
def stock_of(name: str) -> dict:
    """How many of a product are in stock, and its price."""
    row = db.execute("SELECT price, stock FROM products WHERE name = ?", (name.lower(),)).fetchone()
    if row is None:
        raise ToolError(f"no product named {name!r}")
    return {"name": name, "price": row[0], "stock": row[1]}


if __name__ == "__main__":
    server.run()
