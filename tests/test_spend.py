"""Spend control: prices and budgets in the recipe, the estimate before a run, the stop at the cap, the resume."""

from __future__ import annotations

import json

import pytest

from synthloom.llm import Usage
from synthloom.llm.pricing import Budget, Price, price_of
from synthloom.llm.spend import BudgetExceeded, Ledger
from synthloom.recipe import RecipeError, load_recipe

from conftest import run_cli

RECIPE = """\
name: notes
model:
  backend: openai
  base_url: {url}
  model: fake
  concurrency: {concurrency}
{extra}
task:
  description: short notes
  labels: [a, b]
conditions:
  topic: [x, y, z]
generation:
  records: {records}
  seed: 3
  max_tokens: 20
"""


def write(tmp_path, url, extra="", records=60, concurrency=4):
    path = tmp_path / "recipe.yaml"
    path.write_text(RECIPE.format(url=url, records=records, concurrency=concurrency, extra=extra))
    return path


def test_price_and_budget_errors_name_the_line(tmp_path):
    bad = write(tmp_path, "http://127.0.0.1:9/v1", "  price: {input_per_mtok: 1, output_per_mtok: 2, currency: XYZ}")
    with pytest.raises(RecipeError, match=r"recipe.yaml:7: model.price: unknown currency 'XYZ'"):
        load_recipe(bad)
    bad = write(tmp_path, "http://127.0.0.1:9/v1", "  budget: {money: lots}")
    with pytest.raises(RecipeError, match=r"recipe.yaml:7: model.budget.money"):
        load_recipe(bad)
    bad = write(tmp_path, "http://127.0.0.1:9/v1", "  budget: {stages: {judging: {tokens: 5}}}")
    with pytest.raises(RecipeError, match="not a stage name"):
        load_recipe(bad)


def test_prices_come_from_the_recipe_then_the_table():
    recipe_price = Price(input_per_mtok=1, output_per_mtok=2)
    assert price_of(type("C", (), {"price": recipe_price, "backend": "openai", "model": "gpt-4o"})()) == (recipe_price, "recipe")
    price, source = price_of(type("C", (), {"price": None, "backend": "openai", "model": "gpt-4o-mini-2024-07-18"})())
    assert (price.input_per_mtok, price.output_per_mtok, source) == (0.15, 0.60, "built-in table")
    assert price_of(type("C", (), {"price": None, "backend": "openai", "model": "my-model"})()) == (None, "unknown")
    assert price_of(type("C", (), {"price": None, "backend": "llamacpp"})())[0].cost(Usage(10**6, 10**6)) == 0


def test_the_ledger_stops_at_the_run_cap_and_at_a_stage_cap():
    price = Price(input_per_mtok=1.0, output_per_mtok=4.0)
    ledger = Ledger(Budget(money=0.01, stages={"curation.llm_judge": {"tokens": 100}}))
    ledger.charge("generation", Usage(2000, 1000), cached=False, price=price)  # 0.002 + 0.004
    ledger.check("generation")
    ledger.charge("curation.llm_judge", Usage(90, 20), cached=True, price=price)
    with pytest.raises(BudgetExceeded) as stop:
        ledger.check("curation.llm_judge")
    assert stop.value.stage == "curation.llm_judge" and "110 of 100 tokens" in str(stop.value)
    ledger.charge("generation", Usage(4000, 0), cached=False, price=price)  # 0.01 in all now
    with pytest.raises(BudgetExceeded, match=r"0\.0102 of 0\.01 USD \(model\.budget\.money\)"):
        ledger.check("generation")
    data = ledger.to_json()
    assert data["stages"]["generation"]["money_paid_now"] == pytest.approx(0.01)
    assert data["stages"]["curation.llm_judge"]["calls_replayed"] == 1
    assert data["stopped"]["stage"] == "generation"


