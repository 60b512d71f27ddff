"""People's review decisions, in SQLite, committed the moment they are made.

The review app, `apply-reviews`, the exports and the faithfulness estimate
all read the same file, `reviews.sqlite` in the run directory. Two tables
matter to readers (the full schema is in docs/review.md):

    decisions(seq, uid, record_id, reviewer, action, label, fields, original_label,
              note, at, undone_at)
        every action a reviewer took, in order; never deleted. `undone_at` is
        set when the reviewer undid it. `action` is accept, relabel, edit,
        reject or skip; `label` is the label after a relabel or edit, and
        `fields` the edited fields as JSON.

    reviews(record_id, reviewer, criterion, verdict, decision, at)
        each reviewer's current verdicts: `faithful` and `label_correct`,
        `yes` or `no`, derived from that reviewer's latest decision on the
        record that is not a skip and was not undone.

So `SELECT record_id, criterion, verdict FROM reviews` is the list of
human verdicts (`review_verdicts()` returns it). Each write is one
transaction (`BEGIN IMMEDIATE`), in WAL mode with `synchronous=FULL`: a
decision the app has confirmed survives closing the tab, `kill -9` of the
server and a power cut. Several server processes may share the file.
"""

from __future__ import annotations

import json
import re
import sqlite3
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable, Mapping

from .._sqlite import open_wal

ACTIONS = ("accept", "relabel", "edit", "reject", "skip")
STORE_NAME = "reviews.sqlite"
_REVIEWER = re.compile(r"^[\w][\w .@+-]{0,39}$")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS decisions (
    seq            INTEGER PRIMARY KEY AUTOINCREMENT,
    uid            TEXT NOT NULL UNIQUE,
    record_id      TEXT NOT NULL,
    reviewer       TEXT NOT NULL,
    action         TEXT NOT NULL CHECK (action IN ('accept', 'relabel', 'edit', 'reject', 'skip')),
    label          TEXT,
    fields         TEXT,
    original_label TEXT,
    note           TEXT,
    at             TEXT NOT NULL,
    undone_at      TEXT
);
CREATE INDEX IF NOT EXISTS decisions_by_reviewer ON decisions (reviewer, seq);
CREATE INDEX IF NOT EXISTS decisions_by_record ON decisions (record_id, reviewer, seq);
CREATE TABLE IF NOT EXISTS reviews (
    record_id TEXT NOT NULL,
    reviewer  TEXT NOT NULL,
    criterion TEXT NOT NULL,
    verdict   TEXT NOT NULL,
    decision  INTEGER NOT NULL REFERENCES decisions (seq),
    at        TEXT NOT NULL,
    PRIMARY KEY (record_id, reviewer, criterion)
);
CREATE TABLE IF NOT EXISTS assignments (
    record_id TEXT PRIMARY KEY,
    rank      INTEGER NOT NULL,
    reason    TEXT
);
"""


class ReviewError(ValueError):
    """A decision the store refuses (unknown action, bad reviewer name, nothing to undo)."""


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def check_reviewer(name: str) -> str:
    name = (name or "").strip()
    if not _REVIEWER.match(name):
        raise ReviewError(
            f"reviewer name {name!r} must be 1-40 letters, digits, spaces or . @ + - (starting with a letter or digit)"
        )
    return name


@dataclass(frozen=True)
class Decision:
    """One reviewer's action on one record."""

    seq: int
    uid: str
    record_id: str
    reviewer: str
    action: str
    label: str | None
    fields: dict[str, Any] | None
    original_label: str | None
    note: str | None
    at: str
    undone_at: str | None = None

    @property
    def final_label(self) -> str | None:
        """The label the record has after this decision (None when rejected or skipped)."""
        if self.action in ("reject", "skip"):
            return None
        return self.label if self.label is not None else self.original_label

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> Decision:
        data = dict(row)
        data["fields"] = json.loads(data["fields"]) if data["fields"] else None
        return cls(**data)


def verdicts_for(decision: Decision) -> dict[str, str]:
    """The human verdicts a decision stands for (criterion -> yes/no)."""
    if decision.action == "accept":
        return {"faithful": "yes", "label_correct": "yes"}
    if decision.action == "relabel":
        return {"faithful": "no", "label_correct": "no"}
    if decision.action == "edit":
        changed = decision.label is not None and decision.label != decision.original_label
        return {"faithful": "no", "label_correct": "no" if changed else "yes"}
    if decision.action == "reject":
        return {"faithful": "no"}
    return {}


