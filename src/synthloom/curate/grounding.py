"""Grounding checks: questions over documents are kept only when their answers are proven by the text.

Five stages for records made from documents (task kind `grounded_qa`; each
record's meta holds `question_type`, `reference_context_ids` and
`reference_contexts`):

- `quote_match`: every evidence quote occurs in one of the record's
  reference contexts, by rapidfuzz's `partial_ratio` (0-100, the best
  alignment of the quote within the chunk) at or above `threshold`; the
  score is the weakest quote's ratio / 100, and each quote's best chunk and
  ratio go to `meta["quote_matches"]`. An answer with no quote is dropped.
- `claim_support`: a judge with a rubric reads the question, the answer
  and the quotes (not the chunks) and scores 1-5 whether every claim of
  the answer is stated by the quotes; stored as (score - 1) / 4. Given a
  local NLI cross-encoder (`nli_model`), the quotes are the premise, the
  answer the hypothesis, and the model's entailment probability is the
  score instead (no judge is asked; none ships with synthloom).
- `needs_both_chunks`: a multi-hop or comparison question is asked with
  each of its chunks alone; if the model says either alone answers it, the
  record is dropped (it is really single-hop).
- `retrieval_rank`: the rank of the reference chunk among all chunks for
  the question, by MiniLM cosine similarity and by BM25 (bm25s); ties count
  against it. Kept when within the top `k`; the ranks go to
  `meta["retrieval_ranks"]` for the report's hit@1/5/10.

- `unanswerable_check`: an unanswerable question is asked with its own
  chunk and each of the `k` chunks nearest to it (MiniLM) alone; if any
  answers it, it was answerable after all and is dropped.

Unanswerable questions have no quotes, claims or chunk to find: the first
four stages keep them and say so. Every drop keeps its reason.
"""

from __future__ import annotations

import json
from typing import Any, Sequence

import numpy as np

from ..llm import Completion, InvalidAnswer, Request
from ..recipe import ClaimSupportSpec, NeedsBothSpec, QuoteMatchSpec, RetrievalRankSpec, UnanswerableCheckSpec
from ..records import Record, read_records
from ._llm import ask_all
from .base import DROP, KEEP, SpecStage, stage_for
from .confidence import JUDGE_SCHEMA, parse_judgement

TWO_CHUNK_KINDS = ("multi_hop", "comparison")

CLAIM_RUBRIC = (
    "Score 5 when every claim in the answer is stated by the quotes, 3 when some claims are not in the "
    "quotes, 1 when the answer contradicts the quotes or the quotes say nothing about it. "
    "Judge only from the quotes, not from what you know."
)


def evidence_of(record: Record, field: str = "evidence") -> list[str]:
    """The record's evidence quotes (a list, or a JSON list read back from a file)."""
    value = record.fields.get(field)
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            value = [value]
    return [str(q) for q in (value or []) if str(q).strip()]


def contexts_of(record: Record) -> list[str]:
    return [str(c) for c in record.meta.get("reference_contexts") or []]


def is_unanswerable(record: Record) -> bool:
    return bool(record.meta.get("unanswerable")) or record.meta.get("question_type") == "unanswerable"


def _grounded(records: Sequence[Record], stage: str) -> list[Record]:
    """The records a grounding stage can judge; the others are kept with the reason why not."""
    out = []
    for record in records:
        if is_unanswerable(record):
            record.decide(stage, KEEP, None, "unanswerable: nothing to check")
        elif not contexts_of(record):
            record.decide(stage, KEEP, None, "no reference contexts in meta")
        else:
            out.append(record)
    return out