def test_a_run_stops_at_its_budget_and_a_raised_budget_resumes_without_asking_again(tmp_path, fake_server):
    server = fake_server(latency=0.02)
    price = "  price: {input_per_mtok: 1000, output_per_mtok: 1000}"
    recipe = write(tmp_path, server.url, price + "\n  budget: {money: 0.5}", records=60, concurrency=4)
    out = tmp_path / "out"
    stopped = run_cli("run", str(recipe), "--out", str(out), "--no-progress")
    assert stopped.returncode == 3, stopped.stderr
    assert "budget reached" in stopped.stderr and "raise model.budget" in stopped.stderr
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["status"] == "stopped"
    spend = manifest["spend"]
    assert spend["stopped"]["stage"] == "generation" and spend["stopped"]["cap"] == "model.budget.money"
    # The overshoot is at most what the requests in flight at the cap cost.
    calls = spend["total"]["calls_paid"]
    per_call = spend["total"]["money"] / calls
    assert 0.5 <= spend["total"]["money"] <= 0.5 + 4 * per_call * 1.5
    assert 0 < manifest["counts"]["generated"] < 60
    assert server.stats()["answered"] == calls  # the requests in flight at the cap finished and were saved

    again = write(tmp_path, server.url, price + "\n  budget: {money: 50}", records=60, concurrency=4)
    done = run_cli("run", str(again), "--out", str(out), "--no-progress")
    assert done.returncode == 0, done.stderr
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["status"] == "complete" and manifest["counts"]["generated"] == 60
    assert server.stats()["answered_more_than_once"] == 0  # nothing paid twice
    total = manifest["spend"]["total"]
    assert total["calls_replayed"] == calls and total["calls_paid"] == 60 - calls
    assert manifest["spend"]["money_per_kept_record"] == pytest.approx(total["money"] / manifest["counts"]["curated"])
    card = (out / "README.md").read_text()
    assert f"| generation | {60 - calls} | {calls} |" in card and "Per kept record:" in card
    assert 'id="cost"' in (out / "report.html").read_text()


def test_plan_sends_nothing_and_counts_what_the_run_sends(tmp_path, fake_server):
    server = fake_server()
    recipe = write(tmp_path, server.url, "  price: {input_per_mtok: 2, output_per_mtok: 8}", records=12)
    shown = run_cli("plan", str(recipe), "--json")
    assert shown.returncode == 0, shown.stderr
    assert server.stats()["requests"] == 0
    plan = json.loads(shown.stdout)
    generation = plan["stages"][0]
    assert (generation["stage"], generation["calls"], generation["completion_tokens"]) == ("generation", 12, 12 * 20)
    assert generation["prompt_counted"] == "estimated"  # no tokenizer for this model here: said, not hidden
    assert plan["total"]["money"] == pytest.approx((generation["prompt_tokens"] * 2 + 240 * 8) / 1e6)
    run = run_cli("run", str(recipe), "--out", str(tmp_path / "out"), "--no-progress")
    assert run.returncode == 0, run.stderr
    assert "estimate: 12 model calls" in run.stderr
    assert server.stats()["answered"] == 12
    # With answers in the directory, completion tokens are their observed mean, not max_tokens.
    again = json.loads(run_cli("plan", str(recipe), "--json", "--out", str(tmp_path / "out")).stdout)["stages"][0]
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert again["completion_from"] == "observed mean of 12 answers"
    assert again["completion_tokens"] == manifest["spend"]["stages"]["generation"]["completion_tokens"]


@pytest.mark.slow
def test_the_embedded_models_prompt_tokens_are_counted_exactly():
    """The plan's count is the model's own: the GGUF tokenizer and chat template, no weights loaded."""
    import asyncio

    from synthloom.llm import LlamaCppBackend, LlamaCppConfig, Request
    from synthloom.llm.tokens import counter_for

    config = LlamaCppConfig()
    counter = counter_for(config)
    assert counter.exact and "SmolLM2" in counter.name
    conversations = [
        ({"role": "system", "content": "You write short SMS messages."}, {"role": "user", "content": "Write one about lunch."}),
        ({"role": "user", "content": "Label: spam or ham?\nText: WIN a £500 prize, call 0906 now"},
         {"role": "assistant", "content": "spam"}, {"role": "user", "content": "Text: see you at 6 x\nLabel?"}),
    ]
    backend = LlamaCppBackend(config)
    for messages in conversations:
        reported = asyncio.run(backend.complete(Request(messages=messages, max_tokens=2, temperature=0.0, seed=1))).usage
        assert counter.count(messages) == reported.prompt_tokens


