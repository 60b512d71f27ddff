"""`synthloom curate` on existing data, as a user runs it; bad inputs; the funnel in a run's manifest."""

from __future__ import annotations

import json

import pyarrow.parquet as pq
import pytest

import synthloom

from conftest import run_cli

STAGES = """\
text_field: text
label_field: label
labels: [spam, ham]
curation:
  - stage: exact_dedup
  - stage: length_filter
    min_chars: 8
  - stage: label_leak_filter
"""

ROWS = [
    {"text": "Win a free holiday, text WIN to 80082", "label": "spam"},
    {"text": "win a FREE holiday - text win to 80082!", "label": "spam"},
    {"text": "ok", "label": "ham"},
    {"text": "This is spam, reply STOP", "label": "spam"},
    {"text": "Are you coming to the match tonight?", "label": "ham"},
]


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.fixture
def stages(tmp_path):
    path = tmp_path / "stages.yaml"
    path.write_text(STAGES)
    return path


def test_curate_a_jsonl_file(tmp_path, stages):
    data = write_jsonl(tmp_path / "data.jsonl", ROWS)
    done = run_cli("curate", str(data), "--stages", str(stages), "--out", str(tmp_path / "out"), "--no-progress")
    assert done.returncode == 0, done.stderr
    assert "2 of 5 records kept" in done.stdout
    assert "label_leak_filter" in done.stdout
    kept = pq.read_table(tmp_path / "out" / "curated.parquet").to_pylist()
    assert [r["text"] for r in kept] == [ROWS[0]["text"], ROWS[4]["text"]]
    assert kept[0]["id"] == "data-0" and kept[0]["label"] == "spam"
    rejected = pq.read_table(tmp_path / "out" / "rejected.parquet").to_pylist()
    reasons = {r["id"]: r for r in rejected}
    assert reasons["data-1"]["exact_dedup_reason"] == "duplicate of data-0"
    assert reasons["data-3"]["label_leak_filter_flag"] == "drop"
    summary = json.loads((tmp_path / "out" / "curation.json").read_text())
    assert [s["stage"] for s in summary["curation"]["funnel"]] == ["exact_dedup", "length_filter", "label_leak_filter"]
    assert summary["counts"] == {"records": 5, "curated": 2, "rejected": 3}
    assert summary["versions"]["synthloom"] and "python" in summary["versions"]


def test_curate_a_csv_with_other_column_names(tmp_path, stages):
    data = tmp_path / "data.csv"
    data.write_text("message,category\nhello there my friend,ham\nhello there my friend,ham\n")
    done = run_cli("curate", str(data), "--stages", str(stages), "--out", str(tmp_path / "out"),
                   "--text-field", "message", "--label-field", "category", "--no-progress")
    assert done.returncode == 0, done.stderr
    assert "1 of 2 records kept" in done.stdout


def test_curate_a_saved_hugging_face_dataset(tmp_path, stages):
    datasets = pytest.importorskip("datasets")
    dataset = datasets.Dataset.from_list(ROWS)
    datasets.DatasetDict({"train": dataset, "test": dataset.select([4])}).save_to_disk(str(tmp_path / "hf"))
    done = run_cli("curate", str(tmp_path / "hf"), "--stages", str(stages), "--out", str(tmp_path / "out"), "--no-progress")
    assert done.returncode == 0, done.stderr
    assert "2 of 5 records kept" in done.stdout
    done = run_cli("curate", str(tmp_path / "hf"), "--stages", str(stages), "--out", str(tmp_path / "out2"),
                   "--split", "test", "--no-progress")
    assert done.returncode == 0 and "1 of 1 records kept" in done.stdout
    done = run_cli("curate", str(tmp_path / "hf"), "--stages", str(stages), "--out", str(tmp_path / "out3"),
                   "--split", "validation", "--no-progress")
    assert done.returncode == 2
    assert done.stderr.strip() == f"error: {tmp_path / 'hf'}: choose a split with --split (train, test)"


