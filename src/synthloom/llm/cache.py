"""The completion cache: every answer a run paid for, in SQLite, committed as it arrives.

It is what makes a run resumable. A rerun (after success, Ctrl-C or
`kill -9`) asks the cache first and pays only for requests it has never
seen, and since it replays the same answers it builds the same dataset.

The key is a documented contract, stable across versions of this package
for as long as its prefix says `v1`:

    "v1:" + sha256(canonical_json({"backend": backend.identity(),
                                   "request": request.to_json()}))

where canonical JSON is `json.dumps(..., sort_keys=True,
separators=(",", ":"), ensure_ascii=False)` encoded as UTF-8. The backend
identity names the kind of backend and the model, never a key, a URL or a
replica, so the same request to any replica of a model is one entry.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import sqlite3
import time
from pathlib import Path
from typing import Any

from .._json import dumps, loads
from .._sqlite import open_wal
from .types import Completion, Request

CACHE_VERSION = "v1"


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def cache_key(identity: dict[str, Any], request: Request) -> str:
    payload = canonical_json({"backend": identity, "request": request.to_json()})
    return f"{CACHE_VERSION}:" + hashlib.sha256(payload.encode("utf-8")).hexdigest()


class CompletionCache:
    """A SQLite file of answers by key. Use from one thread (the event loop's)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._db: sqlite3.Connection | None = None

    def _connect(self) -> sqlite3.Connection:
        if self._db is None:
            # WAL + NORMAL: a commit survives the process being killed; only
            # a power cut can lose the last few.
            db = open_wal(self.path, "NORMAL")
            db.execute(
                "CREATE TABLE IF NOT EXISTS completions ("
                " key TEXT PRIMARY KEY, completion TEXT NOT NULL, created REAL NOT NULL)"
            )
            self._db = db
        return self._db

    def get(self, key: str) -> Completion | None:
        row = self._connect().execute(
            "SELECT completion FROM completions WHERE key = ?", (key,)
        ).fetchone()
        if row is None:
            return None
        return Completion.from_json(loads(row[0]), cached=True)

    def put(self, key: str, completion: Completion) -> None:
        """Store one answer and commit it before returning."""
        with self._writing():
            self._connect().execute(
                "INSERT OR REPLACE INTO completions (key, completion, created) VALUES (?, ?, ?)",
                (key, dumps(completion.to_json()).decode("utf-8"), time.time()),
            )

    def get_many(self, keys: list[str]) -> dict[str, str]:
        """The stored answers (as their JSON text) of those `keys` that have one."""
        db = self._connect()
        found: dict[str, str] = {}
        for i in range(0, len(keys), 500):
            chunk = keys[i : i + 500]
            marks = ",".join("?" * len(chunk))
            found.update(db.execute(f"SELECT key, completion FROM completions WHERE key IN ({marks})", chunk))
        return found

    def put_many(self, rows: list[tuple[str, str]]) -> None:
        """Store answers given as (key, JSON text) in one transaction, committed before returning."""
        db = self._connect()
        now = time.time()
        with self._writing(), db:
            db.execute("BEGIN")
            db.executemany(
                "INSERT OR REPLACE INTO completions (key, completion, created) VALUES (?, ?, ?)",
                [(key, completion, now) for key, completion in rows],
            )

    @contextlib.contextmanager
    def _writing(self):
        """A full disk is an OSError(ENOSPC) naming the file; what was committed before stays."""
        try:
            yield
        except sqlite3.OperationalError as exc:
            if "full" not in str(exc):
                raise
            raise OSError(errno.ENOSPC, "no space left on device", str(self.path)) from None

    def __len__(self) -> int:
        return self._connect().execute("SELECT COUNT(*) FROM completions").fetchone()[0]

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None
