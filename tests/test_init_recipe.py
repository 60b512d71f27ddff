"""`synthloom init --from FILE`: a recipe from a labelled file that validates and runs; bad files fail in one line."""

from __future__ import annotations

import csv
import itertools
import json

import pytest

from conftest import run_cli
from synthloom.execute.init_recipe import init_recipe
from synthloom.execute.run import run
from synthloom.recipe import load_recipe
from synthloom.records import load_dataset, read_rows

WEATHER = [f"{a} {b}." for a, b in itertools.product(
    ["Heavy rain", "A cold wind", "Thick fog", "Bright sunshine", "A thunderstorm", "Snowfall"],
    ["is expected over the hills tonight", "will reach the coast by morning", "is forecast for the weekend",
     "kept temperatures low all day", "will clear by the afternoon"])]
COOKING = [f"{a} {b}." for a, b in itertools.product(
    ["Slowly fry the onions", "Whisk the eggs", "Knead the dough", "Simmer the tomato sauce", "Roast the vegetables",
     "Season the soup"],
    ["before adding the garlic", "until it turns golden", "for ten minutes on low heat", "with a pinch of salt",
     "and serve it warm"])]


def write_csv(path, rows, header=("id", "sentence", "category")):
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)
    return path


def labelled_rows():
    return [(i, t, "weather") for i, t in enumerate(WEATHER)] + [(100 + i, t, "cooking") for i, t in enumerate(COOKING)]


def test_init_writes_a_recipe_that_validates_with_support_from_the_training_part_only(tmp_path):
    data = write_csv(tmp_path / "train.csv", labelled_rows())
    out = tmp_path / "out" / "recipe.yaml"
    done = run_cli("init", "--from", str(data), "--out", str(out), "--per-class", "4")
    assert done.returncode == 0, done.stderr
    text = out.read_text()
    assert "stage: support_filter" in text and "stage: support_mix" in text and '"weather": ""' in text
    recipe = load_recipe(out)
    assert recipe.task.label_names == ["cooking", "weather"]
    assert list(recipe.task.fields) == ["sentence"]
    assert recipe.demonstrations.selection == "nearest"
    downstream = next(s for s in recipe.evaluation if s.stage == "downstream")
    assert downstream.settings == ["synthetic", "few_real_plus_synthetic"] and downstream.few_per_class == 4
    assert downstream.test.split.part == "test" and downstream.test.label_field == "category"
    support = read_rows(out.with_name("recipe.support.jsonl"))
    assert sorted(r["label"] for r in support) == ["cooking"] * 4 + ["weather"] * 4
    test_texts = {r.text() for r in load_dataset(downstream.test)}
    assert test_texts and not ({r["sentence"] for r in support} & test_texts)
    assert run_cli("validate", str(out)).returncode == 0
    # Seeded: the same command writes the same support set.
    again = init_recipe(data, tmp_path / "again.yaml", per_class=4)
    assert read_rows(again.support) == support


def test_init_with_a_test_file_and_other_formats(tmp_path):
    train = tmp_path / "train.jsonl"
    train.write_text("".join(json.dumps({"text": t, "label": l}) + "\n" for _, t, l in labelled_rows()))
    test = write_csv(tmp_path / "test.csv", [(1, "Fog over the hills.", "weather"), (2, "Boil the pasta.", "cooking")],
                     header=("id", "text", "label"))
    result = init_recipe(train, tmp_path / "r.yaml", test=test, per_class=3)
    downstream = next(s for s in load_recipe(result.recipe).evaluation if s.stage == "downstream")
    assert downstream.test.path == str(test) and downstream.test.split is None
    assert result.train_rows == len(WEATHER) + len(COOKING)

    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"message": [t for _, t, _ in labelled_rows()], "y": [l for *_, l in labelled_rows()]}),
                   tmp_path / "d.parquet")
    result = init_recipe(tmp_path / "d.parquet", tmp_path / "p.yaml", per_class=2)
    assert list(load_recipe(result.recipe).task.fields) == ["message"]

    # A tab-separated file without a header (like the SMS Spam Collection), named with --columns.
    (tmp_path / "SMS").write_text("".join(f"{l}\t{t}\n" for _, t, l in labelled_rows()), encoding="utf-8")
    done = run_cli("init", "--from", str(tmp_path / "SMS"), "--columns", "label,text", "--out", str(tmp_path / "s.yaml"))
    assert done.returncode == 0, done.stderr
    downstream = next(s for s in load_recipe(tmp_path / "s.yaml").evaluation if s.stage == "downstream")
    test_rows = load_dataset(downstream.test)
    assert downstream.test.columns == ["label", "text"] and {r.label for r in test_rows} == {"weather", "cooking"}