def test_curate_with_a_recipe_uses_its_stages(tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text(
        "name: r\nmodel: {backend: fake}\ntask: {description: notes, labels: [spam, ham]}\n"
        "curation:\n  - stage: length_filter\n    min_chars: 10\n"
    )
    data = write_jsonl(tmp_path / "data.jsonl", ROWS)
    done = run_cli("curate", str(data), "--recipe", str(recipe), "--out", str(tmp_path / "out"), "--no-progress")
    assert done.returncode == 0, done.stderr
    assert "4 of 5 records kept" in done.stdout


def one_line_error(done):
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in done.stderr
    return lines[0]


def test_missing_column(tmp_path, stages):
    data = write_jsonl(tmp_path / "data.jsonl", [{"body": "x", "label": "ham"}])
    line = one_line_error(run_cli("curate", str(data), "--stages", str(stages), "--out", str(tmp_path / "o")))
    assert line == f"error: {data}: no column 'text' (columns: body, label)"
    assert not (tmp_path / "o").exists()


def test_empty_file(tmp_path, stages):
    data = tmp_path / "empty.jsonl"
    data.write_text("")
    line = one_line_error(run_cli("curate", str(data), "--stages", str(stages), "--out", str(tmp_path / "o")))
    assert line == f"error: {data}: no rows (empty file)"


def test_non_utf8_text_names_the_line(tmp_path, stages):
    data = tmp_path / "latin1.csv"
    data.write_bytes("text,label\nfine,ham\ncaf\xe9 au lait,ham\n".encode("latin-1"))
    line = one_line_error(run_cli("curate", str(data), "--stages", str(stages), "--out", str(tmp_path / "o")))
    assert line.startswith(f"error: {data}:3: not UTF-8 text")


def test_bad_stages_file_names_file_line_and_key(tmp_path):
    data = write_jsonl(tmp_path / "data.jsonl", ROWS)
    stages = tmp_path / "bad.yaml"
    stages.write_text("curation:\n  - stage: near_dedup\n    num_perm: 100\n    bands: 16\n")
    line = one_line_error(run_cli("curate", str(data), "--stages", str(stages), "--out", str(tmp_path / "o")))
    assert line.startswith(f"error: {stages}:2: curation[0]:") and "multiple of bands" in line
    stages.write_text("curation:\n  - stage: novelty\n    treshold: 0.5\n")
    line = one_line_error(run_cli("curate", str(data), "--stages", str(stages), "--out", str(tmp_path / "o")))
    assert line == f"error: {stages}:3: curation[0].treshold: unknown key"


def test_stages_or_recipe_is_required(tmp_path):
    data = write_jsonl(tmp_path / "data.jsonl", ROWS)
    line = one_line_error(run_cli("curate", str(data), "--out", str(tmp_path / "o")))
    assert "--recipe" in line and "--stages" in line


def test_run_manifest_funnel_shows_relabel_and_reweight_with_reasons(tmp_path):
    (tmp_path / "seeds.jsonl").write_text("")
    recipe = tmp_path / "r.yaml"
    recipe.write_text(
        "name: r\nmodel: {backend: fake}\ntask: {description: notes, labels: [a, b]}\n"
        "generation: {records: 8}\n"
        "curation:\n"
        "  - stage: self_consistency\n    samples: 2\n    model: {backend: fake, responses: [a]}\n"
        "  - stage: reweight\n    sources: [self_consistency]\n"
        "  - stage: teacher\n    review: [self_consistency]\n    below: 0.5\n    model: {backend: fake, responses: [a]}\n"
    )
    result = synthloom.run(recipe, tmp_path / "out", progress=False)
    funnel = {step["stage"]: step for step in result.manifest["curation"]["funnel"]}
    assert funnel["reweight"]["reweighted"] == 8
    assert funnel["teacher"]["relabelled"] == 4  # the records labelled b
    assert {e["flag"] for e in funnel["teacher"]["examples"]} == {"relabel"}
    assert "the teacher says a, not b" in funnel["teacher"]["examples"][0]["reason"]
    assert any(e["flag"] == "reweight" and "weight" in e["reason"] for e in funnel["reweight"]["examples"])
    rows = pq.read_table(tmp_path / "out" / "curated.parquet").to_pylist()
    assert {r["label"] for r in rows} == {"a"}
    assert sorted({round(r["weight"], 6) for r in rows}) == [round(0.1 / 0.55, 6), round(1 / 0.55, 6)]
    again = synthloom.run(recipe, tmp_path / "out", progress=False)
    assert again.manifest["curation"] == result.manifest["curation"]


def test_the_curation_example_runs_and_fixes_its_planted_problems(tmp_path):
    from conftest import ROOT

    done = run_cli("curate", str(ROOT / "examples" / "data" / "messy_sms.jsonl"),
                   "--stages", str(ROOT / "examples" / "curate_stages.yaml"), "--out", str(tmp_path / "out"), "--no-progress")
    assert done.returncode == 0, done.stderr
    rejected = {r["id"] for r in pq.read_table(tmp_path / "out" / "rejected.parquet").to_pylist()}
    assert rejected == {"sms-30", "sms-31", "sms-32", "sms-33", "sms-34", "sms-35"}  # the planted junk
    kept = {r["id"]: r for r in pq.read_table(tmp_path / "out" / "curated.parquet").to_pylist()}
    relabelled = {i for i, r in kept.items() if r["cross_partition_flag"] == "relabel"}
    assert relabelled == {"sms-36", "sms-37", "sms-38", "sms-39"}  # the planted wrong labels
    assert [kept[i]["label"] for i in sorted(relabelled)] == ["spam", "ham", "spam", "ham"]
    assert abs(sum(r["weight"] for r in kept.values()) / len(kept) - 1.0) < 1e-9


def test_several_inputs_are_one_set_for_the_automatic_choice(tmp_path):
    """A generation run, an augmentation run and an annotation run, each with its own ids (the same
    ones), curated together: support_choice sees all three kinds, every id stays unique and traceable."""
    from synthloom.records import Record, write_records

    from test_support_curation import TOPICS, make_data

    support, _, synthetic, _ = make_data(tmp_path, per_class=6, planted=0)
    third = len(synthetic) // 3
    kinds = {"run": synthetic[:third], "augment": synthetic[third:2 * third], "pool": synthetic[2 * third:]}
    inputs = []
    for name, records in kinds.items():
        made = [Record(f"r{i}", dict(r.fields), r.label) for i, r in enumerate(records)]  # every run counts from r0
        for r in made:
            if name == "augment":
                r.meta.update(origin="augment", source_text="Heavy rain is expected over the hills tonight.")
            elif name == "pool":
                r.meta["origin"] = "pool"
        (tmp_path / name).mkdir()
        inputs.append(str(write_records(tmp_path / name / "curated.parquet", made, prompts=False)))
    recipe = tmp_path / "choice.yaml"
    recipe.write_text(
        "name: choice\nmodel: {backend: fake}\n"
        "task: {description: short texts about the weather or cooking, fields: {text: a sentence}, "
        f"labels: [{', '.join(TOPICS)}]}}\n"
        f"demonstrations: {{path: {support.name}, k: 0}}\n"
        "curation:\n  - stage: support_choice\n    candidates: [none, plain, augment, pool, self+plain]\n    factors: [1.0]\n"
    )
    done = run_cli("curate", *inputs, "--recipe", str(recipe), "--out", str(tmp_path / "out"), "--no-progress")
    assert done.returncode == 0, done.stderr
    assert f"{len(synthetic)} records had an id another input also uses" in done.stdout
    summary = json.loads((tmp_path / "out" / "curation.json").read_text())
    assert [d.split("/")[-2] for d in summary["data"]] == ["run", "augment", "pool"]
    assert summary["counts"]["records"] == len(synthetic)
    notes = summary["curation"]["funnel"][0]["notes"]
    assert set(notes["scores"]) == {"none x1", "plain x1", "augment x1", "pool x1", "self+plain x1"}
    assert notes["candidate_sizes"]["plain"] > 0 and notes["candidate_sizes"]["pool"] > 0
    # the combination: every pool record (self-training labels) and the generated records the folds kept
    assert notes["candidate_sizes"]["self+plain"] == notes["candidate_sizes"]["plain"] + len(kinds["pool"])
    rows = pq.read_table(tmp_path / "out" / "curated.parquet").to_pylist() + \
        pq.read_table(tmp_path / "out" / "rejected.parquet").to_pylist()
    ids = [r["id"] for r in rows]
    assert len(ids) == len(set(ids)) == len(synthetic)
    assert {i.split(":")[0] for i in ids} == {"run", "augment", "pool"}
