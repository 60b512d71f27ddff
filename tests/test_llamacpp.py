"""Integration with real models: the embedded llama.cpp model and a real llama.cpp server."""

from __future__ import annotations

import asyncio
import json

import pytest

import synthloom
from synthloom.llm import (
    CompletionCache,
    LlamaCppBackend,
    LlamaCppConfig,
    OpenAIBackend,
    OpenAIConfig,
    Request,
    Scheduler,
)
from synthloom.records import load_dataset

from conftest import ROOT, run_cli

pytestmark = pytest.mark.slow
pytest.importorskip("llama_cpp")

SCHEMA = {"type": "object", "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
          "required": ["name", "age"]}


def ask(backend, request):
    async def main():
        try:
            return await backend.complete(request)
        finally:
            await backend.aclose()

    return asyncio.run(main())


def hello(**kw):
    return Request(messages=({"role": "user", "content": "Write a short greeting."},), max_tokens=12, seed=4, **kw)


@pytest.fixture(scope="module")
def embedded():
    backend = LlamaCppBackend(LlamaCppConfig())
    yield backend
    asyncio.run(backend.aclose())


def test_embedded_default_model_answers_deterministically(embedded):
    first = ask(embedded, hello())
    second = ask(embedded, hello())
    assert first.text.strip() and first.text == second.text
    assert first.usage.prompt_tokens > 0 and 0 < first.usage.completion_tokens <= 12
    assert embedded.identity()["model"] == "SmolLM2-135M-Instruct.Q4_1.gguf"


def test_embedded_logprobs(embedded):
    completion = ask(embedded, hello(logprobs=True, top_logprobs=3))
    assert completion.logprobs and len(completion.logprobs) == completion.usage.completion_tokens
    first = completion.logprobs[0]
    assert first.logprob <= 0 and len(first.top) >= 1


def test_embedded_json_schema_is_constrained(embedded):
    request = Request(
        messages=({"role": "user", "content": "Describe a person as JSON with name and age."},),
        max_tokens=40, seed=1, json_schema=SCHEMA,
    )
    data = json.loads(ask(embedded, request).text)
    assert isinstance(data["name"], str) and isinstance(data["age"], int)


def test_real_server_chat_logprobs_and_json_fallback(llama_server):
    backend = OpenAIBackend(OpenAIConfig(base_url=llama_server, model="smollm2"))
    completion = ask(backend, hello(logprobs=True, top_logprobs=2))
    assert completion.text and completion.logprobs and completion.logprobs[0].top
    assert completion.usage.completion_tokens > 0

    backend = OpenAIBackend(OpenAIConfig(base_url=llama_server, model="smollm2"))
    request = Request(
        messages=({"role": "user", "content": "Describe a person as JSON with name and age."},),
        max_tokens=40, seed=1, json_schema=SCHEMA,
    )
    data = json.loads(ask(backend, request).text)
    assert isinstance(data["age"], int)
    # llama.cpp's server refuses OpenAI's json_schema (500) and takes json_object + schema
    assert backend.json_mode == "json_object"


def test_run_against_real_server_then_resume_from_cache(tmp_path, llama_server):
    (tmp_path / "seeds.jsonl").write_text(
        '{"text": "Running late, see you at 6", "label": "ham"}\n'
        '{"text": "WIN a free cruise! Text CRUISE to 80880 now", "label": "spam"}\n'
    )
    recipe = tmp_path / "r.yaml"
    recipe.write_text(f"""\
name: server_run
model: {{backend: openai, base_url: "{llama_server}", model: smollm2, concurrency: 2}}
task:
  description: short SMS text messages
  labels: [spam, ham]
demonstrations: {{path: seeds.jsonl, k: 1}}
generation: {{records: 6, max_tokens: 40, seed: 1}}
evaluation: [{{stage: diversity}}]
""")
    result = synthloom.run(recipe, tmp_path / "out", progress=False)
    calls = result.manifest["model_calls"]
    assert result.manifest["counts"]["generated"] + result.manifest["counts"]["failed"] == 6
    assert result.manifest["counts"]["generated"] >= 4
    assert calls["model_calls"] >= 6 and calls["tokens"]["completion"] > 0
    again = synthloom.run(recipe, tmp_path / "out", progress=False)
    assert again.manifest["model_calls"]["model_calls"] == 0
    assert [r.fields for r in again.curated] == [r.fields for r in result.curated]


def test_scheduler_cache_with_embedded_model(tmp_path, embedded):
    cache = CompletionCache(tmp_path / "c.sqlite")
    scheduler = Scheduler(embedded, cache)
    outcome = asyncio.run(scheduler.complete(hello()))
    assert outcome.ok and scheduler.stats.calls == 1
    again = Scheduler(embedded, CompletionCache(tmp_path / "c.sqlite"))
    replay = asyncio.run(again.complete(hello()))
    assert replay.value == outcome.value and again.stats.calls == 0


def test_main_job_on_the_embedded_model(tmp_path, monkeypatch):
    """The README's main job, capped to a few records, scored on a small SMS collection of its own."""
    data = tmp_path / "data"
    (data / "sms_spam").mkdir(parents=True)
    rows = [f"ham\tsee you at {h} for dinner with {who}" for h in range(5, 10) for who in ("mum", "Sam", "Jo", "Ali", "Kim", "Lee")]
    rows += [f"spam\tWIN a {n}00 pound prize! Text CLAIM{n} to {80000 + n} now" for n in range(30)]
    (data / "sms_spam" / "SMSSpamCollection").write_text("\n".join(rows) + "\n")
    monkeypatch.setenv("SYNTHLOOM_DATA", str(data))
    recipe = synthloom.load_recipe(ROOT / "examples" / "sms_spam.yaml")
    test_rows = load_dataset(next(s for s in recipe.evaluation if s.stage == "downstream").test)
    done = run_cli("run", str(ROOT / "examples" / "sms_spam.yaml"), "--out", str(tmp_path / "out"),
                   "--limit", "6", "--no-progress")
    assert done.returncode == 0, done.stderr
    assert "report:" in done.stdout
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["counts"]["planned"] == 6
    assert manifest["counts"]["generated"] + manifest["counts"]["failed"] == 6 and manifest["counts"]["generated"] >= 4
    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert 0 < metrics["diversity"]["distinct_2"] <= 1
    downstream = metrics["downstream"]
    # scored on the recipe's test split of the collection (20% of its 60 rows, stratified), with an interval
    assert downstream["n_test"] == len(test_rows) == 12 and downstream["n_train"] == manifest["counts"]["curated"]
    low, high = downstream["macro_f1_ci"]
    assert 0 <= low <= downstream["macro_f1"] <= high <= 1