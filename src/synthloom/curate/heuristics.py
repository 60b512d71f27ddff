"""Heuristic filters and exact dedup: cheap rules on the text alone that catch the most common junk.

Length bounds, looping text (repeated n-grams, character runs), garbage
(control characters, broken encodings, too few letters), the language (the
offline `lingua` detector, whose models ship in its wheel), and exact
duplicates after normalising case, spacing and punctuation. Rules that need
the task (its labels, the prompt) live in `task_filters`.
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache
from typing import Any, Sequence

from ..recipe import ExactDedupSpec, GarbageFilterSpec, LanguageFilterSpec, LengthFilterSpec, RepetitionFilterSpec
from ..records import Record
from .base import DROP, KEEP, CurationContext, SpecStage, stage_for

_PUNCT = re.compile(r"[^\w\s]|_")
_SPACE = re.compile(r"\s+")


def normalise(text: str) -> str:
    """Case-, spacing- and punctuation-insensitive form used for exact dedup."""
    text = _PUNCT.sub(" ", unicodedata.normalize("NFKC", text).casefold())
    return _SPACE.sub(" ", text).strip()


@stage_for(ExactDedupSpec)
class ExactDedup(SpecStage):
    name = "exact_dedup"

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
class LengthFilter(SpecStage):
    name = "length_filter"
    record_local = True  # each decision reads only its own record: safe to run per block

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


@stage_for(RepetitionFilterSpec)
class RepetitionFilter(SpecStage):
    """Drops texts that loop: a high share of repeated word n-grams, or a long run of one character."""

    name = "repetition_filter"
    record_local = True  # each decision reads only its own record: safe to run per block

    def __init__(self, spec: RepetitionFilterSpec, context: CurationContext):
        super().__init__(spec, context)
        self._run = re.compile(r"(.)\1{%d,}" % spec.max_char_run, re.S)

    def __call__(self, records: Sequence[Record]) -> Sequence[Record]:
        n = self.spec.n
        for record in records:
            text = record.text(self.field)
            words = text.casefold().split()
            grams = [tuple(words[i : i + n]) for i in range(len(words) - n + 1)]
            repeated = 1 - len(set(grams)) / len(grams) if grams else 0.0
            reason = ""
            if repeated > self.spec.max_repeated:
                reason = f"{repeated:.0%} of word {n}-grams are repeats (most {self.spec.max_repeated:.0%})"
            elif match := self._run.search(text):
                reason = f"{match.group(1)!r} repeated {len(match.group(0))} times"
            record.decide(self.name, DROP if reason else KEEP, repeated, reason)
        return records


_ALLOWED_CONTROLS = frozenset("\t\n\r")


def garbage_reason(text: str, min_letter_share: float) -> tuple[float, str]:
    """(share of letters among non-space characters, why the text is garbage or "")."""
    from ftfy.badness import is_bad

    visible = [c for c in text if not c.isspace()]
    letters = sum(c.isalpha() for c in visible)
    share = letters / len(visible) if visible else 0.0
    for i, c in enumerate(text):
        category = unicodedata.category(c)
        if (category == "Cc" and c not in _ALLOWED_CONTROLS) or category in ("Cs", "Co", "Cn"):
            return share, f"control or unassigned character U+{ord(c):04X} at {i}"
    if "\ufffd" in text:
        return share, "U+FFFD replacement character (text lost in decoding)"
    if is_bad(text):
        return share, "broken encoding (mojibake)"
    if share < min_letter_share:
        return share, f"{share:.0%} letters (fewer than {min_letter_share:.0%})"
    return share, ""


@stage_for(GarbageFilterSpec)
class GarbageFilter(SpecStage):
    """Drops non-text: control characters, broken encodings, too few letters."""

    name = "garbage_filter"
    record_local = True  # each decision reads only its own record: safe to run per block

    def __call__(self, records: Sequence[Record]) -> Sequence[Record]:
        for record in records:
            share, reason = garbage_reason(record.text(self.field), self.spec.min_letter_share)
            record.decide(self.name, DROP if reason else KEEP, share, reason)
        return records


# Languages the detector chooses among besides the wanted ones: widely written
# ones, so that "not English" is told apart without loading every model.
COMMON_LANGUAGES = ("en", "es", "fr", "de", "it", "pt", "nl", "ru", "zh", "ja", "ko", "ar", "hi", "tr", "pl", "sv", "id", "vi")


@lru_cache(maxsize=4)
def language_detector(codes: tuple[str, ...]) -> Any:
    """A lingua detector for these ISO 639-1 codes; its models ship inside the package."""
    try:
        from lingua import IsoCode639_1, Language, LanguageDetectorBuilder
    except ImportError:
        raise ImportError("the language_filter stage needs lingua: pip install 'synthloom[curation]'") from None

    languages = []
    for code in codes:
        try:
            languages.append(Language.from_iso_code_639_1(getattr(IsoCode639_1, code.upper())))
        except AttributeError:
            raise ValueError(f"unknown language code {code!r} (ISO 639-1, e.g. en, de)") from None
    return LanguageDetectorBuilder.from_languages(*languages).build()


@stage_for(LanguageFilterSpec)
class LanguageFilter(SpecStage):
    """Drops texts the offline detector confidently places in a language not wanted."""

    name = "language_filter"
    record_local = True  # each decision reads only its own record: safe to run per block

    def __init__(self, spec: LanguageFilterSpec, context: CurationContext):
        super().__init__(spec, context)
        self.wanted = {code.lower() for code in spec.languages}

    def __call__(self, records: Sequence[Record]) -> Sequence[Record]:
        codes = tuple(sorted(self.wanted | set(COMMON_LANGUAGES)))
        texts = [record.text(self.field) for record in records]
        todo = [i for i, t in enumerate(texts) if len(t.strip()) >= self.spec.min_chars]
        detector = language_detector(codes)
        values = detector.compute_language_confidence_values_in_parallel([texts[i] for i in todo])
        found = dict(zip(todo, values))
        for i, record in enumerate(records):
            if i not in found:
                record.decide(self.name, KEEP, None, "too short to tell the language")
                continue
            confidences = {v.language.iso_code_639_1.name.lower(): v.value for v in found[i]}
            wanted = sum(confidences.get(code, 0.0) for code in self.wanted)
            top, confidence = max(confidences.items(), key=lambda kv: kv[1])
            drop = top not in self.wanted and confidence >= self.spec.min_confidence
            reason = f"language {top} ({confidence:.2f})" if drop else ""
            record.decide(self.name, DROP if drop else KEEP, wanted, reason)
        return records
