"""What people review, and in which order: the dataset, its views and each reviewer's queue.

A `ReviewSet` is the records of a run directory (`curated.parquet`, and
with `rejected=True` also `rejected.parquet`) or of any dataset file, with
the task's labels. A `View` orders and filters them; a reviewer's queue is
the view less the records that reviewer already decided, with the ones
they skipped moved to the end.

The default order, `confidence`, puts the least confident record first.
A record's confidence is the lowest of its confidence scores: the
`<stage>_score` of the stages in `CONFIDENCE_STAGES`, or of any stage whose
name ends in `_confidence`, `_consistency` or `_logprob` (all of them are
0-1 scores where higher means surer). Records with no such score follow,
in file order. Any other `<stage>_score` can order the queue (`score:STAGE`
lowest first, `-score:STAGE` highest first), and any stage's flag
(`flag:STAGE` puts records the stage did not simply keep first).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from ..records import DataError, Record, read_records
from .store import STORE_NAME

CONFIDENCE_STAGES = ("self_consistency", "label_logprob", "llm_judge", "aux_confidence", "support_agree")
CONFIDENCE_SUFFIXES = ("_confidence", "_consistency", "_logprob")


def is_confidence_stage(stage: str) -> bool:
    return stage in CONFIDENCE_STAGES or stage.endswith(CONFIDENCE_SUFFIXES)


def confidence(record: Record) -> float | None:
    """The record's lowest confidence score, or None when it has none."""
    values = [
        v for stage, v in record.scores.items()
        if is_confidence_stage(stage) and v is not None and not math.isnan(v)
    ]
    return min(values) if values else None


@dataclass
class ReviewSet:
    """The records under review, where their decisions are stored, and the task's labels."""

    name: str
    records: list[Record]
    store_path: Path
    labels: list[str] = field(default_factory=list)
    label_descriptions: dict[str, str] = field(default_factory=dict)
    source: dict[str, str] = field(default_factory=dict)
    run_dir: Path | None = None

    @classmethod
    def load(cls, path: str | Path, rejected: bool = False, store: str | Path | None = None) -> ReviewSet:
        """The records of a run directory, or of a dataset file (JSONL, CSV, TSV, Parquet)."""
        path = Path(path)
        if not path.exists():
            raise DataError(f"{path}: no such run directory or dataset file")
        if path.is_dir():
            curated = path / "curated.parquet"
            if not curated.exists():
                raise DataError(f"{path}: not a run directory (no curated.parquet)")
            records = read_records(curated)
            source = {r.id: "curated" for r in records}
            if rejected and (path / "rejected.parquet").exists():
                dropped = read_records(path / "rejected.parquet")
                source.update({r.id: "rejected" for r in dropped})
                records += dropped
            labels, descriptions, name = _task_labels(path / "manifest.json")
            store_path, run_dir = path / STORE_NAME, path
        else:
            records = read_records(path)
            source = {r.id: path.name for r in records}
            labels, descriptions, name = [], {}, path.stem
            store_path, run_dir = path.with_name(f"{path.stem}.{STORE_NAME}"), None
        ids = [r.id for r in records]
        if len(set(ids)) != len(ids):
            duplicate = next(i for i in ids if ids.count(i) > 1)
            raise DataError(f"{path}: record id {duplicate!r} appears more than once")
        seen = {r.label for r in records if r.label is not None}
        labels = labels + sorted(seen - set(labels))
        return cls(name or path.name, records, Path(store) if store else store_path, labels, descriptions, source, run_dir)

    def by_id(self) -> dict[str, Record]:
        return {r.id: r for r in self.records}

    def stages(self) -> list[str]:
        return list(dict.fromkeys(s for r in self.records for s in [*r.scores, *r.flags]))

    def scored_stages(self) -> list[str]:
        return list(dict.fromkeys(s for r in self.records for s in r.scores))

    def conditions(self) -> dict[str, list[str]]:
        values: dict[str, set[str]] = {}
        for r in self.records:
            for key, value in r.conditions.items():
                values.setdefault(key, set()).add(str(value))
        return {k: sorted(v) for k, v in values.items()}

    def flag_values(self) -> dict[str, list[str]]:
        values: dict[str, set[str]] = {}
        for r in self.records:
            for stage, flag in r.flags.items():
                values.setdefault(stage, set()).add(flag)
        return {k: sorted(v) for k, v in values.items()}

    def orders(self) -> list[str]:
        """Every order the records can be put in; the first is the default."""
        out = ["confidence"]
        for stage in self.scored_stages():
            out += [f"score:{stage}", f"-score:{stage}"]
        out += [f"flag:{stage}" for stage in self.flag_values()]
        return out + ["file"]

    def record_json(self, record: Record) -> dict[str, Any]:
        return {
            "id": record.id,
            "fields": record.fields,
            "label": record.label,
            "conditions": record.conditions,
            "scores": record.scores,
            "flags": record.flags,
            "reasons": record.reasons,
            "confidence": confidence(record),
            "weight": record.weight,
            "source": self.source.get(record.id, ""),
        }


