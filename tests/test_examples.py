"""Every example recipe runs on the embedded model (a few records each) and makes what it says.

Each runs as written except for one line: one llama.cpp thread. On a busy
2-core machine, llama.cpp's threads spin against each other and a second
thread makes generation several times slower, not faster.
"""

from __future__ import annotations

import json

import pyarrow.parquet as pq
import pytest

from conftest import ROOT, run_cli

pytestmark = pytest.mark.slow
pytest.importorskip("llama_cpp")


def run_example(name, tmp_path, limit):
    text = (ROOT / "examples" / f"{name}.yaml").read_text()
    assert "\n  backend: llamacpp\n" in text
    recipe = tmp_path / f"{name}.yaml"
    recipe.write_text(text.replace("\n  backend: llamacpp\n", "\n  backend: llamacpp\n  n_threads: 1\n", 1))
    (tmp_path / "data").symlink_to(ROOT / "examples" / "data")
    (tmp_path / "tools").symlink_to(ROOT / "examples" / "tools")
    out = tmp_path / name
    done = run_cli("run", str(recipe), "--out", str(out), "--limit", str(limit), "--no-progress")
    assert done.returncode == 0, done.stderr[-2000:]
    manifest = json.loads((out / "manifest.json").read_text())
    rows = pq.read_table(out / "generated.parquet").to_pylist()
    assert manifest["status"] == "complete" and rows, manifest["failures"]
    return manifest, rows, out


def meta(row):
    return json.loads(row["meta"]) if row["meta"] else {}


def test_banking77_intents(tmp_path):
    manifest, rows, _ = run_example("banking77", tmp_path, 4)
    labels = set(manifest["recipe"]["task"]["labels"])
    assert all(r["label"] in labels and r["text"] for r in rows)
    assert all(len(r["demonstrations"]) == 2 for r in rows)


def test_rte_pairs_are_json_with_both_fields(tmp_path):
    manifest, rows, _ = run_example("rte_pairs", tmp_path, 3)
    assert all(r["premise"] and r["hypothesis"] and r["label"] in ("entailment", "not_entailment") for r in rows)
    assert manifest["generation"]["answers"]["records"] == 3


def test_qa_with_a_dropped_chain_of_thought(tmp_path):
    manifest, rows, _ = run_example("qa_cot", tmp_path, 2)
    for row in rows:
        assert row["context"] and row["question"] and row["answer"]
        assert "reasoning" not in row and meta(row)["dropped"]["reasoning"]
    assert manifest["model_calls"]["requests_succeeded"] >= 3 * len(rows)


def test_dialogue_role_play(tmp_path):
    manifest, rows, out = run_example("dialogue", tmp_path, 2)
    for row in rows:
        assert [t["role"] for t in row["turns"]] == ["user", "assistant", "user", "assistant"]
        assert row["dialogue"].startswith("User: ")
        assert row["conditions"]["persona"]
    assert (out / "conditions" / "persona.yaml").exists()


def test_multilabel_headlines(tmp_path):
    _, rows, _ = run_example("news_multilabel", tmp_path, 3)
    labels = {"sport", "business", "politics", "technology"}
    assert all(1 <= len(r["label"].split("|")) <= 2 and set(r["label"].split("|")) <= labels for r in rows)


def test_instructions_self_instruct_over_a_concept_tree(tmp_path):
    manifest, rows, out = run_example("instructions", tmp_path, 4)
    tree = (out / "conditions" / "topic.yaml").read_text()
    assert tree.count("\n") >= 4
    rounds = manifest["generation"]["rounds"]
    assert rounds["strategy"] == "self_instruct" and len(rounds["log"]) >= 2
    assert all(r["instruction"] and r["response"] for r in rows)


def test_quiz_free_schema_with_evolution(tmp_path):
    manifest, rows, _ = run_example("quiz_free", tmp_path, 4)
    for row in rows:
        assert isinstance(row["difficulty"], int) and row["question"] and row["answer"]
        assert "; " in row["conditions"]["facts"]
    assert manifest["generation"]["rounds"]["strategy"] == "evol_instruct"


def test_sms_annotation_with_confidences(tmp_path):
    manifest, rows, out = run_example("sms_annotate", tmp_path, 3)
    curated = pq.read_table(out / "curated.parquet").to_pylist()
    for row in curated:
        assert row["label"] in ("spam", "ham")
        assert 0 < row["self_consistency_score"] <= 1
        assert 0 < row["label_logprob_score"] <= 1
    assert manifest["generation"]["annotated"] == 3
    assert manifest["model_calls"]["requests_succeeded"] + manifest["model_calls"]["requests_failed"] == 15
    rejected = pq.read_table(out / "rejected.parquet").to_pylist()
    assert all(row["support_agree_flag"] == "keep" for row in curated)
    assert all(row["support_agree_flag"] == "drop" for row in rejected)
    assert len(curated) + len(rejected) == len(rows)


def test_sms_annotation_weighed_by_the_models_confusion_on_the_seeds(tmp_path):
    """The first 8 inputs: 4 seeds' texts (the calibration) and 4 unlabelled messages, one greedy answer each."""
    manifest, rows, out = run_example("sms_annotate_posterior", tmp_path, 8)
    seeds = {json.loads(line)["text"]: json.loads(line)["label"] for line in (ROOT / "examples/data/sms_seeds.jsonl").open()}
    assert len(rows) == 8 and sum(r["text"] in seeds for r in rows) == 4
    for row in rows:  # never shown the message itself as a demonstration
        prompt = json.loads(row["prompt"])
        assert sum(row["text"] in m["content"] for m in prompt) == 1
    notes = {step["stage"]: step for step in manifest["curation"]["funnel"]}["support_posterior"]["notes"]
    said_on_seeds = {r["text"]: r["label"] for r in rows if r["text"] in seeds}
    assert notes["calibration_matched"] == 4
    assert sum(n for said in notes["confusion"].values() for n in said.values()) == 4
    assert notes["model_right_on_support"] == sum(seeds[t] == label for t, label in said_on_seeds.items()) / 4
    curated = pq.read_table(out / "curated.parquet").to_pylist()
    assert len(curated) == 4 and not any(r["text"] in seeds for r in curated)
    for row in curated:
        assert row["label"] in ("spam", "ham") and 0 < row["weight"] <= 1
        assert row["support_posterior_flag"] in ("relabel", "reweight")


