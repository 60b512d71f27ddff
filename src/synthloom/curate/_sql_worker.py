"""Runs inside the sandbox (as `main.py`), never imported: one query, and its reference, read-only.

Reads `job.json` ({"database", "query", "reference", "max_rows"}) and prints
one JSON line per query: {"columns", "rows", "more"} or {"error"}. The
database is opened read-only (`mode=ro`), one statement per query.
"""

import json
import sqlite3


def run(con, query, max_rows):
    try:
        cursor = con.execute(query)
        rows = cursor.fetchmany(max_rows + 1)
    except sqlite3.Error as exc:
        return {"error": f"{type(exc).__name__}: {exc}"}
    columns = [d[0] for d in cursor.description or []]
    more = len(rows) > max_rows
    cells = [[c.hex() if isinstance(c, bytes) else c for c in row] for row in rows[:max_rows]]
    return {"columns": columns, "rows": cells, "more": more}


job = json.load(open("job.json", encoding="utf-8"))
con = sqlite3.connect(f"file:{job['database']}?mode=ro", uri=True)
print(json.dumps(run(con, job["query"], job["max_rows"])))
if job.get("reference") is not None:
    print(json.dumps(run(con, job["reference"], job["max_rows"])))
