"""Heuristic filters and exact dedup: cheap rules that catch the most common junk."""

from __future__ import annotations

import re
import unicodedata
from typing import Sequence

from ..recipe import ExactDedupSpec, LengthFilterSpec
from ..records import Record
from .base import DROP, KEEP, CurationContext, stage_for

_PUNCT = re.compile(r"[^\w\s]|_")
_SPACE = re.compile(r"\s+")


def normalise(text: str) -> str:
    """Case-, spacing- and punctuation-insensitive form used for exact dedup."""
    text = _PUNCT.sub(" ", unicodedata.normalize("NFKC", text).casefold())
    return _SPACE.sub(" ", text).strip()


@stage_for(ExactDedupSpec)
class ExactDedup:
    name = "exact_dedup"

    def __init__(self, spec: ExactDedupSpec, context: CurationContext):
        self.spec = spec
        self.field = spec.field or context.text_field

    def features(self, records: Sequence[Record]) -> list[str]:
        """The per-record part (parallel on a cluster): each record's normalised text."""
        return [normalise(record.text(self.field)) for record in records]

    def decide(self, records: Sequence[Record], keys: Sequence[str]) -> Sequence[Record]:
        """The global part: the first record of each key is kept, in record order."""
        first: dict[str, str] = {}
        for record, key in zip(records, keys):
            original = first.setdefault(key, record.id)
            if original == record.id:
                record.decide(self.name, KEEP, 0.0)
            else:
                record.decide(self.name, DROP, 1.0, f"duplicate of {original}")
        return records

    def __call__(self, records: Sequence[Record]) -> Sequence[Record]:
        return self.decide(records, self.features(records))


@stage_for(LengthFilterSpec)
class LengthFilter:
    name = "length_filter"
    record_local = True  # each decision reads only its own record: safe to run per block

    def __init__(self, spec: LengthFilterSpec, context: CurationContext):
        self.spec = spec
        self.field = spec.field or context.text_field

    def __call__(self, records: Sequence[Record]) -> Sequence[Record]:
        s = self.spec
        for record in records:
            text = record.text(self.field)
            chars, words = len(text), len(text.split())
            reason = ""
            if chars < s.min_chars:
                reason = f"{chars} characters, fewer than {s.min_chars}"
            elif s.max_chars is not None and chars > s.max_chars:
                reason = f"{chars} characters, more than {s.max_chars}"
            elif words < s.min_words:
                reason = f"{words} words, fewer than {s.min_words}"
            elif s.max_words is not None and words > s.max_words:
                reason = f"{words} words, more than {s.max_words}"
            record.decide(self.name, DROP if reason else KEEP, float(chars), reason)
        return records
