"""Questions grounded in documents: which chunks each record asks about, its prompt, and its record.

A recipe with a `documents:` section (task kind `grounded_qa`) plans each
record as one *item*: a question kind and the chunk (single-hop specific or
abstract, unanswerable) or the two linked chunks (multi-hop, comparison)
it is about. The record holds the question, the reference answer, the
verbatim evidence quotes (a JSON-schema-constrained answer), and in its
meta the ids and text of its reference contexts; an unanswerable record's
answer says that the documents do not answer it and cites nothing.

Plans stay a pure function of the seed and the chunks: the kinds are
shared out by quota over the records, and each kind takes the chunks
(or linked pairs) that rank highest by a hash of the seed, the kind and
the chunk ids, never by position in a list. A chunk's prompt and request
seed depend only on that chunk (and its conditions, drawn by the same
hash), so after a document changes only the items of its changed chunks
(and the few a new chunk displaces) are asked again; the cache holds the rest.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from ..llm import Completion, InvalidAnswer, Request, Scheduler
from ..recipe import QUERY_STYLES, TWO_CHUNK_KINDS, DocumentsSpec, FieldSpec, Recipe
from ..records import DataError, Record, write_records
from ..sources import ChunkGraph, build_graph, chunk_documents, ingest
from .conditions import draw_conditions, label_quota
from .engine import Generator, PlannedRecord
from .schema import JsonAnswerParser, output_schema
from .steps import Finished

UNANSWERABLE_ANSWER = "The documents do not answer this question."
MAX_QUOTES = 3

KIND_INSTRUCTIONS: dict[str, str] = {
    "single_hop_specific": "Write one specific question about a fact stated in the passage: a question only this "
    "passage answers (name the thing it is about, do not say 'the passage').",
    "single_hop_abstract": "Write one broader question about the idea or purpose the passage explains (why or how), "
    "that the passage answers.",
    "multi_hop": "Write one question that needs BOTH passages to answer: combine a fact from passage 1 with a fact "
    "from passage 2. Neither passage alone may answer it.",
    "comparison": "Write one question that compares what the two passages say (how are they alike, how do they "
    "differ), answered by both passages together.",
    "unanswerable": "Write one question on the same topic as the passage that the passage does NOT answer "
    "(it asks for something the passage never states).",
}


@dataclass(frozen=True)
class Item:
    """What one record asks about: a question kind and its chunk ids (one or two)."""

    kind: str
    chunks: tuple[str, ...]
    repeat: int = 0  # > 0 when a kind needs more items than there are chunks (or pairs)

    @property
    def key(self) -> str:
        return "|".join([self.kind, *self.chunks, str(self.repeat)])


def _unit(*parts: Any) -> float:
    """A number in (0, 1) that depends only on `parts`."""
    digest = hashlib.sha256("\x1f".join(map(str, parts)).encode("utf-8")).digest()
    return (int.from_bytes(digest[:8], "big") + 1) / (2**64 + 2)


def _take(ranked: list[tuple[str, ...]], taken: set[tuple[str, ...]], n: int, kind: str) -> list[Item]:
    """The first n of `ranked` not taken by an earlier kind (then the taken ones, then round again)."""
    if not ranked:
        return []
    order = [c for c in ranked if c not in taken] + [c for c in ranked if c in taken]
    items = [Item(kind, order[i % len(order)], i // len(order)) for i in range(n)]
    taken.update(item.chunks for item in items)
    return items


def plan_items(graph: ChunkGraph, spec: DocumentsSpec, total: int, seed: int) -> list[Item]:
    """Record i's item: kinds by quota (a pure function of the kinds, the total and the seed), chunks by hash rank."""
    kinds = [k for k in spec.kinds if spec.kinds[k] > 0]
    sequence = label_quota(kinds, spec.kinds, total, seed)
    counts = {k: sequence.count(k) for k in kinds}
    ids = sorted(graph.chunks)
    pairs = sorted(key for key, link in graph.links.items() if graph.apart(link.a, link.b, spec.across))
    taken: set[tuple[str, ...]] = set()
    by_kind: dict[str, list[Item]] = {}
    for kind in kinds:  # the recipe's order; a kind avoids what the kinds before it took
        if kind in TWO_CHUNK_KINDS:
            if counts[kind] and not pairs:
                raise DataError(f"documents: no linked chunks in different {spec.across}s for {kind} questions; "
                                "add documents or set across: section")
            strength = {key: graph.links[key].strength for key in pairs}
            ranked = sorted(pairs, key=lambda key: _unit(seed, kind, *key) ** (1.0 / max(strength[key], 1e-6)), reverse=True)
        else:
            ranked = sorted(((c,) for c in ids), key=lambda key: _unit(seed, "chunk", *key))
        by_kind[kind] = _take(ranked, taken, counts[kind], kind)
    seen = {k: 0 for k in kinds}
    out = []
    for kind in sequence:
        out.append(by_kind[kind][seen[kind]])
        seen[kind] += 1
    return out