def test_sms_augmentation_keeps_labels_and_checks_rewrites(tmp_path):
    manifest, rows, out = run_example("sms_augment", tmp_path, 4)
    assert all(meta(r)["origin"] == "augment" and r["text"] != meta(r)["source_text"] for r in rows)
    seeds = {json.loads(line)["text"]: json.loads(line)["label"] for line in (ROOT / "examples/data/sms_seeds.jsonl").open()}
    assert all(r["label"] == seeds[meta(r)["source_text"]] for r in rows)
    funnel = {step["stage"]: step for step in manifest["curation"]["funnel"]}
    assert funnel["augment_check"]["seen"] >= 1
    assert funnel["support_choice"]["notes"]["chosen"] in ("none", "augment")


def test_chat_evol_messages_exported_as_a_dataset_dict(tmp_path):
    import datasets

    manifest, rows, out = run_example("chat_evol", tmp_path, 4)
    rounds = manifest["generation"]["rounds"]
    assert rounds["strategy"] == "evol_instruct" and len(rounds["log"]) == 2
    evolution = rounds["evolution"]
    assert evolution["evolved"] == sum(1 for r in rows if "evolution" in meta(r))
    assert sum(evolution["eliminated"].values()) == sum(1 for r in rows if meta(r).get("eliminated"))
    for row in rows:
        roles = [m["role"] for m in row["messages"]]
        assert roles == ["system", "user", "assistant"] and row["conditions"]["persona"] in row["messages"][0]["content"]
    done = run_cli("export", str(out), "--format", "messages", "--out", str(tmp_path / "sft"))
    assert done.returncode == 0, done.stderr[-2000:]
    loaded = datasets.load_from_disk(str(tmp_path / "sft"))["train"]
    curated = pq.read_table(out / "curated.parquet").to_pylist()
    assert [r["messages"] for r in loaded] == [r["messages"] for r in curated]


def test_preference_pairs_on_the_embedded_model_by_the_math_verifier(tmp_path):
    out, prompts = tmp_path / "pairs", tmp_path / "prompts.jsonl"
    prompts.write_text("".join((ROOT / "examples" / "data" / "pair_prompts.jsonl").read_text().splitlines(True)[:3]))
    done = run_cli("pairs", str(prompts), "--out", str(out), "--scorer", "math_answer", "--max-tokens", "24")
    assert done.returncode == 0, done.stderr[-2000:]
    manifest = json.loads((out / "manifest.json").read_text())
    counts = manifest["preference"]["counts"]
    assert counts["prompts"] == 3 and counts["responses"] == 6
    assert counts["pairs"] + counts["ties"] + counts["below_margin"] + counts["too_few_responses"] == 3
    for row in pq.read_table(out / "curated.parquet").to_pylist():
        assert row["score_chosen"] == 1.0 and row["score_rejected"] == 0.0 and row["chosen"] != row["rejected"]
    (verifier,) = manifest["curation"]["funnel"]
    assert verifier["stage"] == "math_answer" and 0 < verifier["seen"] <= 6 - counts["failed_responses"]


def test_documents_qa_over_the_bundled_documents(tmp_path):
    (tmp_path / "documents").symlink_to(ROOT / "examples" / "documents")
    manifest, rows, out = run_example("documents_qa", tmp_path, 3)
    assert len(rows) + len(manifest["failures"]["records"]) == 3
    for row in rows:
        info = meta(row)
        assert info["question_type"] in ("single_hop_specific", "single_hop_abstract", "multi_hop", "comparison", "unanswerable")
        assert info["reference_contexts"] and row["question"]
    assert manifest["generation"]["documents"]["errors"] == []  # problems/ is not in the globs
    figures = json.loads((out / "documents.json").read_text())
    assert figures["grounding_pass_rates"]["quote_match"]["seen"] == len(rows)
    kept = pq.read_table(out / "curated.parquet").to_pylist()
    for row in kept:  # every kept answer's quotes were found in its chunks
        if not meta(row).get("unanswerable"):
            assert row["quote_match_score"] >= 0.9
    assert len((out / "ragas.jsonl").read_text().splitlines()) == len(kept)


def test_tool_use_trajectories_with_real_tool_results(tmp_path):
    pytest.importorskip("mcp")
    manifest, rows, out = run_example("tool_use", tmp_path, 3)
    funnel = {step["stage"]: step for step in manifest["curation"]["funnel"]}
    assert list(funnel) == ["tool_format", "tool_execution", "tool_semantic"]
    assert funnel["tool_format"]["seen"] == 3
    assert set(manifest["generation"]["tools"].values()) == {"python", "schema", "mcp"}
    for row in rows:
        messages = json.loads(row["messages"])
        assert messages[0] == {"role": "user", "content": row["query"]} and messages[-1]["role"] == "assistant"
        calls = meta(row)["tool_calls"]
        tool_messages = [m for m in messages if m["role"] == "tool"]
        assert len(tool_messages) == len(calls)
        for call, message in zip(calls, tool_messages):  # what the tool really returned is what the model read
            if call["status"] == "ok":
                assert message["content"] == call["content"]
