"""Faithfulness: the share of records that are fluent, on task, correctly labelled and factual.

A judge (any backend) checks a random sample of n records against a rubric;
the share of faithful records in the whole dataset is estimated from the
sample with a Wilson score interval, overall and per criterion. A record is
faithful when it passes every criterion.

For the label, the judge is not asked "is this label right?" (small judges
say yes to whatever they are shown) but which of the task's labels fits
the text best; the label is correct when that is the record's label.

Where people reviewed records (the review app stores them), the same
estimate is made from their verdicts, and the judge's agreement with them
is measured on the records both saw. `human_reviews` reads them from a
SQLite file with a table

    reviews(record_id TEXT, criterion TEXT, verdict TEXT, ...)

where `criterion` is one of the rubric's names (or `faithful` for an
overall verdict) and `verdict` is yes/no (also true/false, 1/0, pass/fail,
accept/reject, correct/incorrect). Extra columns are ignored; several
reviews of the same record and criterion are decided by majority.
"""

from __future__ import annotations

import math
import random
import sqlite3
from collections import defaultdict
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from ..records import Record
from .judge import Judge, enum_schema, parse_verdict, verdict_request

CRITERIA: dict[str, str] = {
    "fluent": "Is it fluent, realistic text that a person could have written?",
    "on_task": "Is it the kind of example this dataset is meant to hold (not a comment about the task, not off topic)?",
    "label_correct": "Is the given label the right one for it?",
    "factual": "Is it free of factual errors?",
}
FAITHFUL = "faithful"

SYSTEM = "You are a careful annotator who checks examples of a dataset. Answer only with JSON."

_YES = {"yes", "y", "true", "1", "pass", "passed", "accept", "accepted", "correct", "ok", "good", "faithful"}
_NO = {"no", "n", "false", "0", "fail", "failed", "reject", "rejected", "incorrect", "wrong", "bad", "unfaithful"}