class ReviewStore:
    """The decisions of every reviewer of one dataset, in one SQLite file."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._db: sqlite3.Connection | None = None

    def _connect(self) -> sqlite3.Connection:
        if self._db is None:
            db = open_wal(self.path, "FULL")  # a person's decision is worth a full sync
            db.row_factory = sqlite3.Row
            db.executescript(_SCHEMA)
            self._db = db
        return self._db

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    def __enter__(self) -> ReviewStore:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def _transaction(self) -> _Transaction:
        return _Transaction(self._connect())

    # -- writing ---------------------------------------------------------------

    def decide(
        self,
        record_id: str,
        reviewer: str,
        action: str,
        *,
        label: str | None = None,
        fields: Mapping[str, Any] | None = None,
        original_label: str | None = None,
        note: str | None = None,
        uid: str | None = None,
    ) -> Decision:
        """Record one decision and its verdicts, committed before returning.

        `uid` makes the call idempotent: a client that retries after a lost
        answer sends the same uid and gets the first decision back.
        """
        reviewer = check_reviewer(reviewer)
        if action not in ACTIONS:
            raise ReviewError(f"unknown action {action!r}; expected one of {', '.join(ACTIONS)}")
        if action == "relabel" and not label:
            raise ReviewError("a relabel needs the new label")
        if action == "edit" and not fields and label is None:
            raise ReviewError("an edit needs the edited fields or a label")
        uid = uid or uuid.uuid4().hex
        with self._transaction() as db:
            existing = db.execute("SELECT * FROM decisions WHERE uid = ?", (uid,)).fetchone()
            if existing is not None:
                return Decision.from_row(existing)
            at = now()
            cursor = db.execute(
                "INSERT INTO decisions (uid, record_id, reviewer, action, label, fields, original_label, note, at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (uid, str(record_id), reviewer, action, label,
                 json.dumps(dict(fields), ensure_ascii=False) if fields else None, original_label, note, at),
            )
            decision = Decision(cursor.lastrowid, uid, str(record_id), reviewer, action, label,
                                dict(fields) if fields else None, original_label, note, at)
            if action != "skip":
                _write_verdicts(db, decision)
        return decision

    def undo(self, reviewer: str) -> Decision:
        """Undo the reviewer's latest decision that is not undone yet; returns it."""
        reviewer = check_reviewer(reviewer)
        with self._transaction() as db:
            row = db.execute(
                "SELECT * FROM decisions WHERE reviewer = ? AND undone_at IS NULL ORDER BY seq DESC LIMIT 1",
                (reviewer,),
            ).fetchone()
            if row is None:
                raise ReviewError(f"{reviewer} has nothing to undo")
            undone = Decision.from_row(row)
            db.execute("UPDATE decisions SET undone_at = ? WHERE seq = ?", (now(), undone.seq))
            db.execute("DELETE FROM reviews WHERE record_id = ? AND reviewer = ?", (undone.record_id, reviewer))
            previous = _current(db, undone.record_id, reviewer)
            if previous is not None:
                _write_verdicts(db, previous)
        return undone

    def assign(self, ranked_ids: Iterable[str], reasons: Iterable[str] | None = None) -> int:
        """Set the records chosen for people (selective annotation), best first; replaces any earlier choice."""
        ids = [str(i) for i in ranked_ids]
        reasons = list(reasons) if reasons is not None else [None] * len(ids)
        with self._transaction() as db:
            db.execute("DELETE FROM assignments")
            db.executemany(
                "INSERT INTO assignments (record_id, rank, reason) VALUES (?, ?, ?)",
                [(rid, rank, reason) for rank, (rid, reason) in enumerate(zip(ids, reasons))],
            )
        return len(ids)

    # -- reading ---------------------------------------------------------------

    def current(self, reviewer: str | None = None) -> dict[tuple[str, str], Decision]:
        """(record_id, reviewer) -> that reviewer's standing decision (skips and undone ones left out)."""
        query = (
            "SELECT d.* FROM decisions d JOIN (SELECT MAX(seq) AS seq FROM decisions"
            " WHERE undone_at IS NULL AND action != 'skip'{} GROUP BY record_id, reviewer) m ON d.seq = m.seq"
        )
        if reviewer is None:
            rows = self._connect().execute(query.format(""))
        else:
            rows = self._connect().execute(query.format(" AND reviewer = ?"), (reviewer,))
        return {(d.record_id, d.reviewer): d for d in map(Decision.from_row, rows)}

    def skipped(self, reviewer: str) -> list[str]:
        """Records the reviewer skipped (and has not decided since), oldest skip first."""
        rows = self._connect().execute(
            "SELECT record_id, MAX(seq) AS last, action FROM decisions WHERE reviewer = ? AND undone_at IS NULL"
            " GROUP BY record_id ORDER BY last",
            (reviewer,),
        )
        return [row["record_id"] for row in rows if row["action"] == "skip"]

    def history(self, reviewer: str, limit: int = 20) -> list[Decision]:
        """The reviewer's latest actions, newest first (undone ones included, marked)."""
        rows = self._connect().execute(
            "SELECT * FROM decisions WHERE reviewer = ? ORDER BY seq DESC LIMIT ?", (reviewer, limit)
        )
        return [Decision.from_row(r) for r in rows]

    def decisions(self, include_undone: bool = False) -> list[Decision]:
        where = "" if include_undone else " WHERE undone_at IS NULL"
        rows = self._connect().execute(f"SELECT * FROM decisions{where} ORDER BY seq")
        return [Decision.from_row(r) for r in rows]

    def reviewers(self) -> list[str]:
        rows = self._connect().execute("SELECT DISTINCT reviewer FROM decisions ORDER BY reviewer")
        return [r[0] for r in rows]

    def assignments(self) -> list[str]:
        rows = self._connect().execute("SELECT record_id FROM assignments ORDER BY rank")
        return [r[0] for r in rows]

    def verdicts(self) -> list[tuple[str, str, str]]:
        """(record_id, criterion, verdict) of every reviewer's standing decisions."""
        rows = self._connect().execute(
            "SELECT record_id, criterion, verdict FROM reviews ORDER BY record_id, reviewer, criterion"
        )
        return [tuple(r) for r in rows]


