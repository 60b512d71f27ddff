"""What a run over documents covered and how well it is grounded, and its export in Ragas' testset columns.

    summary = grounded_summary(kept, generated, chunks, funnel)
    rows = ragas_rows(kept)       # user_input, reference, reference_contexts, synthesizer_name
    rows = messages_rows(kept)    # {"messages": [user question, assistant answer]} for fine-tuning

The summary holds: coverage of the documents (the share of chunks, and of
sections, cited by at least one kept question, and per document), the
question-type mix (generated and kept), retrieval difficulty (hit@1/5/10
of the reference chunk by each method, for the kept and for every ranked
single-hop question) and the grounding pass rate of each grounding stage
(kept / seen, from the curation funnel). It reads only records' `meta`
(`question_type`, `reference_context_ids`, `retrieval_ranks`) and the
chunks' `meta` (`document`, `section`).
"""

from __future__ import annotations

from collections import Counter
from typing import Any, Sequence

from ..records import Record

GROUNDING_STAGES = ("quote_match", "claim_support", "needs_both_chunks", "retrieval_rank", "unanswerable_check")
SINGLE_HOP = ("single_hop_specific", "single_hop_abstract")


def _section(chunk: Record) -> tuple[str, str]:
    return str(chunk.meta.get("document")), str(chunk.meta.get("section") or "")


def coverage(kept: Sequence[Record], chunks: Sequence[Record]) -> dict[str, Any]:
    """Share of chunks and of sections with at least one kept question citing them, overall and per document."""
    cited = {c for r in kept for c in r.meta.get("reference_context_ids") or []}
    by_id = {c.id: c for c in chunks}
    sections = {_section(c) for c in chunks}
    covered_sections = {_section(by_id[c]) for c in cited if c in by_id}
    per_document: dict[str, dict[str, Any]] = {}
    ordered = sorted(chunks, key=lambda c: (str(c.meta.get("document")), c.meta.get("chunk_index") or 0))
    for chunk in ordered:
        doc = per_document.setdefault(str(chunk.meta.get("document")), {"chunks": 0, "covered": 0, "cells": ""})
        doc["chunks"] += 1
        doc["covered"] += chunk.id in cited
        doc["cells"] += "1" if chunk.id in cited else "0"  # the document's chunks in order: the coverage map
    for doc in per_document.values():
        doc["share"] = round(doc["covered"] / doc["chunks"], 3)
    return {
        "chunks": len(chunks),
        "chunks_covered": sum(c.id in cited for c in chunks),
        "chunk_share": round(sum(c.id in cited for c in chunks) / len(chunks), 3) if chunks else 0.0,
        "sections": len(sections),
        "sections_covered": len(covered_sections),
        "section_share": round(len(covered_sections) / len(sections), 3) if sections else 0.0,
        "documents": per_document,
    }


def hits(records: Sequence[Record], ks: Sequence[int] = (1, 5, 10)) -> dict[str, dict[str, float]]:
    """hit@k of the reference chunk per retrieval method, over single-hop records that were ranked."""
    ranked = [r.meta["retrieval_ranks"] for r in records
              if r.meta.get("question_type") in SINGLE_HOP and isinstance(r.meta.get("retrieval_ranks"), dict)]
    out: dict[str, dict[str, float]] = {}
    methods = sorted({m for ranks in ranked for m in ranks})
    for method in methods:
        values = [ranks[method] for ranks in ranked if ranks.get(method) is not None]
        if values:
            out[method] = {f"hit@{k}": round(sum(v <= k for v in values) / len(values), 3) for k in ks}
            out[method]["n"] = len(values)
    return out


def pass_rates(funnel: Sequence[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """kept / seen of each grounding stage in the curation funnel (a stage listed twice: `name#2`)."""
    out: dict[str, dict[str, Any]] = {}
    for step in funnel:
        if step["stage"] in GROUNDING_STAGES:
            name, n = step["stage"], 2
            while name in out:
                name, n = f"{step['stage']}#{n}", n + 1
            out[name] = {"seen": step["seen"], "kept": step["kept"],
                         "rate": round(step["kept"] / step["seen"], 3) if step["seen"] else None}
    return out


def grounded_summary(kept: Sequence[Record], generated: Sequence[Record], chunks: Sequence[Record],
                     funnel: Sequence[dict[str, Any]]) -> dict[str, Any]:
    return {
        "coverage": coverage(kept, chunks),
        "question_types": {
            "generated": dict(sorted(Counter(r.meta.get("question_type") for r in generated).items())),
            "kept": dict(sorted(Counter(r.meta.get("question_type") for r in kept).items())),
        },
        "retrieval": {"kept_single_hop": hits(kept), "ranked_single_hop": hits(generated)},
        "grounding_pass_rates": pass_rates(funnel),
    }


def ragas_rows(records: Sequence[Record]) -> list[dict[str, Any]]:
    """Kept records in Ragas' testset columns (plus the chunk ids and the quotes, which Ragas ignores)."""
    return [{
        "user_input": r.fields.get("question"),
        "reference": r.fields.get("answer"),
        "reference_contexts": list(r.meta.get("reference_contexts") or []),
        "synthesizer_name": r.meta.get("question_type"),
        "reference_context_ids": list(r.meta.get("reference_context_ids") or []),
        "evidence": list(r.fields.get("evidence") or []),
    } for r in records]


def messages_rows(records: Sequence[Record]) -> list[dict[str, Any]]:
    """Kept records as chat turns for fine-tuning: the question from the user, the answer from the assistant."""
    return [{"messages": [{"role": "user", "content": r.fields.get("question")},
                          {"role": "assistant", "content": r.fields.get("answer")}],
             "question_type": r.meta.get("question_type")} for r in records]


__all__ = ["GROUNDING_STAGES", "coverage", "grounded_summary", "hits", "messages_rows", "pass_rates", "ragas_rows"]
