"""Evol-Instruct's elimination step: the evolutions that failed are dropped, with the reason.

The paper (Xu et al., 2023, section 3.3) drops an evolved instruction when
1. it adds no information compared with its parent (`no_new_information`:
   rapidfuzz's token-set ratio of the two texts is at least
   `max_similarity`, or the evolved text's words are all in the parent's);
2. the model cannot answer it: the response apologises or refuses and is
   short (`cannot_answer`), is too short or only punctuation
   (`response_too_short`), or copies the instruction (`response_copies_instruction`);
3. it copies the evolution request's wording (`copies_request`: the
   "#Rewritten Prompt#" markers, or a run of `copy_ngram` words of the
   request the model was given).
Records that are not evolutions (no `meta.parent`) are kept with the
reason "not evolved". The score is the similarity to the parent (0-1).

With `judge:` (a model section) the paper's first rule is also asked of a
model, as the paper asks ChatGPT: each in-depth evolution the rules keep is
shown beside its parent, and one the judge calls equal (no new
constraints, depth or breadth) is dropped as `no_new_information (judge)`;
a judge that gives no usable answer keeps the record and says so.
"""

from __future__ import annotations

import re
from typing import Any, Sequence

from rapidfuzz import fuzz

from ..llm import InvalidAnswer, Request
from ..recipe import EvolEliminationSpec
from ..records import Record
from ._llm import ask_all
from .base import DROP, KEEP, SpecStage, stage_for

_WORD = re.compile(r"[a-z0-9']+")
_REFUSAL = re.compile(
    r"\b(sorry|apologi[sz]e|i (?:cannot|can't|can not|am unable|'m unable|am not able)|as an ai)\b", re.I
)
_MARKERS = ("rewritten prompt", "given prompt", "#rewritten", "#given", "rewritten example", "here is an example",
            "rewrite this example", "rewritten version")


_EQUALITY_SYSTEM = "You compare two instructions. Answer only with JSON."
_EQUALITY = (
    "First instruction:\n{parent}\n\nSecond instruction:\n{child}\n\n"
    "Are they equal: does the second ask for the same as the first, with no more constraints, depth or "
    'breadth? Answer with a JSON object {{"equal": "yes"}} or {{"equal": "no"}}.'
)
_EQUAL_SCHEMA = {"type": "object", "properties": {"equal": {"type": "string", "enum": ["yes", "no"]}}, "required": ["equal"]}


def _equal(completion: Any) -> bool:
    match = re.search(r'"equal"\s*:\s*"(yes|no)"', completion.text, re.I)
    if match is None:
        raise InvalidAnswer(f"the judge's answer has no yes/no: {completion.text[:60]!r}")
    return match.group(1).lower() == "yes"


def _words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def _ngrams(words: list[str], n: int) -> set[tuple[str, ...]]:
    return {tuple(words[i:i + n]) for i in range(len(words) - n + 1)}


@stage_for(EvolEliminationSpec)
class EvolElimination(SpecStage):
    name = "evol_elimination"
    record_local = True

    def __call__(self, records: Sequence[Record]) -> Sequence[Record]:
        to_judge: list[tuple[Record, str]] = []
        for record in records:
            parent = record.meta.get("parent_fields") if record.meta.get("parent") else None
            if not isinstance(parent, dict):
                record.decide(self.name, KEEP, None, "not evolved")
                continue
            reason, similarity = self._failure(record, parent)
            record.decide(self.name, DROP if reason else KEEP, similarity, reason or "")
            if reason is None and record.meta.get("evolution") != "broaden":
                to_judge.append((record, str(parent.get(self._field(record)) or "")))
        if self.spec.judge is not None and to_judge:
            self._judge(to_judge)
        return records

    def _judge(self, pairs: list[tuple[Record, str]]) -> None:
        requests = [Request(
            messages=({"role": "system", "content": _EQUALITY_SYSTEM},
                      {"role": "user", "content": _EQUALITY.format(parent=parent, child=record.text(self._field(record)))}),
            temperature=0.0, max_tokens=16, seed=0, json_schema=_EQUAL_SCHEMA,
        ) for record, parent in pairs]
        outcomes = ask_all(self.spec.judge, requests, _equal, self.context, "evolution equality judge")
        for (record, _), outcome in zip(pairs, outcomes):
            if not outcome.ok:
                record.reasons[self.name] = f"kept: the judge gave no usable answer ({outcome.error.kind})"  # type: ignore[union-attr]
            elif outcome.value:
                record.decide(self.name, DROP, record.scores.get(self.name), "no_new_information (judge)")

    def _field(self, record: Record) -> str:
        return self.field if self.field in record.fields else next(iter(record.fields))

    def _failure(self, record: Record, parent: dict[str, Any]) -> tuple[str | None, float]:
        spec: EvolEliminationSpec = self.spec
        field = self._field(record)
        text, before = record.text(field), str(parent.get(field) or "")
        similarity = fuzz.token_set_ratio(text.lower(), before.lower()) / 100
        words = _words(text)
        request = _words(str(record.meta.get("evolution_request") or ""))
        lowered = text.lower()
        if any(m in lowered for m in _MARKERS) or _ngrams(words, spec.copy_ngram) & _ngrams(request, spec.copy_ngram):
            return "copies_request", similarity
        if record.meta.get("evolution") != "broaden" and (
            similarity >= spec.max_similarity or (words and set(words) <= set(_words(before)))
        ):
            return "no_new_information", similarity
        if spec.response_field and spec.response_field in record.fields and spec.response_field != field:
            response = record.text(spec.response_field)
            answer_words = _words(response)
            if _REFUSAL.search(response) and len(answer_words) < spec.sorry_max_words:
                return "cannot_answer", similarity
            if len(answer_words) < spec.min_response_words:
                return "response_too_short", similarity
            if fuzz.ratio(response.lower().strip(), lowered.strip()) >= 90:
                return "response_copies_instruction", similarity
        return None, similarity


__all__ = ["EvolElimination"]