@stage_for(QuoteMatchSpec)
class QuoteMatch(SpecStage):
    """Every evidence quote found in a reference context (rapidfuzz partial_ratio >= threshold)."""

    name = "quote_match"
    record_local = True

    def __call__(self, records: Sequence[Record]) -> Sequence[Record]:
        from rapidfuzz import fuzz

        for record in _grounded(records, self.name):
            quotes, contexts = evidence_of(record, self.field), contexts_of(record)
            if not quotes:
                record.decide(self.name, DROP, 0.0, "no evidence quote")
                continue
            matches = []
            for quote in quotes:
                ratios = [fuzz.partial_ratio(quote.casefold(), c.casefold()) for c in contexts]
                best = int(np.argmax(ratios))
                matches.append({"quote": quote, "chunk": best, "ratio": round(float(ratios[best]), 1)})
            record.meta["quote_matches"] = matches
            weakest = min(matches, key=lambda m: m["ratio"])
            score = weakest["ratio"] / 100
            if weakest["ratio"] < self.spec.threshold:
                missing = sum(m["ratio"] < self.spec.threshold for m in matches)
                record.decide(self.name, DROP, score, f"{missing} of {len(matches)} quotes not in the cited chunks "
                              f"(weakest {weakest['ratio']:.0f} < {self.spec.threshold:g}: {weakest['quote'][:60]!r})")
            else:
                record.decide(self.name, KEEP, score, f"{len(matches)} quotes found (weakest {weakest['ratio']:.0f})")
        return records


@stage_for(ClaimSupportSpec)
class ClaimSupport(SpecStage):
    """A judge: is every claim of the answer supported by the quotes?"""

    name = "claim_support"

    def _messages(self, record: Record) -> tuple[dict[str, str], ...]:
        quotes = "\n".join(f"- {q}" for q in evidence_of(record)) or "(none)"
        system = (f"You check whether answers are supported by quoted evidence. {CLAIM_RUBRIC} "
                  'Answer with JSON only: {"score": <1-5>, "reason": "<one short sentence>"}.')
        user = (f"Question: {record.fields.get('question', '')}\nAnswer: {record.text(self.field)}\n"
                f"Quotes:\n{quotes}")
        return ({"role": "system", "content": system}, {"role": "user", "content": user})

    def __call__(self, records: Sequence[Record]) -> Sequence[Record]:
        s = self.spec
        todo = _grounded(records, self.name)
        if s.nli_model is not None:
            return self._by_nli(records, todo)
        requests = [Request(messages=self._messages(r), temperature=s.temperature, max_tokens=s.max_tokens,
                            seed=s.seed, json_schema=JUDGE_SCHEMA) for r in todo]
        for record, outcome in zip(todo, ask_all(s.model, requests, parse_judgement, self.context, self.name)):
            if not outcome.ok:
                record.decide(self.name, DROP, None, f"no usable judgement ({outcome.error.kind})")
                continue
            score, reason = outcome.value
            value = (score - 1) / 4
            if s.min_score is not None and value < s.min_score:
                record.decide(self.name, DROP, value, f"claims not supported by the quotes, {score}/5: {reason}")
            else:
                record.decide(self.name, KEEP, value, f"{score}/5: {reason}")
        return records

    def _by_nli(self, records: Sequence[Record], todo: Sequence[Record]) -> Sequence[Record]:
        pairs = [(" ".join(evidence_of(r)), r.text(self.field)) for r in todo]
        scores = entailment_probabilities(self.spec.nli_model, pairs) if pairs else []
        for record, value in zip(todo, scores):
            value = float(value)
            if self.spec.min_score is not None and value < self.spec.min_score:
                record.decide(self.name, DROP, value, f"the quotes do not entail the answer (NLI {value:.2f})")
            else:
                record.decide(self.name, KEEP, value, f"the quotes entail the answer (NLI {value:.2f})")
        return records


def entailment_probabilities(model_path: str, pairs: Sequence[tuple[str, str]]) -> np.ndarray:
    """P(entailment) of each (premise, hypothesis) pair by a local NLI cross-encoder (never downloaded)."""
    from sentence_transformers import CrossEncoder

    model = CrossEncoder(model_path, local_files_only=True, device="cpu")
    labels = {str(name).lower(): int(index) for index, name in model.config.id2label.items()}
    if "entailment" not in labels:
        raise ValueError(f"{model_path}: not an NLI model (its labels are {sorted(labels)}, no 'entailment')")
    probabilities = model.predict(list(pairs), apply_softmax=True, batch_size=16, show_progress_bar=False)
    return np.asarray(probabilities)[:, labels["entailment"]]


ALONE_SCHEMA = {
    "type": "object",
    "properties": {"answers_it": {"type": "string", "enum": ["yes", "no"]}},
    "required": ["answers_it"],
}


