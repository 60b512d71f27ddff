"""`synthloom validate` reads every file a recipe names, as a run would, before any model is called.

Each case writes a recipe and real data files into a temporary folder and
runs the command's entry point (`synthloom.cli.main`, in this process to stay
fast; one case through a subprocess, as a user runs it). A problem is one
line on stderr, `file:line: problem`, with exit status 2.
"""

from __future__ import annotations

import sys

import pytest

from conftest import ROOT, run_cli
from synthloom.cli import main

RECIPE = """\
name: r
model: {backend: fake}
task: {description: notes, labels: [a, b]}
demonstrations: {path: seeds.jsonl}
evaluation:
  - stage: downstream
    test: {path: test.csv}
"""
SEEDS = '{"text": "one", "label": "a"}\n{"text": "two", "label": "b"}\n'
TEST = 'text,label\nhello,a\n"a cell over\ntwo lines",b\n'


def validate(folder, capsys, recipe="r.yaml"):
    """Exit status, stdout and stderr lines of `synthloom validate` on a recipe in `folder`."""
    with pytest.raises(SystemExit) as exit_:
        main(["validate", str(folder / recipe)])
        sys.exit(0)
    out, err = capsys.readouterr()
    return exit_.value.code, out, err.strip().splitlines()


@pytest.fixture
def folder(tmp_path):
    (tmp_path / "r.yaml").write_text(RECIPE)
    (tmp_path / "seeds.jsonl").write_text(SEEDS)
    (tmp_path / "test.csv").write_text(TEST)
    return tmp_path


def test_a_good_recipe_reads_its_files(folder, capsys):
    code, out, err = validate(folder, capsys)
    assert code == 0 and err == []
    assert f"read demonstrations: {folder / 'seeds.jsonl'}, 2 rows" in out
    assert f"read evaluation[0].test: {folder / 'test.csv'}, 2 rows" in out


def test_not_utf8(folder, capsys):
    (folder / "seeds.jsonl").write_bytes(b'{"text": "one", "label": "a"}\n{"text": "caf\xe9", "label": "b"}\n')
    code, _, err = validate(folder, capsys)
    assert code == 2
    assert err == [f"error: {folder / 'seeds.jsonl'}:2: not UTF-8 text (byte 43)"]


def test_missing_label_field(folder, capsys):
    (folder / "seeds.jsonl").write_text('{"text": "one", "label": "a"}\n\n{"text": "two"}\n')
    code, _, err = validate(folder, capsys)
    assert code == 2
    assert err == [f"error: {folder / 'seeds.jsonl'}:3: no label field 'label' (fields: text)"]


def test_missing_text_field_of_a_headerless_file(folder, capsys):
    (folder / "r.yaml").write_text(RECIPE.replace("test: {path: test.csv}", "test: {path: test.csv, columns: [label, body]}"))
    (folder / "test.csv").write_text("a,hello\n")
    code, _, err = validate(folder, capsys)
    assert code == 2
    assert err == [f"error: {folder / 'test.csv'}:1: no field 'text' (fields: label, body)"]


def test_unknown_label_in_demonstrations(folder, capsys):
    (folder / "seeds.jsonl").write_text(SEEDS + '{"text": "three", "label": "c"}\n')
    code, _, err = validate(folder, capsys)
    assert code == 2
    assert err == [f"error: {folder / 'seeds.jsonl'}:3: label 'c' is not one of the recipe's labels (a, b)"]


def test_unknown_label_in_the_test_set_after_a_multiline_cell(folder, capsys):
    (folder / "test.csv").write_text(TEST + "bye,B\n")
    code, _, err = validate(folder, capsys)
    assert code == 2
    assert err == [f"error: {folder / 'test.csv'}:5: label 'B' is not one of the recipe's labels (a, b)"]


def test_empty_file_points_at_the_recipe_line(folder, capsys):
    (folder / "seeds.jsonl").write_text("\n")
    code, _, err = validate(folder, capsys)
    assert code == 2
    assert err == [f"error: {folder / 'r.yaml'}:4: demonstrations.path: {folder / 'seeds.jsonl'} has no rows (an empty file)"]


def test_missing_file_points_at_the_recipe_line(folder, capsys):
    (folder / "test.csv").unlink()
    code, _, err = validate(folder, capsys)
    assert code == 2
    assert err == [f"error: {folder / 'r.yaml'}:7: evaluation[0].test.path: file not found: {folder / 'test.csv'}"]


def test_empty_demonstration_text(folder, capsys):
    (folder / "seeds.jsonl").write_text('{"text": "", "label": "a"}\n')
    code, _, err = validate(folder, capsys)
    assert code == 2
    assert err == [f"error: {folder / 'seeds.jsonl'}:1: field 'text' is empty"]