def item_seed(seed: int, item: Item) -> int:
    return int(_unit(seed, "request", item.key) * 2**31) % 2**31


class GroundedParser:
    """The JSON answer of one kind of question; evidence quotes must be non-empty strings."""

    def __init__(self, fields: dict[str, FieldSpec]):
        self.fields = fields
        self.schema = output_schema(fields)
        if "evidence" in self.schema["properties"]:  # a few quotes: small models otherwise repeat one to the limit
            self.schema["properties"]["evidence"]["maxItems"] = MAX_QUOTES
        self._json = JsonAnswerParser(fields)

    def __call__(self, completion: Completion) -> Any:
        value = self._json(completion)
        if "question" in value and not str(value["question"]).strip():
            raise InvalidAnswer("an empty question")
        return value


class GroundedChain:
    """One call per record: the question (and, unless unanswerable, the answer and its evidence)."""

    def __init__(self, recipe: Recipe):
        specs = recipe.task.field_specs
        self.full = GroundedParser({name: specs[name] for name in ("question", "answer", "evidence")})
        self.question_only = GroundedParser({"question": specs["question"]})
        self.steps = ("record",)

    def parser(self, kind: str) -> GroundedParser:
        return self.question_only if kind == "unanswerable" else self.full

    async def complete(self, plan: PlannedRecord, scheduler: Scheduler) -> Finished:
        kind = plan.meta["question_type"]
        outcome = await scheduler.complete(plan.request, self.parser(kind))
        done = Finished()
        done.add(outcome)
        if not outcome.ok:
            done.error, done.failed_step = outcome.error, "record"
            return done
        fields = dict(outcome.value)
        if kind == "unanswerable":
            fields.update(answer=UNANSWERABLE_ANSWER, evidence=[])
        done.fields = {"question": fields["question"], "answer": fields["answer"], "evidence": list(fields["evidence"])}
        return done


def grounded_messages(recipe: Recipe, kind: str, contexts: Sequence[Record], conditions: dict[str, str]) -> list[dict[str, str]]:
    """The prompt of one item: the passage(s), what kind of question, who asks it and how."""
    task = recipe.task
    system = (f"{task.description.rstrip('.')}. You write questions and answers grounded in documents. "
              "Every answer rests on sentences copied word for word from the passages.")
    if task.role:
        system += f" The questions are asked by {task.role}."
    parts = []
    for i, chunk in enumerate(contexts, 1):
        where = " > ".join(x for x in (chunk.meta.get("title"), chunk.meta.get("section")) if x)
        label = f"Passage {i}" if len(contexts) > 1 else "Passage"
        parts.append(f"{label} ({where}):\n{chunk.text()}" if where else f"{label}:\n{chunk.text()}")
    ask = [KIND_INSTRUCTIONS[kind]]
    persona = conditions.get("persona")
    if persona:
        ask.append(f"The question is asked by: {persona}.")
    style = conditions.get("query_style")
    if style:
        ask.append(f"Write the question as {QUERY_STYLES.get(style, style)}.")
    for key, value in conditions.items():
        if key not in ("persona", "query_style", "question_type"):
            ask.append(f"{key.replace('_', ' ').capitalize()}: {value}.")
    if kind == "unanswerable":
        ask.append('Answer with JSON only: {"question": "..."}.')
    else:
        ask.append(f"Then answer it from the passage{'s' if len(contexts) > 1 else ''}, and give as evidence one to "
                   f"{MAX_QUOTES} sentences copied word for word from the passage{'s' if len(contexts) > 1 else ''}. "
                   'Answer with JSON only: {"question": ..., "answer": ..., "evidence": [...]}.')
    return [{"role": "system", "content": system}, {"role": "user", "content": "\n\n".join(parts + [" ".join(ask)])}]