def parse_alone(completion: Completion) -> bool:
    """yes/no: does the passage alone fully answer the question?"""
    text = completion.text.strip().lower()
    try:
        data = json.loads(text)
        text = str(data.get("answers_it", "")).lower() if isinstance(data, dict) else text
    except ValueError:
        pass
    if "yes" in text and "no" not in text.replace("yes", ""):
        return True
    if "no" in text:
        return False
    raise InvalidAnswer(f"neither yes nor no: {completion.text[:60]!r}")


@stage_for(NeedsBothSpec)
class NeedsBothChunks(SpecStage):
    """Multi-hop and comparison questions asked with one chunk at a time: neither alone may answer."""

    name = "needs_both_chunks"

    def _messages(self, question: str, chunk: str) -> tuple[dict[str, str], ...]:
        system = ("You decide whether a passage alone fully answers a question. A question that also needs "
                  'facts the passage does not state is not answered. Answer with JSON only: {"answers_it": "yes" or "no"}.')
        return ({"role": "system", "content": system},
                {"role": "user", "content": f"Passage:\n{chunk}\n\nQuestion: {question}\nDoes this passage alone fully answer it?"})

    def __call__(self, records: Sequence[Record]) -> Sequence[Record]:
        s = self.spec
        todo = []
        for record in _grounded(records, self.name):
            if record.meta.get("question_type") not in TWO_CHUNK_KINDS or len(contexts_of(record)) < 2:
                record.decide(self.name, KEEP, None, "one-chunk question")
            else:
                todo.append(record)
        requests = [Request(messages=self._messages(r.text(self.field), chunk), temperature=s.temperature,
                            max_tokens=s.max_tokens, seed=s.seed, json_schema=ALONE_SCHEMA)
                    for r in todo for chunk in contexts_of(r)[:2]]
        outcomes = ask_all(s.model, requests, parse_alone, self.context, self.name)
        for i, record in enumerate(todo):
            pair = outcomes[2 * i: 2 * i + 2]
            if not all(o.ok for o in pair):
                record.decide(self.name, DROP, None, "no usable answer with one chunk alone")
                continue
            alone = [n + 1 for n, o in enumerate(pair) if o.value]
            record.meta["answered_alone_by"] = alone
            if alone:
                record.decide(self.name, DROP, 0.0, f"chunk {' and '.join(map(str, alone))} alone answers it: really single-hop")
            else:
                record.decide(self.name, KEEP, 1.0, "neither chunk alone answers it")
        return records


def rank_of(scores: np.ndarray, targets: Sequence[int]) -> int:
    """1-based rank of the best of `targets` among all scores; ties count against it."""
    best = max(float(scores[t]) for t in targets)
    return int(np.sum(scores >= best))


class Retriever:
    """All chunks, ranked for a query by MiniLM cosine similarity or by BM25 (bm25s)."""

    def __init__(self, chunks: Sequence[Record], embed: Any):
        self.ids = [c.id for c in chunks]
        self.index = {cid: i for i, cid in enumerate(self.ids)}
        self.texts = [c.text("text") for c in chunks]
        self._embed = embed
        self._vectors: np.ndarray | None = None
        self._bm25: Any = None

    def scores(self, method: str, queries: Sequence[str]) -> np.ndarray:
        if method == "minilm":
            if self._vectors is None:
                self._vectors = _normed(self._embed(self.texts))
            return _normed(self._embed(list(queries))) @ self._vectors.T
        import bm25s

        if self._bm25 is None:
            self._bm25 = bm25s.BM25()
            self._bm25.index(bm25s.tokenize(self.texts, stopwords="en", return_ids=False, show_progress=False),
                             show_progress=False)
        tokens = bm25s.tokenize(list(queries), stopwords="en", return_ids=False, show_progress=False)
        return np.vstack([self._bm25.get_scores(t) if t else np.zeros(len(self.ids)) for t in tokens])


def run_chunks(spec: Any, context: Any, stage: str) -> list[Record]:
    """The chunks a stage searches: its `chunks:` file, or the run's."""
    if spec.chunks:
        return read_records(spec.chunks)
    chunks = context.extras.get("chunks")
    if not chunks:
        raise ValueError(f"{stage} needs the chunks: run it in a recipe with documents, or give chunks: FILE")
    return list(chunks)