def test_multilabel_labels_are_split(tmp_path, capsys):
    (tmp_path / "r.yaml").write_text(
        "name: r\nmodel: {backend: fake}\n"
        "task: {kind: multilabel, description: headlines, fields: {text: a headline}, labels: [x, y]}\n"
        "demonstrations: {path: seeds.jsonl}\n"
    )
    (tmp_path / "seeds.jsonl").write_text('{"text": "one", "label": "x|y"}\n{"text": "two", "label": "x|z"}\n')
    code, _, err = validate(tmp_path, capsys)
    assert code == 2
    assert err == [f"error: {tmp_path / 'seeds.jsonl'}:2: label 'z' is not one of the recipe's labels (x, y)"]


def test_annotation_inputs_need_the_text_not_a_label(tmp_path, capsys):
    (tmp_path / "r.yaml").write_text(
        "name: r\nmodel: {backend: fake}\ntask: {description: notes, labels: [a, b]}\n"
        "annotation:\n  input: {path: inputs.jsonl}\n"
    )
    (tmp_path / "inputs.jsonl").write_text('{"text": "no label here"}\n')
    assert validate(tmp_path, capsys)[0] == 0
    (tmp_path / "inputs.jsonl").write_text('{"text": "no label here"}\n{"body": "x"}\n')
    code, _, err = validate(tmp_path, capsys)
    assert code == 2 and err == [f"error: {tmp_path / 'inputs.jsonl'}:2: no field 'text' (fields: body)"]


def test_knowledge_graph_and_stage_files_are_read(tmp_path, capsys):
    (tmp_path / "r.yaml").write_text(
        "name: r\nmodel: {backend: fake}\ntask: {description: notes, labels: [a, b]}\n"
        "conditions:\n  fact: {source: knowledge_graph, path: facts.tsv}\n"
        "curation:\n  - stage: novelty\n    pool: {path: pool.jsonl}\n"
    )
    (tmp_path / "facts.tsv").write_text("subject\trelation\tobject\nParis\tcapital_of\tFrance\n")
    (tmp_path / "pool.jsonl").write_text('{"text": "seen before"}\n')
    code, out, _ = validate(tmp_path, capsys)
    assert code == 0
    assert "conditions.fact:" in out and "1 facts" in out and "curation[0].pool:" in out
    (tmp_path / "pool.jsonl").write_bytes(b'{"text": "\xff"}\n')
    code, _, err = validate(tmp_path, capsys)
    assert code == 2 and err == [f"error: {tmp_path / 'pool.jsonl'}:1: not UTF-8 text (byte 10)"]


def test_every_example_validates(capsys):
    for path in sorted((ROOT / "examples").glob("*.yaml")):
        with pytest.raises(SystemExit) as exit_:
            main(["validate", str(path)])
            sys.exit(0)
        out, err = capsys.readouterr()
        assert exit_.value.code == 0, (path, err)
        assert out.startswith(f"{path}: ok (")


def test_through_the_installed_command(folder):
    (folder / "seeds.jsonl").write_text(SEEDS + '{"text": "three", "label": "spam"}\n')
    done = run_cli("validate", str(folder / "r.yaml"))
    assert done.returncode == 2
    assert done.stderr.strip() == f"error: {folder / 'seeds.jsonl'}:3: label 'spam' is not one of the recipe's labels (a, b)"


def test_a_folder_given_as_the_recipe(tmp_path, capsys):
    code, _, err = validate(tmp_path.parent, capsys, recipe=tmp_path.name)
    assert code == 2
    assert err == [f"error: {tmp_path}: a folder, not a recipe file (give the path of a .yaml file)"]


def test_a_local_benchmark_copy_is_read(tmp_path, capsys):
    (tmp_path / "r.yaml").write_text(
        "name: r\nmodel: {backend: fake}\ntask: {description: notes, labels: [spam, ham]}\n"
        "evaluation:\n  - stage: downstream\n    benchmark: {name: sms_spam, path: sms.tsv}\n"
    )
    (tmp_path / "sms.tsv").write_text("label\ttext\n" + "".join(f"{l}\tmessage {i}\n" for i in range(10) for l in ("spam", "ham")))
    code, out, _ = validate(tmp_path, capsys)
    assert code == 0 and "evaluation[0].benchmark: " in out and "4 test rows" in out
    (tmp_path / "sms.tsv").write_text("label\tbody\n" + "spam\thello\n" * 10)
    code, _, err = validate(tmp_path, capsys)
    assert code == 2
    assert err == [f"error: {tmp_path / 'sms.tsv'}: benchmark sms_spam: no column for text (columns: label, body)"]


def test_a_model_file_is_checked_without_loading_it(tmp_path, capsys):
    (tmp_path / "r.yaml").write_text(
        "name: r\nmodel:\n  backend: llamacpp\n  model_path: " + str(tmp_path / "m.gguf") + "\ntask: {description: notes}\n"
    )
    (tmp_path / "m.gguf").write_bytes(b"GGUF" + bytes(60))
    code, out, _ = validate(tmp_path, capsys)
    assert code == 0 and "a GGUF model file" in out
    (tmp_path / "m.gguf").write_text("<html>not a model</html>")
    code, _, err = validate(tmp_path, capsys)
    assert code == 2
    assert err == [f"error: {tmp_path / 'r.yaml'}:4: model.model_path: {tmp_path / 'm.gguf'} is not a GGUF model file"]
