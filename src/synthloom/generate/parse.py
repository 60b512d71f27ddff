"""Reading a model's plain-text answer back into a record's fields.

Small models wrap their answer in quotes, prefix it with "Message:" or the
label, or run past the end of it. The parser undoes what is common and
raises `InvalidAnswer` for what is not usable, which makes the scheduler
ask again (within the record's budget of tries).
"""

from __future__ import annotations

import re
from typing import Sequence

from ..llm import Completion, InvalidAnswer
from .schema import Parsed

_QUOTES = {'"': '"', "'": "'", "“": "”", "«": "»", "`": "`"}
_SENTENCE_END = re.compile(r"[.!?…)](?=\s|$)")


class AnswerParser:
    """Turns completions into field values for one task's fields and labels."""

    def __init__(self, fields: Sequence[str], labels: Sequence[str] = (), min_chars: int = 2):
        self.fields = list(fields)
        self.labels = list(labels)
        self.min_chars = min_chars
        words = [re.escape(w) for w in ["message", "text", "sms", "answer", "example", "output", "response", *self.fields, *self.labels]]
        self._prefix = re.compile(r"^\s*(?:[-*>]\s*)?(?:(?:" + "|".join(words) + r")\s*[:\-–]\s*)+", re.I)
        names = "|".join(re.escape(f) for f in self.fields)
        self._line = re.compile(r"^\s*[-*]?\s*\**(" + names + r")\**\s*:\s*(.*)$", re.I)

    def __call__(self, completion: Completion) -> dict[str, str]:
        truncated = completion.finish_reason == "length"
        if len(self.fields) == 1:
            values = {self.fields[0]: self._single(completion.text, truncated)}
        else:
            values = self._multi(completion.text, truncated)
        if truncated:  # the answer was cut back to its last complete sentence
            return Parsed.of(values, ["cut_to_sentence"])
        return values

    def _clean(self, text: str, truncated: bool) -> str:
        text = self._prefix.sub("", text.strip(), count=1).strip()
        if len(text) >= 2 and text[0] in _QUOTES:
            close = _QUOTES[text[0]]
            end = text.find(close, 1)
            if end > 0 and (end == len(text) - 1 or not text[end + 1 :].strip(" .")):
                text = text[1:end]
            elif truncated and end < 0:
                text = text[1:]
        if truncated:
            text = _cut_to_sentence(text)
        return " ".join(text.split())

    def _single(self, text: str, truncated: bool) -> str:
        paragraph = text.strip().split("\n\n", 1)[0]
        value = self._clean(paragraph, truncated)
        if len(value) < self.min_chars:
            raise InvalidAnswer(f"answer too short after cleaning: {text[:60]!r}")
        return value

    def _multi(self, text: str, truncated: bool) -> dict[str, str]:
        values: dict[str, list[str]] = {}
        current: str | None = None
        for line in text.splitlines():
            match = self._line.match(line)
            if match:
                current = next(f for f in self.fields if f.lower() == match.group(1).lower())
                if current in values:  # a second record began: stop at the first one
                    break
                values[current] = [match.group(2)]
            elif current is not None and line.strip():
                values[current].append(line.strip())
        missing = [f for f in self.fields if not " ".join(values.get(f, [])).strip()]
        if missing:
            raise InvalidAnswer(f"answer lacks field(s) {', '.join(missing)}: {text[:60]!r}")
        last = self.fields[-1]
        return {
            f: self._clean(" ".join(values[f]), truncated and f == last) for f in self.fields
        }


def _cut_to_sentence(text: str) -> str:
    """A text cut off by the token limit, trimmed back to its last complete sentence."""
    ends = [m.end() for m in _SENTENCE_END.finditer(text)]
    if ends and ends[-1] >= 20:
        return text[: ends[-1]]
    raise InvalidAnswer(f"answer cut off by the token limit before a sentence ended: {text[:60]!r}")