def _normed(vectors: Any) -> np.ndarray:
    vectors = np.asarray(vectors, dtype=np.float32)
    return vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)


@stage_for(RetrievalRankSpec)
class RetrievalRank(SpecStage):
    """Keep a question when its reference chunk ranks within the top k among all chunks."""

    name = "retrieval_rank"

    def chunks(self) -> list[Record]:
        return run_chunks(self.spec, self.context, self.name)

    def __call__(self, records: Sequence[Record]) -> Sequence[Record]:
        s = self.spec
        todo = _grounded(records, self.name)
        if not todo:
            return records
        retriever = Retriever(self.chunks(), self.context.get_embedder().encode)
        targets = []
        for record in todo:
            found = [retriever.index[c] for c in record.meta.get("reference_context_ids") or [] if c in retriever.index]
            targets.append(found)
        queries = [r.text(self.field) for r in todo]
        ranks: dict[str, list[int | None]] = {}
        for method in s.methods:
            scores = retriever.scores(method, queries)
            ranks[method] = [rank_of(scores[i], t) if t else None for i, t in enumerate(targets)]
        for i, record in enumerate(todo):
            mine = {m: ranks[m][i] for m in s.methods}
            record.meta["retrieval_ranks"] = mine
            if any(r is None for r in mine.values()):
                record.decide(self.name, DROP, None, "its reference chunk is not among the chunks")
                continue
            hits = [r <= s.k for r in mine.values()]  # type: ignore[operator]
            ok = any(hits) if s.require == "any" else all(hits)
            shown = ", ".join(f"{m} rank {r}" for m, r in mine.items())
            best = min(mine.values())  # type: ignore[type-var]
            if ok:
                record.decide(self.name, KEEP, 1.0 / best, shown)  # type: ignore[operator]
            else:
                record.decide(self.name, DROP, 1.0 / best, f"too generic to retrieve its chunk: {shown} (k={s.k})")  # type: ignore[operator]
        return records


@stage_for(UnanswerableCheckSpec)
class UnanswerableCheck(SpecStage):
    """An unanswerable question is dropped when its own chunk or one of the k nearest chunks answers it."""

    name = "unanswerable_check"

    def __call__(self, records: Sequence[Record]) -> Sequence[Record]:
        s = self.spec
        todo = []
        for record in records:
            if is_unanswerable(record):
                todo.append(record)
            else:
                record.decide(self.name, KEEP, None, "an answerable question")
        if not todo:
            return records
        chunks = run_chunks(s, self.context, self.name)
        retriever = Retriever(chunks, self.context.get_embedder().encode)
        scores = retriever.scores("minilm", [r.text(self.field) for r in todo])
        asked: list[list[int]] = []
        for i, record in enumerate(todo):
            own = [retriever.index[c] for c in record.meta.get("reference_context_ids") or [] if c in retriever.index]
            nearest = [int(j) for j in np.argsort(-scores[i], kind="stable")[: s.k]]
            asked.append(list(dict.fromkeys(own + nearest)))
        ask = NeedsBothChunks._messages
        requests = [Request(messages=ask(self, r.text(self.field), retriever.texts[j]), temperature=s.temperature,
                            max_tokens=s.max_tokens, seed=s.seed, json_schema=ALONE_SCHEMA)
                    for r, js in zip(todo, asked) for j in js]
        outcomes = iter(ask_all(s.model, requests, parse_alone, self.context, self.name))
        for record, js in zip(todo, asked):
            answers = [(j, next(outcomes)) for j in js]
            yes = [retriever.ids[j] for j, o in answers if o.ok and o.value]
            if yes:
                record.decide(self.name, DROP, 0.0, f"answered by {yes[0]}{f' and {len(yes) - 1} more' if len(yes) > 1 else ''}")
            elif not all(o.ok for _, o in answers):
                record.decide(self.name, DROP, None, "no usable answer for some chunk")
            else:
                record.decide(self.name, KEEP, 1.0, f"none of {len(js)} nearest chunks answers it")
        return records


__all__ = ["ClaimSupport", "UnanswerableCheck", "NeedsBothChunks", "QuoteMatch", "RetrievalRank", "Retriever", "evidence_of", "rank_of"]