def _task_labels(manifest: Path) -> tuple[list[str], dict[str, str], str]:
    """The labels (and their descriptions) a run's recipe declared."""
    if not manifest.exists():
        return [], {}, ""
    try:
        recipe = json.loads(manifest.read_text()).get("recipe") or {}
    except ValueError as exc:
        raise DataError(f"{manifest}: not JSON ({exc})") from None
    labels = (recipe.get("task") or {}).get("labels") or []
    if isinstance(labels, dict):
        return list(labels), {k: v for k, v in labels.items() if v}, recipe.get("name", "")
    return [str(label) for label in labels], {}, recipe.get("name", "")


@dataclass(frozen=True)
class View:
    """An order and filters over a ReviewSet: what the app's toolbar chooses."""

    order: str = "confidence"
    labels: tuple[str, ...] = ()
    conditions: tuple[tuple[str, str], ...] = ()
    decisions: tuple[tuple[str, str], ...] = ()
    assigned_only: bool = False

    @classmethod
    def from_query(cls, query: Any, default_order: str = "confidence") -> View:
        """From URL parameters (a multidict): order, label, condition=key:value, decision=stage:flag, assigned=1."""
        return cls(
            order=query.get("order") or default_order,
            labels=tuple(query.getall("label", ())),
            conditions=tuple(_pair(v) for v in query.getall("condition", ())),
            decisions=tuple(_pair(v) for v in query.getall("decision", ())),
            assigned_only=query.get("assigned") in ("1", "true", "yes"),
        )

    def matches(self, record: Record) -> bool:
        if self.labels and record.label not in self.labels:
            return False
        for key, value in self.conditions:
            if str(record.conditions.get(key)) != value:
                return False
        for stage, flag in self.decisions:
            if record.flags.get(stage) != flag:
                return False
        return True

    def apply(self, records: Sequence[Record], assigned: Sequence[str] = ()) -> list[str]:
        """Ids of the matching records, in this view's order."""
        if self.assigned_only or self.order == "assigned":
            rank = {rid: i for i, rid in enumerate(assigned)}
            if self.assigned_only:
                records = [r for r in records if r.id in rank]
        chosen = [r for r in records if self.matches(r)]
        return [r.id for r in sorted(chosen, key=self._key(assigned))]  # a stable sort: ties keep file order

    def _key(self, assigned: Sequence[str]) -> Any:
        order = self.order
        position = {rid: i for i, rid in enumerate(assigned)}
        if order == "file":
            return lambda r: 0
        if order == "assigned":
            return lambda r: position.get(r.id, len(position))
        if order == "confidence":
            return lambda r: (1, 0.0) if confidence(r) is None else (0, confidence(r))
        if order.startswith(("score:", "-score:")):
            stage = order.split(":", 1)[1]
            sign = -1.0 if order.startswith("-") else 1.0
            return lambda r: (1, 0.0) if r.scores.get(stage) is None else (0, sign * r.scores[stage])
        if order.startswith("flag:"):
            stage = order.split(":", 1)[1]
            return lambda r: {None: 2, "keep": 1}.get(r.flags.get(stage), 0)
        raise DataError(f"unknown order {order!r}; expected confidence, score:STAGE, -score:STAGE, flag:STAGE, assigned or file")


def _pair(text: str) -> tuple[str, str]:
    key, sep, value = str(text).partition(":")
    if not sep:
        raise DataError(f"filter {text!r} must look like key:value")
    return key, value


def reviewer_queue(
    ordered: Iterable[str],
    mine: set[str],
    skipped: Sequence[str],
    others: Mapping[str, int] | None = None,
    overlap: int | None = None,
) -> list[str]:
    """A reviewer's pending records: not decided by them, skipped ones last.

    With `overlap`, records already decided by that many other reviewers
    are left out (1 splits the work; None has everyone review everything).
    """
    others = others or {}
    skipped_set = set(skipped)
    full = set()
    if overlap is not None:
        full = {rid for rid, n in others.items() if n >= overlap}
    pending = [rid for rid in ordered if rid not in mine and rid not in skipped_set and rid not in full]
    in_view = set(ordered)
    return pending + [rid for rid in skipped if rid in in_view and rid not in mine and rid not in full]
