"""`apply-reviews`: people's decisions written into the curated data.

Each record's standing decisions (one per reviewer) are resolved by
majority: first keep or reject, then, among those who kept it, the label
and the text. A tie is a conflict: the record is left as curation had it
and listed, for a third reviewer to settle in the app.

The result is written atomically. Reviewed records carry a `human_review`
stage (`human_review_flag` keep/relabel/drop, `human_review_score` the
share of reviewers who agreed with what was applied, `human_review_reason`
who did what) and two audit columns, `reviewed_by` and `reviewed_at`.
Rejected records move to `rejected.parquet`; records people kept from
`rejected.parquet` (reviewed with `synthloom review --rejected`) move back.

Applying is repeatable: the first time, the data as curation left it is
kept beside it (`curated.unreviewed.parquet`), and every later apply starts
from that copy with all standing decisions, so undoing a decision in the
app and applying again puts the record back.
"""

from __future__ import annotations

import json
import shutil
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import pyarrow as pa
import pyarrow.parquet as pq

from ..records import METADATA_KEY, DataError, Record, atomic_path, atomic_write_text, read_records, write_records
from .store import STORE_NAME, Decision, ReviewStore

STAGE = "human_review"
REVIEWED_KEY = b"synthloom.reviewed"


@dataclass
class Resolution:
    """What the reviewers' decisions on one record come to."""

    record_id: str
    action: str  # keep, relabel, drop, conflict
    label: str | None = None
    fields: dict[str, Any] = field(default_factory=dict)
    agreement: float = 1.0
    reviewers: list[str] = field(default_factory=list)
    at: str = ""
    reason: str = ""


@dataclass
class ApplyResult:
    curated: Path
    rejected: Path
    counts: dict[str, int]
    conflicts: list[str]

    def summary(self) -> str:
        c = self.counts
        return (
            f"{c['reviewed']} reviewed records applied: {c['accepted']} accepted, {c['relabelled']} relabelled, "
            f"{c['edited']} edited, {c['rejected']} rejected, {c['rescued']} kept from rejected; "
            f"{len(self.conflicts)} conflicts left unchanged"
        )


def _winner(votes: Counter) -> tuple[Any, float] | None:
    """The most common vote and its share, or None on a tie for first place."""
    ranked = votes.most_common()
    if len(ranked) > 1 and ranked[0][1] == ranked[1][1]:
        return None
    return ranked[0][0], ranked[0][1] / sum(votes.values())


def resolve(record: Record, decisions: Sequence[Decision]) -> Resolution:
    """The majority outcome of several reviewers' decisions on one record."""
    reviewers = sorted(d.reviewer for d in decisions)
    base = Resolution(record.id, "conflict", reviewers=reviewers, at=max(d.at for d in decisions))
    fate = _winner(Counter(d.action == "reject" for d in decisions))
    if fate is None:
        base.reason = "reviewers split between keeping and rejecting"
        return base
    if fate[0]:
        names = ", ".join(d.reviewer for d in decisions if d.action == "reject")
        return Resolution(record.id, "drop", agreement=fate[1], reviewers=reviewers, at=base.at,
                          reason=f"rejected by {names}")
    kept = [d for d in decisions if d.action != "reject"]
    label = _winner(Counter(d.final_label for d in kept))
    texts = _winner(Counter(json.dumps({**record.fields, **(d.fields or {})}, sort_keys=True) for d in kept))
    if label is None or texts is None:
        base.reason = "reviewers disagree on the " + ("label" if label is None else "text")
        return base
    fields = {k: v for k, v in json.loads(texts[0]).items() if record.fields.get(k) != v}
    changed = label[0] != record.label
    by = ", ".join(sorted({d.reviewer for d in kept}))
    parts = [f"{record.label} -> {label[0]}" if changed else "label confirmed"]
    if fields:
        parts.append(f"{', '.join(fields)} edited")
    return Resolution(
        record.id, "relabel" if changed else "keep", label=label[0], fields=fields,
        agreement=min(fate[1], label[1], texts[1]), reviewers=reviewers, at=base.at,
        reason=f"{'; '.join(parts)} by {by}",
    )


def _paths(path: Path, out: Path | None) -> tuple[Path, Path, Path, Path | None, Path | None]:
    """(store, curated out, rejected out, curated base, rejected base) for a run directory or a file."""
    if path.is_dir():
        curated, rejected = path / "curated.parquet", path / "rejected.parquet"
        if not curated.exists():
            raise DataError(f"{path}: not a run directory (no curated.parquet)")
        return path / STORE_NAME, curated, rejected, _base(curated), _base(rejected)
    if not path.exists():
        raise DataError(f"{path}: file not found")
    out = out or path.with_name(f"{path.stem}.reviewed.parquet")
    return path.with_name(f"{path.stem}.{STORE_NAME}"), out, out.with_name(f"{out.stem}.rejected.parquet"), path, None


