"""Filters that know the task: the model talking about it, labels leaking, the record's shape.

A small model asked for "an SMS message" often answers "Sure, here is an
SMS message: ..." or repeats its instructions; a text that names its own
label ("this spam message...") teaches a classifier nothing; a record with
an empty field or a label outside the label set is not a record of the task.
"""

from __future__ import annotations

import json
import re
from typing import Any, Sequence

from ..recipe import LabelLeakFilterSpec, MetaTalkFilterSpec, SchemaFilterSpec
from ..records import Record
from .base import DROP, KEEP, CurationContext, SpecStage, stage_for

__all__ = ["BUILTIN_META_PATTERNS", "LabelLeakFilter", "MetaTalkFilter", "SchemaFilter", "prompt_text"]

BUILTIN_META_PATTERNS = (
    r"^\W*(sure|certainly|of course|absolutely|okay|ok|great)\b[\s,!.:]+(here|i|this|below)\b",
    r"\bhere(?: is|'s| are)\s+(?:a|an|the|some|your|my|one|another)\b[^.!?\n]{0,40}?\b"
    r"(message|text|example|sms|review|sentence|response|question|answer|email|tweet|post|output)s?\b",
    r"\bas an ai\b|\bas a (?:large )?language model\b",
    r"\bi(?: cannot|'m unable to| am unable to| can't| won't)\s+(?:help|assist|provide|create|generate|write|comply)\b",
    r"\bi'?m sorry,? but\b",
    r"^\W*(?:example|sample|output|response|message|text)\s*(?:#?\d+)?\s*:",
    r"\b(?:this|the) (?:message|text|example|sms) (?:is|was) (?:labell?ed|classified|an? example)\b",
)


def prompt_text(record: Record, roles: Sequence[str] | None = None) -> str:
    """The text of a record's prompt (the content of every message, or of those of `roles`), or ""."""
    if not record.prompt:
        return ""
    try:
        messages = json.loads(record.prompt)
    except ValueError:
        return record.prompt
    if isinstance(messages, list):
        return "\n".join(
            str(m.get("content", "")) for m in messages
            if isinstance(m, dict) and (roles is None or m.get("role") in roles)
        )
    return str(messages)


def _ngrams(words: list[str], n: int) -> set[tuple[str, ...]]:
    return {tuple(words[i : i + n]) for i in range(len(words) - n + 1)}


_WORD = re.compile(r"\w+")


@stage_for(MetaTalkFilterSpec)
class MetaTalkFilter(SpecStage):
    """Drops texts that talk about the task instead of doing it, or echo the prompt.

    By default a text may repeat a demonstration (an assistant turn of the
    prompt): that is a real example copied, a question of novelty, not talk.
    """

    name = "meta_talk_filter"
    record_local = True  # each decision reads only its own record: safe to run per block

    def __init__(self, spec: MetaTalkFilterSpec, context: CurationContext):
        super().__init__(spec, context)
        patterns = (list(BUILTIN_META_PATTERNS) if spec.builtin_patterns else []) + list(spec.patterns)
        self.patterns = [re.compile(p, re.I | re.M) for p in patterns]
        # The demonstrations' example answers are the prompt's assistant turns.
        self.roles = ("system", "user") if spec.echo_of == "instructions" else None

    def __call__(self, records: Sequence[Record]) -> Sequence[Record]:
        n = self.spec.n
        for record in records:
            text = record.text(self.field)
            words = _WORD.findall(text.casefold())
            grams = _ngrams(words, n)
            prompt = prompt_text(record, self.roles)
            overlap = len(grams & _ngrams(_WORD.findall(prompt.casefold()), n)) / len(grams) if grams and prompt else 0.0
            reason = ""
            match = next((m for p in self.patterns if (m := p.search(text))), None)
            if match:
                reason = f"talks about the task: {match.group(0).strip()[:60]!r}"
            elif overlap > self.spec.max_prompt_overlap:
                reason = f"{overlap:.0%} of its word {n}-grams are in the prompt"
            record.decide(self.name, DROP if reason else KEEP, overlap, reason)
        return records


def _label_pattern(words: Sequence[str]) -> re.Pattern[str]:
    """Whole-word, case-insensitive; a label's parts (card_arrival) may be joined by space, _ or -."""
    alternatives = [r"[\s_-]+".join(re.escape(p) for p in re.split(r"[\s_-]+", w.strip()) if p) for w in words]
    return re.compile(r"(?<!\w)(?:" + "|".join(a for a in alternatives if a) + r")(?!\w)", re.I)


@stage_for(LabelLeakFilterSpec)
class LabelLeakFilter(SpecStage):
    """Drops texts that name their own label (or one of the words given for it)."""

    name = "label_leak_filter"

    def __call__(self, records: Sequence[Record]) -> Sequence[Record]:
        patterns = {
            label: _label_pattern([label, *self.spec.words.get(label, [])])
            for label in set(self.context.label_set(records)) | set(self.spec.words)
        }
        for record in records:
            pattern = patterns.get(record.label) if record.label is not None else None
            match = pattern.search(record.text(self.field)) if pattern else None
            reason = f"names its label {record.label!r}: {match.group(0)!r}" if match else ""
            record.decide(self.name, DROP if match else KEEP, 1.0 if match else 0.0, reason)
        return records


def _type_ok(value: Any, kind: str) -> bool:
    text = str(value).strip()
    if kind == "int":
        return isinstance(value, int) and not isinstance(value, bool) or bool(re.fullmatch(r"[+-]?\d+", text))
    if kind == "float":
        try:
            float(text)
        except ValueError:
            return False
        return not isinstance(value, bool)
    if kind == "bool":
        return isinstance(value, bool) or text.lower() in ("true", "false", "yes", "no", "0", "1")
    return isinstance(value, str)


@stage_for(SchemaFilterSpec)
class SchemaFilter(SpecStage):
    """Drops records that are not records of the task: empty fields, unknown labels, wrong types."""

    name = "schema_filter"

    def __init__(self, spec: SchemaFilterSpec, context: CurationContext):
        super().__init__(spec, context)
        self.patterns = {f: re.compile(p) for f, p in spec.patterns.items()}

    def _problem(self, record: Record, labels: set[str]) -> str:
        for name in self.spec.required if self.spec.required is not None else list(record.fields):
            value = record.fields.get(name)
            if value is None or not str(value).strip():
                return f"field {name!r} is missing or empty"
        if labels and record.label not in labels:
            return f"label {record.label!r} is not one of the task's labels"
        for name, kind in self.spec.types.items():
            if name in record.fields and record.fields[name] is not None and not _type_ok(record.fields[name], kind):
                return f"field {name!r} is not {kind}: {str(record.fields[name])[:40]!r}"
        for name, pattern in self.patterns.items():
            if not pattern.fullmatch(str(record.fields.get(name) or "")):
                return f"field {name!r} does not match {pattern.pattern!r}"
        return ""

    def __call__(self, records: Sequence[Record]) -> Sequence[Record]:
        labels = set(self.spec.labels if self.spec.labels is not None else self.context.labels)
        for record in records:
            problem = self._problem(record, labels)
            record.decide(self.name, DROP if problem else KEEP, 0.0 if problem else 1.0, problem)
        return records
