"""The completion cache: every answer a run paid for, in SQLite, committed as it arrives.

It is what makes a run resumable. A rerun (after success, Ctrl-C or
`kill -9`) asks the cache first and pays only for requests it has never
seen, and since it replays the same answers it builds the same dataset.

The key is a documented contract, stable across versions of this package
for as long as its prefix says `v1`:

    "v1:" + sha256(canonical_json({"backend": backend.identity(),
                                   "request": request.to_json()}))

where canonical JSON is `json.dumps(..., sort_keys=True,
separators=(",", ":"), ensure_ascii=False)` encoded as UTF-8 (orjson
writes it where it gives the very same bytes, which a test checks). The backend
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

try:
    import orjson
except ImportError:  # pragma: no cover - a declared dependency
    orjson = None  # type: ignore[assignment]

from .._json import dumps, loads
from .._sqlite import open_wal
from .types import Completion, Request

CACHE_VERSION = "v1"


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def cache_key(identity: dict[str, Any], request: Request) -> str:
    value = {"backend": identity, "request": request.to_json()}
    payload = None
    if orjson is not None and _orjson_is_canonical(request):
        try:
            payload = orjson.dumps(value, option=orjson.OPT_SORT_KEYS)
        except TypeError:  # orjson.JSONEncodeError: e.g. a lone surrogate, a huge int
            pass
    if payload is None:
        payload = canonical_json(value).encode("utf-8")
    return f"{CACHE_VERSION}:" + hashlib.sha256(payload).hexdigest()


# orjson writes the same bytes as `canonical_json` (five times faster) for
# strings, ints, None, bools and floats that Python prints without an
# exponent; it raises for what it cannot write, e.g. a lone surrogate.
_PLAIN_FLOATS = (1e-4, 1e15)


def _plain_float(x: float) -> bool:
    return x == 0.0 or _PLAIN_FLOATS[0] <= abs(x) < _PLAIN_FLOATS[1]


def _orjson_is_canonical(request: Request) -> bool:
    for x in (request.temperature, request.top_p):
        if isinstance(x, float) and not _plain_float(x):
            return False
    schema = request.json_schema
    return schema is None or _schema_is_plain(schema)


_plain_schemas: dict[int, tuple[Any, bool]] = {}  # id -> (the schema, kept so its id is not reused; verdict)


def _schema_is_plain(schema: Any) -> bool:
    known = _plain_schemas.get(id(schema))
    if known is not None and known[0] is schema:
        return known[1]
    verdict = _is_plain(schema)
    if len(_plain_schemas) < 1024:
        _plain_schemas[id(schema)] = (schema, verdict)
    return verdict


def _is_plain(value: Any) -> bool:
    if isinstance(value, float):
        return _plain_float(value)
    if isinstance(value, int):
        return -(2**63) <= value < 2**63
    if isinstance(value, dict):
        return all(isinstance(k, str) and _is_plain(v) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return all(_is_plain(v) for v in value)
    return value is None or isinstance(value, str)


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
