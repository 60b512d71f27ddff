"""Review tasks to and from Label Studio and Argilla, as files.

For teams that already label in those tools: export the records (with the
current label as the model's suggestion and any decisions already made),
review there, export from the tool, and import the result back into the
same `reviews.sqlite` the review app uses. `apply-reviews` then treats
those decisions like the app's.

Label Studio: a JSON list of tasks (`data`, `predictions`, `annotations`),
with a labeling config (`label_studio_config()`) that has a `label`
choice, a `reject` choice and an `edited_text` text area. An annotation
maps back to a decision: cancelled (skipped) -> skip; `reject` chosen ->
reject; text in `edited_text` -> edit; a label other than the record's ->
relabel; anything else -> accept.

Argilla (v2 record dicts, `dataset.records.to_list(flatten=False)`): one
JSON object per line with `fields`, `metadata`, `suggestions` and
`responses` for the questions `label` (a LabelQuestion) and `edited_text`
(a TextQuestion). A discarded response -> reject.

The record id travels as `synthloom_id` (Label Studio `data`, Argilla
`metadata`), so imports find their records whatever ids the tool gave.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterable, Sequence
from xml.sax.saxutils import quoteattr

from ..records import DataError, Record, atomic_write_text, read_rows
from .queue import ReviewSet, confidence
from .store import Decision, ReviewError, ReviewStore, check_reviewer

ID_KEY = "synthloom_id"
SOURCE = "synthloom"  # who made the suggestion, as the tools record it


def _verdict_results(label: str | None, action: str, edited: str | None, text_field: str) -> list[dict[str, Any]]:
    """A Label Studio `result` list for a label, a reject and an edit."""
    results = []
    if label is not None:
        results.append({"from_name": "label", "to_name": text_field, "type": "choices", "value": {"choices": [label]}})
    if action == "reject":
        results.append({"from_name": "reject", "to_name": text_field, "type": "choices", "value": {"choices": ["reject"]}})
    if edited is not None:
        results.append({"from_name": "edited_text", "to_name": text_field, "type": "textarea", "value": {"text": [edited]}})
    return results


def label_studio_config(labels: Sequence[str], text_field: str = "text") -> str:
    """The Label Studio labeling config that matches `export_label_studio`."""
    choices = "\n".join(f"    <Choice value={quoteattr(label)}/>" for label in labels)
    name = quoteattr(text_field)
    return (
        "<View>\n"
        f"  <Text name={name} value={quoteattr('$' + text_field)}/>\n"
        f'  <Choices name="label" toName={name} choice="single" showInLine="true">\n{choices}\n  </Choices>\n'
        f'  <Choices name="reject" toName={name} choice="single"><Choice value="reject"/></Choices>\n'
        f'  <TextArea name="edited_text" toName={name} maxSubmissions="1" placeholder="corrected text (optional)"/>\n'
        "</View>\n"
    )


def _decisions_by_record(store: ReviewStore | None) -> dict[str, list[Decision]]:
    out: dict[str, list[Decision]] = {}
    if store is not None:
        for (record_id, _), decision in store.current().items():
            out.setdefault(record_id, []).append(decision)
    return out


def _text_field(record: Record) -> str:
    return next(iter(record.fields), "text")


def export_label_studio(review_set: ReviewSet, path: str | Path, store: ReviewStore | None = None) -> Path:
    """Write Label Studio tasks (JSON) and, beside them, the labeling config (XML)."""
    path = Path(path)
    decisions = _decisions_by_record(store)
    tasks = []
    for record in review_set.records:
        text_field = _text_field(record)
        task: dict[str, Any] = {"data": {**record.fields, ID_KEY: record.id, "label": record.label}}
        if record.label is not None:
            task["predictions"] = [{
                "model_version": SOURCE,
                "score": confidence(record),
                "result": _verdict_results(record.label, "accept", None, text_field),
            }]
        task["annotations"] = [
            {
                "completed_by": {"email": d.reviewer},
                "created_at": d.at,
                "was_cancelled": False,
                "result": _verdict_results(
                    d.final_label if d.action != "reject" else None, d.action,
                    (d.fields or {}).get(text_field), text_field,
                ),
            }
            for d in decisions.get(record.id, [])
        ]
        tasks.append(task)
    atomic_write_text(path, json.dumps(tasks, ensure_ascii=False, indent=1) + "\n")
    text_field = _text_field(review_set.records[0]) if review_set.records else "text"
    atomic_write_text(path.with_suffix(".xml"), label_studio_config(review_set.labels, text_field))
    return path


def export_argilla(review_set: ReviewSet, path: str | Path, store: ReviewStore | None = None) -> Path:
    """Write Argilla v2 records, one JSON object per line."""
    path = Path(path)
    decisions = _decisions_by_record(store)
    lines = []
    for record in review_set.records:
        text_field = _text_field(record)
        responses: dict[str, list[dict[str, Any]]] = {}
        for d in decisions.get(record.id, []):
            if d.action == "reject":
                responses.setdefault("label", []).append({"value": None, "user_id": d.reviewer, "status": "discarded"})
                continue
            responses.setdefault("label", []).append({"value": d.final_label, "user_id": d.reviewer, "status": "submitted"})
            edited = (d.fields or {}).get(text_field)
            if edited is not None:
                responses.setdefault("edited_text", []).append({"value": edited, "user_id": d.reviewer, "status": "submitted"})
        item = {
            "id": record.id,
            "fields": {k: v for k, v in record.fields.items()},
            "metadata": {ID_KEY: record.id, **{f"condition_{k}": v for k, v in record.conditions.items()}},
            "suggestions": {} if record.label is None else {
                "label": {"value": record.label, "score": confidence(record), "agent": SOURCE}
            },
            "responses": responses,
            "status": "completed" if responses else "pending",
        }
        lines.append(json.dumps(item, ensure_ascii=False))
    atomic_write_text(path, "\n".join(lines) + ("\n" if lines else ""))
    return path


def _reviewer_name(raw: Any, tool: str) -> str:
    if isinstance(raw, dict):
        raw = raw.get("email") or raw.get("username") or raw.get("id")
    name = str(raw) if raw not in (None, "") else "unknown"
    if isinstance(raw, int) or name.isdigit():
        name = f"{tool}-{name}"
    try:
        return check_reviewer(name)
    except ReviewError:
        return check_reviewer(f"{tool}-" + "".join(c if c.isalnum() else "-" for c in name)[:30])


def _decision(record: Record, reviewer: str, label: str | None, rejected: bool, skipped: bool, edited: str | None) -> dict[str, Any]:
    text_field = _text_field(record)
    if skipped:
        return {"action": "skip"}
    if rejected:
        return {"action": "reject"}
    fields = {text_field: edited} if edited is not None and edited != record.fields.get(text_field) else None
    if fields:
        return {"action": "edit", "fields": fields, "label": label}
    if label is not None and label != record.label:
        return {"action": "relabel", "label": label}
    return {"action": "accept"}


def _import(decisions: Iterable[tuple[str, str, dict[str, Any], str]], review_set: ReviewSet, store: ReviewStore, source: Path) -> int:
    records = review_set.by_id()
    count = 0
    for record_id, reviewer, decision, where in decisions:
        record = records.get(record_id)
        if record is None:
            raise DataError(f"{where}: record {record_id!r} is not in {review_set.name}")
        label = decision.get("label")
        if label is not None and review_set.labels and label not in review_set.labels:
            raise DataError(f"{where}: unknown label {label!r}")
        store.decide(
            record_id, reviewer, decision["action"], label=decision.get("label"), fields=decision.get("fields"),
            original_label=record.label, note=f"imported from {source.name}",
            uid=f"{source.name}:{record_id}:{reviewer}:{json.dumps(decision, sort_keys=True)}",
        )
        count += 1
    return count


def import_label_studio(path: str | Path, review_set: ReviewSet, store: ReviewStore) -> int:
    """Read a Label Studio JSON export into the store; returns the number of decisions imported."""
    path = Path(path)
    try:
        tasks = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise DataError(f"{path}:{getattr(exc, 'lineno', 1)}: not JSON ({exc})") from None
    if not isinstance(tasks, list):
        raise DataError(f"{path}: expected a JSON list of Label Studio tasks")
    records = review_set.by_id()

    def decisions() -> Iterable[tuple[str, str, dict[str, Any], str]]:
        for n, task in enumerate(tasks):
            where = f"{path}: task {n}"
            record_id = str((task.get("data") or {}).get(ID_KEY, ""))
            if not record_id:
                raise DataError(f"{where}: data.{ID_KEY} is missing")
            record = records.get(record_id)
            if record is None:
                raise DataError(f"{where}: record {record_id!r} is not in {review_set.name}")
            for annotation in task.get("annotations") or []:
                label = edited = None
                rejected = False
                for result in annotation.get("result") or []:
                    value = result.get("value") or {}
                    if result.get("from_name") == "label" and value.get("choices"):
                        label = value["choices"][0]
                    elif result.get("from_name") == "reject" and value.get("choices"):
                        rejected = True
                    elif result.get("from_name") == "edited_text" and value.get("text"):
                        edited = "\n".join(value["text"])
                reviewer = _reviewer_name(annotation.get("completed_by"), "labelstudio")
                skipped = bool(annotation.get("was_cancelled"))
                yield record_id, reviewer, _decision(record, reviewer, label, rejected, skipped, edited), where

    return _import(decisions(), review_set, store, path)


def import_argilla(path: str | Path, review_set: ReviewSet, store: ReviewStore) -> int:
    """Read Argilla v2 records (JSON lines, or a JSON list) into the store; returns decisions imported."""
    path = Path(path)
    text = path.read_text(encoding="utf-8").lstrip()
    if text.startswith("["):
        try:
            items = json.loads(text)
        except ValueError as exc:
            raise DataError(f"{path}: not JSON ({exc})") from None
    else:
        items = read_rows(path, "jsonl")
    records = review_set.by_id()

    def decisions() -> Iterable[tuple[str, str, dict[str, Any], str]]:
        for n, item in enumerate(items, 1):
            where = f"{path}:{n}"
            record_id = str((item.get("metadata") or {}).get(ID_KEY) or item.get("id") or "")
            record = records.get(record_id)
            if record is None:
                raise DataError(f"{where}: record {record_id!r} is not in {review_set.name}")
            responses = item.get("responses") or {}
            by_user: dict[str, dict[str, Any]] = {}
            for question, answers in responses.items():
                for answer in answers or []:
                    user = by_user.setdefault(_reviewer_name(answer.get("user_id"), "argilla"), {})
                    if answer.get("status") == "discarded":
                        user["discarded"] = True
                    elif answer.get("status", "submitted") == "submitted":
                        user[question] = answer.get("value")
            for reviewer, answer in by_user.items():
                label = answer.get("label")
                if isinstance(label, list):  # a multi-label question: take the first
                    label = label[0] if label else None
                decision = _decision(record, reviewer, label, bool(answer.get("discarded")), False, answer.get("edited_text"))
                yield record_id, reviewer, decision, where

    return _import(decisions(), review_set, store, path)


__all__ = [
    "export_argilla",
    "export_label_studio",
    "import_argilla",
    "import_label_studio",
    "label_studio_config",
]