def review_verdicts(path: str | Path) -> list[tuple[str, str, str]]:
    """(record_id, criterion, verdict) rows from a run directory or a reviews.sqlite; [] when none.

    `criterion` is `faithful` or `label_correct`, `verdict` is `yes` or `no`;
    one row per reviewer, so several reviewers give several rows.
    """
    path = Path(path)
    if path.is_dir():
        path = path / STORE_NAME
    if not path.exists():
        return []
    with ReviewStore(path) as store:
        return store.verdicts()


class _Transaction:
    """`with _Transaction(db) as db:` BEGIN IMMEDIATE ... COMMIT, or ROLLBACK on error."""

    def __init__(self, db: sqlite3.Connection):
        self.db = db

    def __enter__(self) -> sqlite3.Connection:
        self.db.execute("BEGIN IMMEDIATE")
        return self.db

    def __exit__(self, exc_type: Any, *rest: Any) -> None:
        self.db.execute("COMMIT" if exc_type is None else "ROLLBACK")


def _current(db: sqlite3.Connection, record_id: str, reviewer: str) -> Decision | None:
    row = db.execute(
        "SELECT * FROM decisions WHERE record_id = ? AND reviewer = ? AND undone_at IS NULL AND action != 'skip'"
        " ORDER BY seq DESC LIMIT 1",
        (record_id, reviewer),
    ).fetchone()
    return None if row is None else Decision.from_row(row)


def _write_verdicts(db: sqlite3.Connection, decision: Decision) -> None:
    db.execute("DELETE FROM reviews WHERE record_id = ? AND reviewer = ?", (decision.record_id, decision.reviewer))
    db.executemany(
        "INSERT INTO reviews (record_id, reviewer, criterion, verdict, decision, at) VALUES (?, ?, ?, ?, ?, ?)",
        [(decision.record_id, decision.reviewer, c, v, decision.seq, decision.at)
         for c, v in verdicts_for(decision).items()],
    )
