"""The benchmark registry: every entry, local copies in each layout, saved datasets, clear failures."""

from __future__ import annotations

import typing

import pytest

from synthloom.evaluate.benchmarks import (
    BENCHMARKS,
    BenchmarkUnavailable,
    final_answer,
    load_benchmark,
    restrict_labels,
    score_generative,
)
from synthloom.recipe.evaluation import BenchmarkName


def test_the_registry_covers_the_surveys_table_and_the_recipe_names():
    assert set(BENCHMARKS) == {
        "sms_spam", "ag_news", "imdb", "go_emotions", "clinc150", "banking77", "fewrel", "qnli", "rte",
        "adversarial_qa", "truthful_qa", "math", "toolbench", "niv2", "bigbench",
    }
    assert set(typing.get_args(BenchmarkName)) == set(BENCHMARKS)
    for entry in BENCHMARKS.values():
        assert "/" in entry.hf_id and entry.inputs and entry.metric
        assert entry.trainable == (entry.kind in ("classification", "pair"))


def test_local_copies_in_the_shared_data_layouts(tmp_path):
    sms = tmp_path / "sms"
    sms.mkdir()
    lines = [f"{'spam' if i % 4 == 0 else 'ham'}\tmessage number {i}" for i in range(40)]
    (sms / "SMSSpamCollection").write_text("\n".join(lines) + "\n")
    train, test = load_benchmark("sms_spam", "train", sms), load_benchmark("sms_spam", "test", sms)
    assert len(train) == 32 and len(test) == 8  # the seeded, stratified 80/20 split
    assert {r.label for r in test} == {"spam", "ham"} and not {r.id for r in train} & {r.id for r in test}
    assert [r.id for r in load_benchmark("sms_spam", "test", sms)] == [r.id for r in test]

    ag = tmp_path / "ag"
    ag.mkdir()
    (ag / "test.csv").write_text('"3","Stocks up","Markets rose today."\n"2","Cup final","The team won."\n')
    records = load_benchmark("ag_news", "test", ag)
    assert [r.label for r in records] == ["Business", "Sports"]
    assert records[0].fields == {"text": "Stocks up. Markets rose today."}
    with pytest.raises(BenchmarkUnavailable, match="no 'train' split"):
        load_benchmark("ag_news", "train", ag)

    rte = tmp_path / "rte"
    rte.mkdir()
    header = "sentence1\tsentence2\tlabel\tidx\n"
    (rte / "train.tsv").write_text(header + "A man sleeps.\tA person rests.\t0\t0\nIt rains.\tIt is dry.\t1\t1\n")
    (rte / "dev.tsv").write_text(header + "Cats purr.\tAnimals make sounds.\t0\t0\n")
    pairs = load_benchmark("rte", "train", rte)
    assert pairs[1].fields == {"sentence1": "It rains.", "sentence2": "It is dry."}
    assert [r.label for r in pairs] == ["entailment", "not_entailment"]
    assert len(load_benchmark("rte", "test", rte)) == 1


def test_a_folder_of_split_files_and_a_single_file(tmp_path):
    folder = tmp_path / "clinc"
    folder.mkdir()
    (folder / "train.jsonl").write_text('{"text": "book a flight", "intent": "book_flight"}\n{"text": "what time is it", "intent": "time"}\n')
    (folder / "test.jsonl").write_text('{"text": "fly me to rome", "intent": "book_flight"}\n')
    assert [r.label for r in load_benchmark("clinc150", "test", folder)] == ["book_flight"]
    with pytest.raises(BenchmarkUnavailable, match="neither its own layout"):
        load_benchmark("clinc150", "test", tmp_path)


def test_a_saved_hugging_face_dataset_with_class_labels(tmp_path):
    datasets = pytest.importorskip("datasets")
    features = datasets.Features({"text": datasets.Value("string"), "label": datasets.ClassLabel(names=["activate_my_card", "card_arrival"])})
    data = datasets.DatasetDict({
        "train": datasets.Dataset.from_dict({"text": ["how do I activate it", "where is my card"], "label": [0, 1]}, features=features),
        "test": datasets.Dataset.from_dict({"text": ["card not here yet"], "label": [1]}, features=features),
    })
    data.save_to_disk(str(tmp_path / "banking"))
    records = load_benchmark("banking77", "test", tmp_path / "banking")
    assert [(r.text(), r.label) for r in records] == [("card not here yet", "card_arrival")]
    glue = datasets.Features({"sentence1": datasets.Value("string"), "sentence2": datasets.Value("string"),
                              "label": datasets.ClassLabel(names=["entailment", "not_entailment"])})
    datasets.DatasetDict({"validation": datasets.Dataset.from_dict(
        {"sentence1": ["a", "b"], "sentence2": ["c", "d"], "label": [1, -1]}, features=glue)}).save_to_disk(str(tmp_path / "rte"))
    rte = load_benchmark("rte", "test", tmp_path / "rte")  # "test" is GLUE's validation split; label -1 rows are unlabelled
    assert [(r.fields, r.label) for r in rte] == [({"sentence1": "a", "sentence2": "c"}, "not_entailment")]


def test_neither_a_local_copy_nor_the_hub_is_one_clear_line(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    with pytest.raises(BenchmarkUnavailable) as info:
        load_benchmark("go_emotions")
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith("benchmark go_emotions: no local copy given")
    assert "google-research-datasets/go_emotions (simplified)" in message
    with pytest.raises(BenchmarkUnavailable, match="not found"):
        load_benchmark("imdb", path=tmp_path / "missing")
    with pytest.raises(BenchmarkUnavailable, match="unknown benchmark 'mnist'"):
        load_benchmark("mnist")


def test_restricting_to_the_most_frequent_labels_is_a_fixed_rule(tmp_path):
    from synthloom.records import Record

    records = [Record(id=str(i), fields={"text": "x"}, label=label) for i, label in enumerate("aaabbbccd")]
    kept, labels = restrict_labels(records, 2)
    assert labels == ["a", "b"]  # a, b and c have 3 each: ties go alphabetically
    assert {r.label for r in kept} == {"a", "b"}


def test_generative_scoring():
    assert final_answer("so the answer is $\\boxed{\\frac{1}{2}}$.") == "\\frac{1}{2}"
    out = score_generative(["The Eiffel Tower", "paris france"], [["eiffel tower"], ["Paris"]])
    assert out["exact_match"] == 0.5 and out["token_f1"] == pytest.approx((1 + 2 / 3) / 2)
    boxed = score_generative(["we get \\boxed{4}"], [["2+2 = \\boxed{4}"]], boxed=True)
    assert boxed["exact_match"] == 1.0
