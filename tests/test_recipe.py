"""Recipe loading: strict, typed, and every error names the file, the line and the key."""

from __future__ import annotations

import pydantic
import pytest

from synthloom.recipe import (
    DemonstrationsSpec,
    LengthFilterSpec,
    Recipe,
    RecipeError,
    TaskSpec,
    load_recipe,
)

GOOD = """\
name: demo
model:
  backend: openai
  base_url: http://127.0.0.1:9/v1
  model: tiny
task:
  description: short messages
  labels: [a, b]
generation:
  records: 10
  temperature: 0.5
"""


def error_of(write_recipe, text: str) -> RecipeError:
    path = write_recipe(text)
    with pytest.raises(RecipeError) as info:
        load_recipe(path)
    err = info.value
    assert "\n" not in str(err)
    assert str(path) in str(err)
    return err


def test_good_recipe_loads_typed_and_frozen(write_recipe):
    recipe = load_recipe(write_recipe(GOOD))
    assert recipe.model.backend == "openai"
    assert recipe.model.model == "tiny"
    assert recipe.generation.records == 10
    assert recipe.task.label_names == ["a", "b"]
    with pytest.raises(pydantic.ValidationError, match="frozen"):
        recipe.generation.records = 5
    assert recipe.generation.records == 10


def test_unknown_key_names_key_and_line(write_recipe):
    err = error_of(write_recipe, GOOD.replace("  temperature: 0.5", "  temprature: 0.5"))
    assert err.line == 11
    assert err.key == "generation.temprature"
    assert "unknown key" in str(err)


def test_wrong_type(write_recipe):
    err = error_of(write_recipe, GOOD.replace("records: 10", "records: many"))
    assert (err.line, err.key) == (10, "generation.records")
    assert "integer" in err.message


def test_impossible_value(write_recipe):
    err = error_of(write_recipe, GOOD.replace("temperature: 0.5", "temperature: 7"))
    assert (err.line, err.key) == (11, "generation.temperature")
    assert "less than or equal to 2" in err.message


def test_missing_required_key_points_at_parent(write_recipe):
    err = error_of(write_recipe, GOOD.replace("  description: short messages\n", ""))
    assert err.key == "task.description"
    assert err.line == 6
    assert "missing" in err.message


def test_unknown_backend(write_recipe):
    err = error_of(write_recipe, GOOD.replace("backend: openai", "backend: nope"))
    assert err.line == 3
    assert "openai" in err.message and "llamacpp" in err.message


def test_backend_field_error_inside_union(write_recipe):
    err = error_of(write_recipe, GOOD.replace("http://127.0.0.1:9/v1", "ftp://x"))
    assert (err.line, err.key) == (4, "model.base_url")


def test_missing_file(write_recipe):
    text = GOOD + "demonstrations:\n  path: nowhere/seeds.jsonl\n  k: 2\n"
    err = error_of(write_recipe, text)
    assert (err.line, err.key) == (13, "demonstrations.path")
    assert "nowhere/seeds.jsonl" in err.message


def test_missing_file_allowed_when_skippable(write_recipe):
    text = GOOD + "evaluation:\n  - stage: downstream\n    test: {path: none.tsv, if_missing: skip}\n"
    recipe = load_recipe(write_recipe(text))
    assert recipe.evaluation[0].test.exists is False


def test_error_in_list_item(write_recipe):
    text = GOOD + "curation:\n  - stage: exact_dedup\n  - stage: length_filter\n    min_chars: 50\n    max_chars: 10\n"
    err = error_of(write_recipe, text)
    assert err.key == "curation[1]"
    assert err.line == 14
    assert "max_chars" in err.message


def test_unknown_stage(write_recipe):
    err = error_of(write_recipe, GOOD + "curation:\n  - stage: magic\n")
    assert err.line == 13 and "exact_dedup" in err.message


def test_yaml_syntax_error(write_recipe):
    err = error_of(write_recipe, GOOD + "conditions: [unclosed\n")
    assert "YAML syntax error" in err.message
    assert err.line == 13  # the line of the unclosed list


def test_duplicate_key(write_recipe):
    err = error_of(write_recipe, GOOD + "name: again\n")
    assert err.key == "name" and err.line == 12


def test_template_syntax_error(write_recipe):
    text = GOOD + "  templates:\n    instruction: 'Write {{ label '\n"
    err = error_of(write_recipe, text)
    assert err.key == "generation.templates.instruction"
    assert "syntax" in err.message


def test_label_weights_must_name_labels(write_recipe):
    err = error_of(write_recipe, GOOD.replace("labels: [a, b]", "labels: [a, b]\n  label_weights: {a: 1, c: 2}"))
    assert err.key == "task" and "c" in err.message


def test_condition_weights(write_recipe):
    err = error_of(write_recipe, GOOD + "conditions:\n  topic: {x: 0, y: 0}\n")
    assert "conditions" in err.key


def test_same_recipe_as_python_objects(tmp_path):
    seeds = tmp_path / "seeds.jsonl"
    seeds.write_text('{"text": "hi", "label": "a"}\n')
    recipe = Recipe(
        name="py",
        task=TaskSpec(description="short messages", labels={"a": "first", "b": "second"}),
        demonstrations=DemonstrationsSpec(path=str(seeds), k=1),
        curation=[LengthFilterSpec(min_chars=3)],
    )
    assert recipe.model.backend == "llamacpp"  # the embedded default
    assert recipe.task.label_description("a") == "first"
    assert recipe.curation[0].min_chars == 3


def test_paths_resolve_relative_to_recipe_and_expand_defaults(tmp_path, monkeypatch):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "seeds.jsonl").write_text('{"text": "x", "label": "a"}\n')
    monkeypatch.delenv("SEEDS_DIR", raising=False)
    recipe_path = tmp_path / "r.yaml"
    recipe_path.write_text(GOOD + "demonstrations:\n  path: ${SEEDS_DIR:-data}/seeds.jsonl\n")
    monkeypatch.chdir("/")
    recipe = load_recipe(recipe_path)
    assert recipe.demonstrations.path == str(tmp_path / "data" / "seeds.jsonl")