def _base(path: Path) -> Path | None:
    """The data as curation left it: the file itself the first time, its saved copy after."""
    if not path.exists():
        return None
    copy = path.with_name(f"{path.stem}.unreviewed.parquet")
    if REVIEWED_KEY in (pq.read_schema(path).metadata or {}):
        if not copy.exists():
            raise DataError(f"{path} was written by apply-reviews but {copy.name} is missing")
        return copy
    with atomic_path(copy) as tmp:
        shutil.copyfile(path, tmp)
    return copy


def _label_field(path: Path | None) -> str:
    if path is None or path.suffix != ".parquet":
        return "label"
    meta = (pq.read_schema(path).metadata or {}).get(METADATA_KEY)
    return json.loads(meta)["label_field"] if meta else "label"


def apply_reviews(path: str | Path, out: str | Path | None = None, store: str | Path | None = None) -> ApplyResult:
    """Write reviewed labels and edits into a run directory's curated data (or a copy of a dataset file)."""
    path = Path(path)
    store_path, curated_out, rejected_out, curated_base, rejected_base = _paths(path, Path(out) if out else None)
    store_path = Path(store) if store else store_path
    if not store_path.exists():
        raise DataError(f"{store_path}: no reviews yet (start `synthloom review {path}`)")
    curated = read_records(curated_base) if curated_base else []
    rejected = read_records(rejected_base) if rejected_base else []
    with ReviewStore(store_path) as reviews:
        current = reviews.current()
    by_record: dict[str, list[Decision]] = {}
    for (record_id, _), decision in current.items():
        by_record.setdefault(record_id, []).append(decision)

    counts = Counter(reviewed=0, accepted=0, relabelled=0, edited=0, rejected=0, rescued=0)
    conflicts: list[str] = []
    audit: dict[str, Resolution] = {}
    kept_out: list[Record] = []
    dropped_out: list[Record] = []
    for record, was_kept in [(r, True) for r in curated] + [(r, False) for r in rejected]:
        decisions = by_record.get(record.id)
        if not decisions:
            (kept_out if was_kept else dropped_out).append(record)
            continue
        resolution = resolve(record, decisions)
        if resolution.action == "conflict":
            conflicts.append(record.id)
            (kept_out if was_kept else dropped_out).append(record)
            continue
        counts["reviewed"] += 1
        audit[record.id] = resolution
        if resolution.action == "drop":
            record.decide(STAGE, "drop", resolution.agreement, resolution.reason)
            counts["rejected"] += 1
            dropped_out.append(record)
            continue
        counts["relabelled"] += resolution.action == "relabel"
        counts["edited"] += bool(resolution.fields)
        counts["accepted"] += resolution.action == "keep" and not resolution.fields
        counts["rescued"] += not was_kept
        record.label = resolution.label
        record.fields.update(resolution.fields)
        record.decide(STAGE, resolution.action, resolution.agreement, resolution.reason)
        kept_out.append(record)

    label_field = _label_field(curated_base)
    summary = {"counts": dict(counts), "conflicts": conflicts}
    _write(curated_out, kept_out, label_field, audit, summary)
    if rejected_base is not None or dropped_out:
        _write(rejected_out, dropped_out, label_field, audit, summary)
    if path.is_dir() and (path / "manifest.json").exists():
        manifest = json.loads((path / "manifest.json").read_text())
        manifest["review"] = summary
        atomic_write_text(path / "manifest.json", json.dumps(manifest, indent=2, ensure_ascii=False, default=str) + "\n")
    return ApplyResult(curated_out, rejected_out, dict(counts), conflicts)


def _write(path: Path, records: list[Record], label_field: str, audit: dict[str, Resolution], summary: dict[str, Any]) -> None:
    """Records to Parquet with the audit columns, marked as written by apply-reviews; atomic."""
    with atomic_path(path) as tmp:
        write_records(tmp, records, label_field, prompts=False)
        table = pq.read_table(tmp)
        by = [", ".join(audit[r.id].reviewers) if r.id in audit else None for r in records]
        at = [audit[r.id].at if r.id in audit else None for r in records]
        table = table.append_column("reviewed_by", pa.array(by, pa.string()))
        table = table.append_column("reviewed_at", pa.array(at, pa.string()))
        metadata = dict(table.schema.metadata or {})
        metadata[REVIEWED_KEY] = json.dumps(summary).encode()
        pq.write_table(table.replace_schema_metadata(metadata), tmp)