class GroundedGenerator(Generator):
    """Generation over documents: ingest, chunk, link, then one planned item per record (see the module)."""

    def __init__(self, recipe: Recipe, support: Sequence[Record] = (), *, graph: ChunkGraph | None = None, **kwargs: Any):
        super().__init__(recipe, support, **kwargs)
        self.chain = GroundedChain(recipe)  # type: ignore[assignment]
        self.first = None
        self.graph: ChunkGraph | None = graph  # given: the chunks of the documents, already linked
        self.ingest_errors: list[str] = []
        self.documents: list[str] = []
        self.items: list[Item] = []

    @property
    def spec(self) -> DocumentsSpec:
        return self.recipe.documents  # type: ignore[return-value]

    def load(self) -> ChunkGraph:
        """Ingest, chunk and link the documents (once); no document at all is a DataError."""
        if self.graph is None:
            found = ingest(self.spec.paths)
            self.ingest_errors = [f"{e.path}: {e.message}" for e in found.errors]
            if not found.documents:
                first = self.ingest_errors[0] if self.ingest_errors else "nothing found"
                raise DataError(f"documents: no document could be read ({first})")
            self.documents = [d.name for d in found.documents]
            chunks = chunk_documents(found.documents, max_tokens=self.spec.max_tokens, overlap=self.spec.overlap)
            self.graph = build_graph(chunks)
        return self.graph

    async def prepare(self, scheduler: Scheduler, out: Path | None = None) -> None:
        await super().prepare(scheduler, out)
        if out is not None:
            write_records(out / "chunks.parquet", list(self.load().chunks.values()), prompts=False)

    def _setup(self, conditions: Any) -> None:
        super()._setup(conditions)
        graph = self.load()
        self.items = plan_items(graph, self.spec, self.recipe.generation.records, self.recipe.generation.seed)

    def plan_record(self, index: int, **kwargs: Any) -> PlannedRecord:
        self._ready()
        recipe, gen = self.recipe, self.recipe.generation
        item = self.items[index]
        graph = self.load()
        contexts = [graph.chunks[c] for c in item.chunks]
        draws = self.conditions.draws if self.conditions is not None else {}
        conditions = draw_conditions(draws, gen.seed, item.key)  # type: ignore[arg-type]
        conditions["question_type"] = item.kind
        meta = {
            "question_type": item.kind,
            "reference_context_ids": list(item.chunks),
            "reference_contexts": [c.text() for c in contexts],
            "documents": [c.meta.get("document") for c in contexts],
            "sections": [c.meta.get("section") for c in contexts],
            "unanswerable": item.kind == "unanswerable",
        }
        parser = self.chain.parser(item.kind)  # type: ignore[attr-defined]
        request = Request(
            messages=tuple(grounded_messages(recipe, item.kind, contexts, conditions)),
            temperature=gen.temperature,
            max_tokens=gen.max_tokens,
            top_p=gen.top_p,
            seed=item_seed(gen.seed, item),
            stop=self._stop,
            json_schema=parser.schema,
        )
        return PlannedRecord(f"{recipe.name}-{index:06d}", index, None, conditions, [], request, 0, meta)

    def summary(self) -> dict[str, Any]:
        out = super().summary()
        if self.graph is not None:
            out["documents"] = {
                "documents": self.documents,
                "chunks": len(self.graph.chunks),
                "links": len(self.graph.links),
                "errors": self.ingest_errors,
            }
        return out


__all__ = ["GroundedChain", "GroundedGenerator", "Item", "KIND_INSTRUCTIONS", "UNANSWERABLE_ANSWER",
           "grounded_messages", "plan_items"]
