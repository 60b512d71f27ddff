"""Prompt-prefix reuse: what prompts share comes first, and the provider's cached-token count is reported."""

from __future__ import annotations

import json

import synthloom
from synthloom.generate import Generator, load_support
from synthloom.recipe import load_recipe

RECIPE = """\
name: notes
model:
  backend: openai
  base_url: {url}
  model: fake
  concurrency: 1
task:
  description: short notes
  labels: [a, b]
conditions:
  topic: [x, y, z]
demonstrations:
  path: demos.jsonl
  k: 2
  selection: stratified
generation:
  records: 12
  seed: 3
  max_tokens: 20
{order}
curation: []
evaluation: []
"""


def write(tmp_path, url, order=""):
    (tmp_path / "demos.jsonl").write_text("".join(
        json.dumps({"text": f"note number {i} about things", "label": "ab"[i % 2]}) + "\n" for i in range(6)))
    path = tmp_path / f"recipe{'-shared' if order else ''}.yaml"
    path.write_text(RECIPE.format(url=url, order=order))
    return path


def first_messages(path):
    recipe = load_recipe(path)
    generator = Generator(recipe, load_support(recipe))
    list(generator.iter_plans(0))
    return [generator.plan_record(i).request.messages for i in range(6)]


def test_shared_first_keeps_the_system_message_the_same_and_conditions_last(tmp_path):
    default = first_messages(write(tmp_path, "http://127.0.0.1:9/v1"))
    shared = first_messages(write(tmp_path, "http://127.0.0.1:9/v1", "  prompt_order: shared_first"))
    assert len({m[0]["content"] for m in default}) > 1  # as before: the conditions in the system message
    assert "The next example has topic" in default[0][0]["content"]
    assert len({m[0]["content"] for m in shared}) == 1
    for messages in shared:
        assert "Topic:" in messages[-1]["content"] and "Topic:" not in "".join(m["content"] for m in messages[:-1])


def test_the_cached_token_share_is_kept_and_reported(tmp_path, fake_server):
    server = fake_server(prefix_cache=True)
    default = synthloom.run(write(tmp_path, server.url), tmp_path / "default", progress=False)
    shared = synthloom.run(write(tmp_path, server.url, "  prompt_order: shared_first"), tmp_path / "shared",
                           progress=False)
    before, after = default.manifest["spend"]["total"], shared.manifest["spend"]["total"]
    assert after["cached_prompt_tokens"] > 0 and before["cached_prompt_tokens"] > 0
    assert after["cached_prompt_share"] > before["cached_prompt_share"]
    assert shared.manifest["model_calls"]["tokens"]["prompt_cached_by_provider"] == after["cached_prompt_tokens"]
    card = (tmp_path / "shared" / "README.md").read_text()
    assert f"{after['cached_prompt_tokens']:,}" in card and "prompt cache" in card
    assert "read from its prompt cache" in (tmp_path / "shared" / "report.html").read_text()
    # A rerun replays from the run's cache; the provider's cached count stays in the ledger.
    again = synthloom.run(write(tmp_path, server.url, "  prompt_order: shared_first"), tmp_path / "shared", progress=False)
    assert again.manifest["spend"]["total"]["cached_prompt_tokens"] == after["cached_prompt_tokens"]
