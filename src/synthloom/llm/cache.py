"""The completion cache: every answer a run paid for, on disk as it arrives, kept in SQLite.

It is what makes a run resumable. A rerun (after success, Ctrl-C or
`kill -9`) asks the cache first and pays only for requests it has never
seen, and since it replays the same answers it builds the same dataset.

Each answer is written before `put()` returns, as one appended line of a
side file, `cache.sqlite-pending` (a single `write`, about a tenth of the
cost of a SQLite commit, which matters at a thousand answers a second).
The lines are folded into the SQLite table in batches, at close, and by
whoever opens the cache next when a run was killed. One process at a time
owns that file (an advisory lock); every instance of the cache in that
process shares it, and so sees the same answers. Another process using the
same cache at the same time commits each answer to SQLite directly.

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
import os
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

try:
    import orjson
except ImportError:  # pragma: no cover - a declared dependency
    orjson = None  # type: ignore[assignment]

try:
    import fcntl
except ImportError:  # pragma: no cover - not on Windows: every answer is committed to SQLite directly
    fcntl = None  # type: ignore[assignment]

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


class PendingFile:
    """The answers not yet in SQLite: appended one line each, folded in batches.

    One per cache file and process (`PendingFile.open`), shared by every
    `CompletionCache` of that file in the process, so they all see the same
    answers; an advisory lock keeps other processes out.
    """

    _open: dict[str, PendingFile] = {}
    _registry_lock = threading.Lock()

    def __init__(self, path: Path, fd: int):
        self.path = path
        self.fd = fd
        self.answers: dict[str, str] = {}  # key -> answer JSON
        self.size = 0
        self.users = 0

    @classmethod
    def open(cls, path: Path) -> PendingFile | None:
        """This process's pending file for `path`, or None when another process owns it."""
        if fcntl is None:
            return None
        name = os.path.realpath(path)
        with cls._registry_lock:
            pending = cls._open.get(name)
            if pending is None:
                fd = _lock(path)
                if fd is None:
                    return None
                pending = cls._open[name] = cls(path, fd)
                # What a killed run left, folded in by the caller; a last line
                # it cut short is cut off, so that new lines start whole.
                pending.answers, pending.size = _read_lines(fd)
                os.ftruncate(fd, pending.size)
            pending.users += 1
            return pending

    def append(self, key: str, text: str) -> None:
        """One line at the end of the file, whole or not at all (a full disk leaves no half line)."""
        line = f"{key}\t{text}\n".encode("utf-8")
        try:
            written = os.write(self.fd, line)
            if written != len(line):
                raise OSError(errno.ENOSPC, "no space left on device")
        except OSError as exc:
            with contextlib.suppress(OSError):
                os.ftruncate(self.fd, self.size)
            if exc.errno == errno.ENOSPC:
                raise OSError(errno.ENOSPC, "no space left on device", str(self.path)) from None
            raise
        self.size += written
        self.answers[key] = text

    def fold(self, db: sqlite3.Connection) -> None:
        """Move the answers into SQLite in one transaction, then empty the file."""
        if not self.answers:
            return
        now = time.time()
        with db:
            db.execute("BEGIN")
            db.executemany(
                "INSERT OR REPLACE INTO completions (key, completion, created) VALUES (?, ?, ?)",
                [(key, text, now) for key, text in self.answers.items()],
            )
        # Committed: a kill from here on replays lines SQLite already has, which changes nothing.
        os.ftruncate(self.fd, 0)
        self.size = 0
        self.answers.clear()

    def release(self) -> None:
        """One user fewer; the last one removes the (empty) file and lets go of the lock."""
        with self._registry_lock:
            self.users -= 1
            if self.users:
                return
            del self._open[os.path.realpath(self.path)]
            try:
                if not self.answers:
                    with contextlib.suppress(OSError):
                        os.unlink(self.path)  # still ours: the lock is held until the close below
            finally:
                os.close(self.fd)


def _lock(path: Path) -> int | None:
    """A descriptor of the file at `path` with its exclusive lock, or None when another process has it."""
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            return None
        try:
            if os.fstat(fd).st_ino == os.stat(path).st_ino:
                return fd
        except FileNotFoundError:
            pass
        os.close(fd)  # its owner removed it as we opened it: open the new one