def test_init_reads_a_saved_hugging_face_dataset(tmp_path):
    datasets = pytest.importorskip("datasets")
    features = datasets.Features({"text": datasets.Value("string"), "label": datasets.ClassLabel(names=["cooking", "weather"])})
    rows = {"text": [t for _, t, _ in labelled_rows()], "label": [1 if l == "weather" else 0 for *_, l in labelled_rows()]}
    datasets.Dataset.from_dict(rows, features=features).save_to_disk(str(tmp_path / "hf"))
    result = init_recipe(tmp_path / "hf", tmp_path / "h.yaml", per_class=2)
    assert load_recipe(result.recipe).task.label_names == ["cooking", "weather"]


@pytest.mark.parametrize(
    "content, message",
    [
        ("", "{path}:1: no rows (the file is empty)"),
        ("id,text\n1,hello there\n2,good morning\n", "{path}:1: no label column (columns: id, text); name it with --label-field"),
        ("text,label\nhello there,a\ngood morning,a\n", "{path}:3: column 'label' has one label ('a') in all 2 rows; a classifier needs two or more"),
        ("text,label\nhello there,a\ngood morning,\n", "{path}:3: empty label in column 'label'"),
        (b"text,label\nhello,a\nbad \xff byte,b\n", "{path}:3: not UTF-8 text (byte 23)"),
    ],
    ids=["empty", "no-label", "one-label", "empty-label", "not-utf8"],
)
def test_bad_files_get_one_line_naming_file_and_line(tmp_path, content, message):
    path = tmp_path / "bad.csv"
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    done = run_cli("init", "--from", str(path), "--out", str(tmp_path / "r.yaml"))
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [f"error: {message.format(path=path)}"]
    assert not (tmp_path / "r.yaml").exists()


def test_the_written_recipe_runs(tmp_path):
    """A short run with the fake backend answering topic sentences (some under the wrong label)."""
    data = write_csv(tmp_path / "train.csv", labelled_rows())
    result = init_recipe(data, tmp_path / "recipe.yaml", per_class=4)
    text = result.recipe.read_text()
    answers = ["Light rain is expected over the coast tonight.", "Fry the garlic until it turns golden brown.",
               "A strong wind will clear the fog by noon.", "Knead the bread dough with a pinch of salt.",
               "Snow is forecast for the hills on Sunday.", "Roast the potatoes and serve them warm."] * 3
    text = text.replace("backend: llamacpp", "backend: fake\n  responses: " + json.dumps(answers))
    result.recipe.write_text(text)
    out = run(result.recipe, tmp_path / "run", limit=12)
    stages = [step["stage"] for step in out.manifest["curation"]["funnel"]]
    assert stages[-3:] == ["support_filter", "support_weight", "support_mix"]
    assert out.curated and all("support_mix" in r.flags for r in out.curated)
    downstream = out.metrics["downstream"]
    assert {"synthetic", "few_real", "few_real_plus_synthetic"} <= set(downstream["settings"])
    assert downstream["settings"]["few_real"]["n_train"] == 8


@pytest.mark.slow
def test_the_written_recipe_runs_on_the_embedded_model(tmp_path):
    data = write_csv(tmp_path / "train.csv", labelled_rows())
    result = init_recipe(data, tmp_path / "recipe.yaml", per_class=4, records=6)
    text = result.recipe.read_text().replace("max_tokens: 96", "max_tokens: 32")
    result.recipe.write_text(text)
    out = run(result.recipe, tmp_path / "run", limit=6)
    assert out.manifest["counts"]["generated"] == 6
    assert "downstream" in out.metrics or any("downstream" in n for n in out.manifest.get("notes", []))


def test_the_commented_choices_validate_when_turned_on(tmp_path):
    """The recipe's commented alternatives (automatic choice, augmentation) are valid as written."""
    data = write_csv(tmp_path / "train.csv", labelled_rows())
    out = tmp_path / "recipe.yaml"
    init_recipe(data, out, per_class=4)
    text = out.read_text()
    lines = text.splitlines()
    support = [i for i, line in enumerate(lines) if line.strip().startswith("- stage: support_")]
    on = [line for i, line in enumerate(lines) if i not in support]
    on = [line.replace("# ", "", 1) if line.lstrip().startswith(("# - stage: support_choice", "#   factors:",
                                                                  "# - stage: augment_check", "# augmentation:",
                                                                  "#   per_example:", "# label_weights:")) else line for line in on]
    out.write_text("\n".join(on) + "\n")
    recipe = load_recipe(out)
    # the training part's class mix, as counts of its rows
    test = next(s for s in recipe.evaluation if s.stage == "downstream").test
    train = load_dataset(test.model_copy(update={"split": test.split.model_copy(update={"part": "train"})}))
    assert recipe.task.label_weights == {label: sum(r.label == label for r in train) for label in ("cooking", "weather")}
    stages = [s.stage for s in recipe.curation]
    assert stages[-2:] == ["augment_check", "support_choice"] and recipe.augmentation.per_example == 2
    assert recipe.curation[-1].factors == [0.3, 1.0]
