"""The `anthropic` backend against a loopback stand-in of the Messages and Message Batches endpoints."""

from __future__ import annotations

import json

import pyarrow.parquet as pq
import pytest

pytest.importorskip("anthropic")

import synthloom  # noqa: E402
from synthloom.llm.anthropic import limit_wait, messages_body  # noqa: E402
from synthloom.llm.types import Request  # noqa: E402

from anthropic_server import AnthropicServer, _iso  # noqa: E402

RECIPE = """\
name: notes
model:
  backend: anthropic
  base_url: {url}
  model: claude-test
  mode: {mode}
  concurrency: 1
  batch: {{poll_seconds: 0.02, collect_seconds: 0.1}}
  price: {{input_per_mtok: 3.0, output_per_mtok: 15.0, batch_discount: 0.5}}
task:
  description: short notes
  labels: [a, b]
conditions:
  topic: [x, y, z]
generation:
  records: {records}
  seed: 3
  max_tokens: 20
curation: []
evaluation: []
"""


@pytest.fixture
def anthropic_server(monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-test-key")
    servers = []

    def start(**kwargs) -> AnthropicServer:
        server = AnthropicServer(**kwargs).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


def write(tmp_path, url, mode="online", records=6, name="recipe.yaml"):
    path = tmp_path / name
    path.write_text(RECIPE.format(url=url, mode=mode, records=records))
    return path


def rows(out):
    return sorted((r["id"], r["text"]) for r in pq.read_table(out / "generated.parquet").to_pylist())


def test_system_messages_go_to_the_top_level_field():
    request = Request(messages=({"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}),
                      temperature=1.4, max_tokens=9, stop=("\n\n",))
    body = messages_body(request, "claude-test")
    assert body == {"model": "claude-test", "max_tokens": 9, "system": "be brief", "temperature": 1.0,
                    "messages": [{"role": "user", "content": "hi"}], "stop_sequences": ["\n\n"]}


def test_rate_limit_headers_give_the_wait():
    now = 1_000_000.0
    assert limit_wait({"retry-after": "7"}, now) == 7.0
    headers = {"anthropic-ratelimit-requests-reset": _iso(now + 3), "anthropic-ratelimit-tokens-reset": _iso(now + 9),
               "anthropic-ratelimit-tokens-remaining": "0", "anthropic-ratelimit-requests-remaining": "12"}
    assert limit_wait(headers, now) == pytest.approx(3.0)  # a 429: the earliest reset
    assert limit_wait(headers, now, exhausted_only=True) == pytest.approx(9.0)  # after an answer: the exhausted limit
    assert limit_wait({"anthropic-ratelimit-requests-remaining": "5"}, now, exhausted_only=True) is None


def test_online_errors_in_anthropic_shape_are_retried_or_not(tmp_path, anthropic_server):
    server = anthropic_server(script=["429", "529", "429-reset"], exhaust=0.3, cached_tokens=4)
    result = synthloom.run(write(tmp_path, server.url), tmp_path / "run", progress=False)
    calls = result.manifest["model_calls"]
    assert result.manifest["counts"]["generated"] == 6
    assert calls["failed_tries_by_kind"] == {"rate_limited": 2, "server_error": 1}
    assert server.keys == {"sk-test-key"}  # the key from the environment
    # Each request after a limit ran out came after the reset the server announced.
    for reset in server.resets:
        later = [t for t in server.arrivals if t > reset - 0.15]
        assert later and min(later) >= reset - 0.01  # (sleeps run on the monotonic clock)
    spend = result.manifest["spend"]["total"]
    assert spend["cached_prompt_tokens"] == 6 * 4  # cache_read_input_tokens, kept in the ledger

    server = anthropic_server(script=["400"])
    result = synthloom.run(write(tmp_path, server.url, records=2, name="r2.yaml"), tmp_path / "run2", progress=False)
    assert result.manifest["counts"]["failed"] == 1  # invalid_request_error: not asked again
    assert result.manifest["model_calls"]["failed_requests_by_kind"] == {"rejected": 1}


def test_message_batches_give_the_online_records_at_the_discount(tmp_path, anthropic_server):
    online_server = anthropic_server()
    online = synthloom.run(write(tmp_path, online_server.url), tmp_path / "online", progress=False)
    server = anthropic_server(errored_lines=2)
    batch = synthloom.run(write(tmp_path, server.url, mode="batch", name="batch.yaml"), tmp_path / "batch", progress=False)
    assert rows(tmp_path / "batch") == rows(tmp_path / "online")
    assert len(server.batches) == 2  # the two overloaded lines went in a second batch
    assert sorted(server.submitted.values()) == [1] * 4 + [2] * 2
    assert server.arrivals == []  # nothing online
    paid, paid_online = batch.manifest["spend"]["total"], online.manifest["spend"]["total"]
    assert paid["money"] == pytest.approx(paid_online["money"] * 0.5)
    assert json.loads((tmp_path / "batch" / "manifest.json").read_text())["batches"]["lines_answered"] == 6


def test_a_server_without_message_batches_is_a_one_line_error(tmp_path, anthropic_server):
    from synthloom.llm.scheduler import SettingRefused

    server = anthropic_server(batches_api=False)
    with pytest.raises(SettingRefused, match=r"^model.mode: batch, but .*404.*no Message Batches API; use mode: online"):
        synthloom.run(write(tmp_path, server.url, mode="batch"), tmp_path / "run", progress=False)