def wilson_interval(successes: int, n: int, level: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of a binomial proportion; (0, 1) when n is 0."""
    if n == 0:
        return (0.0, 1.0)
    from scipy.stats import norm

    z = float(norm.ppf(1 - (1 - level) / 2))
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return (max(0.0, centre - half), min(1.0, centre + half))


def share(successes: int, n: int, level: float = 0.95) -> dict[str, Any]:
    low, high = wilson_interval(successes, n, level)
    return {"share": successes / n if n else None, "interval": [round(low, 4), round(high, 4)], "n": n}


def sample_records(records: Sequence[Record], n: int, seed: int = 0) -> list[Record]:
    """n records drawn uniformly without replacement (all of them when there are fewer)."""
    if len(records) <= n:
        return list(records)
    return [records[i] for i in sorted(random.Random(seed).sample(range(len(records)), n))]


def rubric_prompt(record: Record, task: str, labels: Mapping[str, str | None], criteria: Sequence[str]) -> tuple[str, dict[str, list[str]]]:
    """The judge's question for one record, and the allowed value of each answer key."""
    keys: dict[str, list[str]] = {}
    lines = [f"The dataset holds {task}."]
    if labels:
        lines.append("Its labels:")
        lines += [f"- {name}" + (f": {desc}" if desc else "") for name, desc in labels.items()]
    lines.append("\nThe example:")
    lines += [f"{k}: {v}" for k, v in record.fields.items()]
    if record.label is not None:
        lines.append(f"label given: {record.label}")
    lines.append("\nCheck the example:")
    for name in criteria:
        if name == "label_correct" and labels:
            lines.append("- best_label: Which of the labels fits the example best?")
            keys["best_label"] = list(labels)
        elif name != "label_correct" or record.label is not None:
            lines.append(f"- {name}: {CRITERIA[name]} (yes or no)")
            keys[name] = ["yes", "no"]
    lines.append("\nAnswer with a JSON object with the keys " + ", ".join(keys) + ".")
    return "\n".join(lines), keys


def judge_faithfulness(
    records: Sequence[Record],
    judge: Judge,
    *,
    task: str,
    labels: Mapping[str, str | None] | None = None,
    criteria: Sequence[str] = tuple(CRITERIA),
    sample: int = 50,
    seed: int = 0,
    level: float = 0.95,
    max_tokens: int = 96,
) -> dict[str, Any]:
    """Judge a random sample of `records`; estimate the faithful share of the whole set with intervals."""
    unknown = set(criteria) - set(CRITERIA)
    if unknown:
        raise ValueError(f"unknown criteria {sorted(unknown)}; known: {', '.join(CRITERIA)}")
    labels = dict(labels or {})
    chosen = sample_records(records, sample, seed)
    prompts = [rubric_prompt(r, task, labels, criteria) for r in chosen]
    keys = prompts[0][1] if prompts else {}
    requests = [verdict_request(SYSTEM, text, enum_schema(keys), max_tokens, seed) for text, _ in prompts]
    outcomes = judge.ask(requests, lambda completion: parse_verdict(completion.text, keys), "judging faithfulness")
    verdicts = []
    for record, outcome in zip(chosen, outcomes):
        if not outcome.ok:
            continue
        answer = outcome.value
        verdict: dict[str, Any] = {c: answer[c] == "yes" for c in criteria if c in answer}
        if "best_label" in answer:
            verdict["label_correct"] = answer["best_label"] == record.label
            verdict["best_label"] = answer["best_label"]
        verdicts.append({"id": record.id, "label": record.label, **verdict})
    out = estimate(verdicts, criteria, level)
    out.update(population=len(records), sampled=len(chosen), judged=len(verdicts), failed=len(chosen) - len(verdicts))
    out["judge"] = {"backend": judge.config.backend, "model_calls": judge.stats.get("model_calls", 0),
                    "served_from_cache": judge.stats.get("served_from_cache", 0)}
    out["verdicts"] = verdicts
    return out


def estimate(verdicts: Sequence[Mapping[str, Any]], criteria: Sequence[str], level: float = 0.95) -> dict[str, Any]:
    """The faithful share and each criterion's share, with Wilson intervals, from per-record verdicts."""
    n = len(verdicts)
    faithful = sum(all(v.get(c, True) for c in criteria) for v in verdicts)
    out: dict[str, Any] = {"faithful": share(faithful, n, level), "criteria": {}}
    for c in criteria:
        seen = [v[c] for v in verdicts if c in v]
        out["criteria"][c] = share(sum(seen), len(seen), level)
    return out


# -- people's reviews ------------------------------------------------------------


def verdict_value(value: Any) -> bool | None:
    """A review's verdict as True/False; None when it is neither (skipped, unsure)."""
    text = str(value).strip().lower()
    if text in _YES:
        return True
    if text in _NO:
        return False
    return None


def human_reviews(path: str | Path) -> list[tuple[str, str, Any]]:
    """(record_id, criterion, verdict) rows of the `reviews` table of a SQLite file; [] when absent."""
    path = Path(path)
    if not path.exists():
        return []
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        if not db.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name='reviews'").fetchone():
            return []
        return [tuple(row) for row in db.execute("SELECT record_id, criterion, verdict FROM reviews")]
    finally:
        db.close()


def majority_verdicts(reviews: Iterable[tuple[str, str, Any]]) -> dict[str, dict[str, bool]]:
    """record_id -> criterion -> majority verdict (ties count as not faithful)."""
    votes: dict[tuple[str, str], list[bool]] = defaultdict(list)
    for record_id, criterion, verdict in reviews:
        value = verdict_value(verdict)
        if value is not None:
            votes[(str(record_id), str(criterion))].append(value)
    out: dict[str, dict[str, bool]] = defaultdict(dict)
    for (record_id, criterion), values in votes.items():
        out[record_id][criterion] = sum(values) > len(values) / 2
    return dict(out)


def human_faithfulness(
    reviews: Iterable[tuple[str, str, Any]], criteria: Sequence[str] = tuple(CRITERIA), level: float = 0.95
) -> dict[str, Any] | None:
    """The faithful share estimated from people's verdicts (None without any).

    A reviewed record is faithful when its overall `faithful` verdict says
    so, or, without one, when every criterion it was reviewed on passed.
    """
    by_record = majority_verdicts(reviews)
    if not by_record:
        return None
    verdicts = []
    for record_id, verdict in by_record.items():
        row = {"id": record_id, **{c: v for c, v in verdict.items() if c in criteria}}
        if FAITHFUL in verdict:
            row[FAITHFUL] = verdict[FAITHFUL]
        verdicts.append(row)
    faithful = sum(v.get(FAITHFUL, all(v.get(c, True) for c in criteria)) for v in verdicts)
    out = estimate(verdicts, criteria, level)
    out["faithful"] = share(faithful, len(verdicts), level)
    out["criteria"] = {c: s for c, s in out["criteria"].items() if s["n"]}
    return out


def judge_agreement(judge_verdicts: Sequence[Mapping[str, Any]], reviews: Iterable[tuple[str, str, Any]], criteria: Sequence[str] = tuple(CRITERIA)) -> dict[str, Any]:
    """Agreement (share and Cohen's kappa) of the judge with people, per criterion and overall."""
    people = majority_verdicts(reviews)
    out: dict[str, Any] = {}
    pairs_all: list[tuple[bool, bool]] = []
    for c in [*criteria, FAITHFUL]:
        pairs = []
        for v in judge_verdicts:
            human = people.get(str(v["id"]), {})
            judged = all(v.get(x, True) for x in criteria) if c == FAITHFUL else v.get(c)
            if c in human and judged is not None:
                pairs.append((bool(judged), human[c]))
        if pairs:
            out[c] = _agreement(pairs)
            pairs_all += pairs
    if pairs_all:
        out["all"] = _agreement(pairs_all)
    return out


def _agreement(pairs: Sequence[tuple[bool, bool]]) -> dict[str, Any]:
    n = len(pairs)
    observed = sum(a == b for a, b in pairs) / n
    p_judge = sum(a for a, _ in pairs) / n
    p_human = sum(b for _, b in pairs) / n
    expected = p_judge * p_human + (1 - p_judge) * (1 - p_human)
    kappa = (observed - expected) / (1 - expected) if expected < 1 else (1.0 if observed == 1 else 0.0)
    return {"n": n, "agreement": observed, "kappa": kappa}


__all__ = [
    "CRITERIA",
    "estimate",
    "human_faithfulness",
    "human_reviews",
    "judge_agreement",
    "judge_faithfulness",
    "majority_verdicts",
    "rubric_prompt",
    "sample_records",
    "verdict_value",
    "wilson_interval",
]