def _read_lines(fd: int) -> tuple[dict[str, str], int]:
    """The answers in a pending file, and the length of its whole lines.

    A last line cut short by a kill is left out: that answer was never
    saved, and the next run asks for it again.
    """
    chunks = []
    os.lseek(fd, 0, os.SEEK_SET)
    while chunk := os.read(fd, 1 << 20):
        chunks.append(chunk)
    data = b"".join(chunks)
    whole = data.rfind(b"\n") + 1
    answers: dict[str, str] = {}
    for line in data[:whole].split(b"\n")[:-1]:
        key, sep, text = line.decode("utf-8", "replace").partition("\t")
        if not sep:
            continue
        try:
            loads(text)
        except ValueError:
            continue
        answers[key] = text
    return answers, whole


class CompletionCache:
    """A SQLite file of answers by key, with its pending file. Use each instance from one thread."""

    FOLD_EVERY = 512  # answers kept pending before they are moved into SQLite in one transaction

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.pending_path = self.path.with_name(self.path.name + "-pending")
        self._db: sqlite3.Connection | None = None
        self._pending: PendingFile | None = None  # None: every answer is committed to SQLite directly

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
            self._pending = PendingFile.open(self.pending_path)
            self.flush()  # what a killed run left in the pending file
        return self._db

    def get(self, key: str) -> Completion | None:
        db = self._connect()
        text = self._pending.answers.get(key) if self._pending is not None else None
        if text is None:
            row = db.execute("SELECT completion FROM completions WHERE key = ?", (key,)).fetchone()
            if row is None:
                return None
            text = row[0]
        return Completion.from_json(loads(text), cached=True)

    def put(self, key: str, completion: Completion) -> None:
        """Store one answer; it is on disk before this returns."""
        db = self._connect()
        text = dumps(completion.to_json()).decode("utf-8")
        pending = self._pending
        if pending is None:
            with self._writing():
                db.execute(
                    "INSERT OR REPLACE INTO completions (key, completion, created) VALUES (?, ?, ?)",
                    (key, text, time.time()),
                )
            return
        pending.append(key, text)
        if len(pending.answers) >= self.FOLD_EVERY:
            self.flush()

    def flush(self) -> None:
        """Move every pending answer into SQLite, for readers that open the file themselves."""
        if self._pending is not None and self._pending.answers:
            with self._writing():
                self._pending.fold(self._db)  # type: ignore[arg-type]

    def get_many(self, keys: list[str]) -> dict[str, str]:
        """The stored answers (as their JSON text) of those `keys` that have one."""
        db = self._connect()
        self.flush()
        found: dict[str, str] = {}
        for i in range(0, len(keys), 500):
            chunk = keys[i : i + 500]
            marks = ",".join("?" * len(chunk))
            found.update(db.execute(f"SELECT key, completion FROM completions WHERE key IN ({marks})", chunk))
        return found

    def put_many(self, rows: list[tuple[str, str]]) -> None:
        """Store answers given as (key, JSON text) in one transaction, committed before returning."""
        db = self._connect()
        self.flush()
        now = time.time()
        with self._writing(), db:
            db.execute("BEGIN")
            db.executemany(
                "INSERT OR REPLACE INTO completions (key, completion, created) VALUES (?, ?, ?)",
                [(key, completion, now) for key, completion in rows],
            )

    @contextlib.contextmanager
    def _writing(self):
        """A full disk is an OSError(ENOSPC) naming the file; what was saved before stays."""
        try:
            yield
        except sqlite3.OperationalError as exc:
            if "full" not in str(exc):
                raise
            raise OSError(errno.ENOSPC, "no space left on device", str(self.path)) from None

    def __len__(self) -> int:
        db = self._connect()
        self.flush()
        return db.execute("SELECT COUNT(*) FROM completions").fetchone()[0]

    def close(self) -> None:
        """Fold what is pending into SQLite and let go of the files.

        When the fold fails (a full disk), the answers stay in the pending
        file for the next one to open the cache: nothing is lost.
        """
        try:
            with contextlib.suppress(OSError):
                self.flush()
        finally:
            if self._pending is not None:
                self._pending.release()
                self._pending = None
            if self._db is not None:
                self._db.close()
                self._db = None
