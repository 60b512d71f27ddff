"""Small run directories for the review tests: curated records with confidence stages."""

from __future__ import annotations

import json
from pathlib import Path

from synthloom.records import Record, write_records

TEXTS = [
    ("WIN a free cruise! Text CRUISE to 80880 now", "spam", 0.35, 0.9),
    ("Running late, see you at 6", "ham", 0.95, 0.97),
    ("URGENT: your account is locked, call 0906 123 456", "spam", 0.15, 0.5),
    ("Can you pick up milk on the way home?", "ham", 0.88, None),
    ("Congratulations, you won a prize. Claim at www.example.win", "ham", 0.05, 0.2),
    ("Lunch tomorrow? The usual place", "ham", 0.7, 0.8),
    ("Free ringtones! Reply TONE to 85023", "spam", 0.6, 0.4),
    ("Happy birthday!! Have a great day", "spam", 0.25, 0.3),
]


def make_run(path: Path, n: int | None = None, labels=("spam", "ham"), rejected: int = 2) -> Path:
    """A run directory like `synthloom run` leaves: curated and rejected records, a manifest."""
    path.mkdir(parents=True, exist_ok=True)
    records = []
    rows = TEXTS if n is None else [TEXTS[i % len(TEXTS)] for i in range(n)]
    for i, (text, label, consistency, judge) in enumerate(rows):
        record = Record(
            id=f"r{i:03d}",
            fields={"text": text if n is None else f"{text} #{i}"},
            label=label,
            conditions={"topic": ["money", "food", "travel"][i % 3], "tone": "casual" if i % 2 else "urgent"},
        )
        record.decide("length_filter", "keep", float(len(text)))
        record.decide("self_consistency", "keep" if consistency >= 0.3 else "relabel", consistency,
                      f"{round(consistency * 5)} of 5 samples agree")
        if judge is not None:
            record.decide("llm_judge", "keep", judge, "realistic and on task" if judge > 0.5 else "reads like an ad")
        records.append(record)
    write_records(path / "curated.parquet", records, prompts=False)
    dropped = []
    for i in range(rejected):
        record = Record(id=f"x{i:03d}", fields={"text": f"ok #{i}"}, label="ham")
        record.decide("length_filter", "drop", 4.0, "4 characters, fewer than 12")
        dropped.append(record)
    write_records(path / "rejected.parquet", dropped, prompts=False)
    manifest = {"status": "complete", "recipe": {"name": "sms_test", "task": {
        "labels": {l: f"{l} messages" for l in labels}, "fields": {"text": "SMS message"}}}}
    (path / "manifest.json").write_text(json.dumps(manifest))
    return path
