"""Evaluation stages in a recipe: strict settings, errors that name file:line and key."""

from __future__ import annotations

import pytest

from synthloom.recipe import FaithfulnessSpec, RecipeError, load_recipe
from synthloom.llm import OpenAIConfig

HEAD = "name: r\ntask: {description: notes, labels: [a, b]}\nevaluation:\n"


@pytest.mark.parametrize(
    "stages, message",
    [
        ("  - stage: diversity\n  - stage: downstream\n    trainer: tfidf_linear\n",
         ":5: evaluation[1]: give exactly one of `test` (a file) and `benchmark` (a registry entry)"),
        ("  - stage: downstream\n    benchmark:\n      name: mnist\n", ":6: evaluation[0].benchmark.name: Input should be 'sms_spam'"),
        ("  - stage: faithfulness\n    judge: {backend: openai, base_url: http://127.0.0.1:1/v1, model: m, temprature: 0}\n",
         ":5: evaluation[0].judge.temprature: unknown key"),
        ("  - stage: downstream\n    benchmark: {name: rte}\n    trainer: svm\n", ":6: evaluation[0].trainer:"),
        ("  - stage: fidelity\n    reference: {path: nowhere.csv}\n", ":5: evaluation[0].reference.path: file not found"),
    ],
)
def test_bad_evaluation_settings_name_file_line_and_key(tmp_path, stages, message):
    path = tmp_path / "r.yaml"
    path.write_text(HEAD + stages)
    with pytest.raises(RecipeError) as info:
        load_recipe(path)
    assert f"{path}{message}" in str(info.value)


def test_every_stage_loads(tmp_path):
    (tmp_path / "real.csv").write_text("text,label\nhello,a\nbye,b\n")
    (tmp_path / "base.jsonl").write_text('{"q": "hi", "a": "hello"}\n')
    path = tmp_path / "r.yaml"
    path.write_text(HEAD + """\
  - stage: diversity
    self_bleu_sample: 100
  - stage: fidelity
    reference: {path: real.csv}
  - stage: downstream
    benchmark: {name: banking77, labels: 20}
    settings: [synthetic, real, few_real_plus_synthetic, learning_curve]
  - stage: faithfulness
    judge: {backend: openai, base_url: "http://127.0.0.1:8000/v1", model: m}
    sample: 20
  - stage: pairwise
    baseline: {path: base.jsonl}
    prompt_field: q
    answer_field: a
""")
    recipe = load_recipe(path)
    assert [s.stage for s in recipe.evaluation] == ["diversity", "fidelity", "downstream", "faithfulness", "pairwise"]
    faith = recipe.evaluation[3]
    assert isinstance(faith, FaithfulnessSpec) and isinstance(faith.judge, OpenAIConfig)
    assert recipe.evaluation[2].benchmark.labels == 20
