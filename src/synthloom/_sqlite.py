"""Opening the project's SQLite files one way: WAL, autocommit, usable from the event loop's thread.

The completion cache and the review store both keep what they write when
the process is killed; they differ in how hard a commit waits for the disk
(`synchronous`).
"""

from __future__ import annotations

import sqlite3
from pathlib import Path


def open_wal(path: Path, synchronous: str = "NORMAL") -> sqlite3.Connection:
    """A connection to `path` (its folder made) in WAL mode, each statement its own transaction."""
    path.parent.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(path, timeout=30, isolation_level=None, check_same_thread=False)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute(f"PRAGMA synchronous={synchronous}")
    return db
