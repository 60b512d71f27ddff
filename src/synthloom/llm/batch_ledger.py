"""Which request went into which provider batch: the run directory's memory of its batches.

A provider batch lives for up to a day, far longer than a process may. The
ledger (`batches.sqlite`, beside the run's cache) writes down every part
before it is sent, its uploaded file and its batch id as soon as they
exist, and each line's fate when the batch ends, so that a killed run,
started again, polls the same batches and never sends a line twice:

    parts(part, file_id, batch_id, state, created)      state: preparing, submitted, done
    lines(cid, part, state, body, answer, error_kind, error)
                                                        state: submitted, answered, failed

A line's `cid` is the hex part of its cache key (`cache.py`), so an answer
found here is the answer the cache would hold. Every change is one SQLite
transaction, committed before the step that depends on it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

from .._json import dumps, loads
from .._sqlite import open_wal
from .types import Completion


@dataclass
class LineRow:
    cid: str
    part: str
    state: str
    answer: str | None
    error_kind: str | None
    error: str | None

    def completion(self) -> Completion:
        assert self.answer is not None
        return Completion.from_json(loads(self.answer))


@dataclass
class PartRow:
    part: str
    file_id: str | None
    batch_id: str | None
    state: str


class BatchLedger:
    """The batches of one run directory (or of nothing: `path=None` keeps them in memory)."""

    def __init__(self, path: str | Path | None):
        self.path = Path(path) if path is not None else None
        self._db = None

    def _connect(self):
        if self._db is None:
            if self.path is None:
                import sqlite3

                db = sqlite3.connect(":memory:", isolation_level=None)
            else:
                db = open_wal(self.path, "NORMAL")
            db.execute("CREATE TABLE IF NOT EXISTS parts (part TEXT PRIMARY KEY, file_id TEXT, batch_id TEXT,"
                       " state TEXT NOT NULL, created REAL NOT NULL)")
            db.execute("CREATE TABLE IF NOT EXISTS lines (cid TEXT PRIMARY KEY, part TEXT NOT NULL, state TEXT NOT NULL,"
                       " body TEXT NOT NULL, answer TEXT, error_kind TEXT, error TEXT)")
            db.execute("CREATE INDEX IF NOT EXISTS lines_part ON lines (part)")
            self._db = db
        return self._db

    def line(self, cid: str) -> LineRow | None:
        row = self._connect().execute(
            "SELECT cid, part, state, answer, error_kind, error FROM lines WHERE cid = ?", (cid,)).fetchone()
        return LineRow(*row) if row is not None else None

    def part(self, part: str) -> PartRow | None:
        row = self._connect().execute("SELECT part, file_id, batch_id, state FROM parts WHERE part = ?", (part,)).fetchone()
        return PartRow(*row) if row is not None else None

    def open_parts(self) -> list[PartRow]:
        """Parts sent (or being sent) whose results are not in yet."""
        rows = self._connect().execute("SELECT part, file_id, batch_id, state FROM parts WHERE state != 'done' ORDER BY created")
        return [PartRow(*r) for r in rows]

    def part_lines(self, part: str) -> list[tuple[str, dict[str, Any]]]:
        """The (cid, provider line) of a part, in the order they were written."""
        rows = self._connect().execute("SELECT cid, body FROM lines WHERE part = ? ORDER BY rowid", (part,))
        return [(cid, loads(body)) for cid, body in rows]

    def new_part(self, part: str, lines: Iterable[tuple[str, dict[str, Any]]]) -> None:
        """Write down a part and its lines before anything is sent."""
        db = self._connect()
        with db:
            db.execute("BEGIN")
            db.execute("INSERT INTO parts (part, state, created) VALUES (?, 'preparing', ?)", (part, time.time()))
            db.executemany(
                "INSERT OR REPLACE INTO lines (cid, part, state, body) VALUES (?, ?, 'submitted', ?)",
                [(cid, part, dumps(line).decode("utf-8")) for cid, line in lines])

    def drop_part(self, part: str) -> None:
        """Forget a part that was never submitted: its lines may be sent again."""
        db = self._connect()
        with db:
            db.execute("BEGIN")
            db.execute("DELETE FROM lines WHERE part = ? AND state = 'submitted'", (part,))
            db.execute("DELETE FROM parts WHERE part = ?", (part,))

    def set_file(self, part: str, file_id: str) -> None:
        self._connect().execute("UPDATE parts SET file_id = ? WHERE part = ?", (file_id, part))

    def set_batch(self, part: str, batch_id: str) -> None:
        self._connect().execute("UPDATE parts SET batch_id = ?, state = 'submitted' WHERE part = ?", (batch_id, part))

    def finish(self, part: str, answers: dict[str, Completion], errors: dict[str, tuple[str, str]]) -> None:
        """Write every line's fate and close the part, in one transaction.

        `errors`: cid -> (kind, message); a line of the part in neither is failed as `missing`."""
        db = self._connect()
        with db:
            db.execute("BEGIN")
            db.executemany("UPDATE lines SET state = 'answered', answer = ? WHERE cid = ? AND part = ?",
                           [(dumps(c.to_json()).decode("utf-8"), cid, part) for cid, c in answers.items()])
            db.executemany("UPDATE lines SET state = 'failed', error_kind = ?, error = ? WHERE cid = ? AND part = ?",
                           [(kind, message, cid, part) for cid, (kind, message) in errors.items()])
            db.execute("UPDATE lines SET state = 'failed', error_kind = 'missing', "
                       "error = 'the batch ended without an answer or an error for this line' "
                       "WHERE part = ? AND state = 'submitted'", (part,))
            db.execute("UPDATE parts SET state = 'done' WHERE part = ?", (part,))

    def counts(self) -> dict[str, int]:
        """Lines by state, and parts, for the manifest."""
        db = self._connect()
        out = {f"lines_{state}": n for state, n in db.execute("SELECT state, COUNT(*) FROM lines GROUP BY state")}
        out["batches"] = db.execute("SELECT COUNT(*) FROM parts WHERE batch_id IS NOT NULL").fetchone()[0]
        return out

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None


__all__ = ["BatchLedger", "LineRow", "PartRow"]