def test_the_plans_tokenizer_loads_without_a_context_warning(capsys):
    """Loading only the vocabulary used to print llama.cpp's 'n_ctx_seq > n_ctx_train (0)' warning at every plan."""
    from synthloom.llm import LlamaCppConfig
    from synthloom.llm.llamacpp import bundled_model_path
    from synthloom.llm.tokens import GGUFCounter

    LlamaCppConfig()  # the bundled model is there
    counter = GGUFCounter(str(bundled_model_path()))
    assert counter.count([{"role": "user", "content": "hi"}]) > 1
    captured = capsys.readouterr()
    assert "n_ctx_train" not in captured.err + captured.out
    assert captured.err.strip() == ""


def test_plan_counts_a_judge_once_per_record_of_a_multi_call_kind(tmp_path):
    """Three calls make one record: the judge sees the record, so it is asked once per record, not per call."""
    from synthloom.execute.plan import plan_run

    text = (RECIPE.format(url="http://127.0.0.1:9/v1", records=10, concurrency=2, extra="").replace("  labels: [a, b]\n", "  fields: {draft: a draft, text: the note, title: a title}\n")
            + "steps:\n  - {name: draft, fields: [draft]}\n  - {name: tighten, fields: [text]}\n  - {name: title, fields: [title]}\n"
            + "curation:\n  - {stage: llm_judge}\n")
    path = tmp_path / "recipe.yaml"
    path.write_text(text)
    plan = plan_run(path)
    generation, judge = plan.stages
    assert (generation.calls, generation.records) == (30, 10)
    assert (judge.stage, judge.calls) == ("curation.llm_judge", 10)


def test_a_budget_stop_in_evaluation_still_reports_the_curated_data_and_the_finished_figures(tmp_path, fake_server):
    """The data is curated and on disk when the judge reaches its cap: the report, the card and the
    figures of the stages that finished are written; a raised budget finishes without paying again."""
    server = fake_server()
    judged = "evaluation:\n  - stage: diversity\n  - stage: faithfulness\n    sample: 30\n    max_tokens: 40\n"
    budget = "  budget: {stages: {evaluation.faithfulness: {tokens: 3000}}}"
    recipe = write(tmp_path, server.url, budget, records=40)
    recipe.write_text(recipe.read_text() + judged)
    out = tmp_path / "out"
    stopped = run_cli("run", str(recipe), "--out", str(out), "--no-progress")
    assert stopped.returncode == 3, stopped.stderr
    assert "budget reached" in stopped.stderr
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["status"] == "stopped" and manifest["spend"]["stopped"]["stage"] == "evaluation.faithfulness"
    assert manifest["counts"]["curated"] == 40
    assert any("evaluation stopped at evaluation.faithfulness" in n and "no figures for faithfulness" in n for n in manifest["notes"])
    metrics = json.loads((out / "metrics.json").read_text())
    assert list(metrics) == ["diversity"] and metrics["diversity"]["records"] == 40
    report = (out / "report.html").read_text()
    assert "evaluation stopped at evaluation.faithfulness" in report and 'id="cost"' in report
    assert "stopped at `evaluation.faithfulness` at its budget" in (out / "README.md").read_text()
    paid = server.stats()["answered"]
    assert 40 < paid < 70  # the generation, and part of the judge's 30 questions

    recipe.write_text(recipe.read_text().replace("tokens: 3000", "tokens: 300000"))
    done = run_cli("run", str(recipe), "--out", str(out), "--no-progress")
    assert done.returncode == 0, done.stderr
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["status"] == "complete" and not any("evaluation stopped" in n for n in manifest["notes"])
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["faithfulness"]["judged"] == 30 and metrics["diversity"]["records"] == 40
    assert server.stats()["answered"] == 40 + 30 and server.stats()["answered_more_than_once"] == 0
