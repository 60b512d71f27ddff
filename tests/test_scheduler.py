"""The scheduler against a scripted loopback server that injects every kind of fault."""

from __future__ import annotations

import asyncio
import random
import time

import pytest

from synthloom.llm import (
    Completion,
    CompletionCache,
    FakeBackend,
    InvalidAnswer,
    OpenAIBackend,
    OpenAIConfig,
    Request,
    RetryPolicy,
    RunAborted,
    Scheduler,
)
from synthloom.llm.scheduler import AdaptiveLimiter

FAST = RetryPolicy(base_delay=0.01, max_delay=0.05)


def req(i: int = 0, **kw) -> Request:
    return Request(messages=({"role": "user", "content": f"prompt {i}"},), seed=i, **kw)


def backend_for(server, **kw) -> OpenAIBackend:
    params = {"base_url": server.url, "model": "fake", "timeout": 2.0, "max_attempts": 4}
    params.update(kw)
    return OpenAIBackend(OpenAIConfig(**params))


def run_all(scheduler: Scheduler, requests, parse=None):
    async def main():
        try:
            return await asyncio.gather(*(scheduler.complete(r, parse) for r in requests))
        finally:
            await scheduler.backend.aclose()

    return asyncio.run(main())


def test_plain_requests_succeed_and_count_tokens(fake_server):
    server = fake_server()
    scheduler = Scheduler(backend_for(server), policy=FAST)
    outcomes = run_all(scheduler, [req(i) for i in range(10)])
    assert all(o.ok for o in outcomes)
    assert all(o.value.startswith("Reply ") for o in outcomes)
    assert scheduler.stats.calls == 10
    assert scheduler.stats.usage.completion_tokens > 0


def test_429_honours_retry_after(fake_server):
    server = fake_server(faults={"script": ["429"], "retry_after": 0.4})
    scheduler = Scheduler(backend_for(server), policy=FAST)
    [outcome] = run_all(scheduler, [req()])
    assert outcome.ok
    assert server.faults_sent["429"] == 1
    assert server.arrivals[1] - server.arrivals[0] >= 0.39
    assert scheduler.stats.tries_failed["rate_limited"] == 1
    assert outcome.tries == 1  # a 429 does not spend the record's budget


@pytest.mark.parametrize("fault,kind", [
    ("500", "server_error"),
    ("garbage", "bad_response"),
    ("truncated", "bad_response"),
    ("drop", "connection"),
    ("hang", "timeout"),
])
def test_transient_faults_are_retried(fake_server, fault, kind):
    server = fake_server(faults={"script": [fault, fault], "hang_seconds": 5})
    scheduler = Scheduler(backend_for(server, timeout=0.5), policy=FAST)
    [outcome] = run_all(scheduler, [req()])
    assert outcome.ok, outcome.error
    assert outcome.tries == 3
    assert scheduler.stats.tries_failed[kind] == 2
    assert server.faults_sent[fault] == 2


def test_retries_come_soon_and_then_double(fake_server, monkeypatch):
    """The default policy: waits of 0.05, 0.1, 0.2 s... (times a jitter of 0.5-1.5), capped."""
    policy = RetryPolicy()
    monkeypatch.setattr(random, "uniform", lambda a, b: 1.0)
    assert [round(policy.delay(tries), 3) for tries in (1, 2, 3, 4)] == [0.05, 0.1, 0.2, 0.4]
    assert policy.delay(30) == policy.max_delay
    monkeypatch.undo()
    # At the server: each retry came after its wait (never before half of it).
    server = fake_server(faults={"script": ["500"] * 3})
    [outcome] = run_all(Scheduler(backend_for(server, max_attempts=4)), [req()])
    assert outcome.ok and outcome.tries == 4
    gaps = [b - a for a, b in zip(server.arrivals, server.arrivals[1:])]
    assert all(gap >= 0.5 * wait for gap, wait in zip(gaps, [0.05, 0.1, 0.2])), gaps


def test_budget_exhausted_gives_a_failed_outcome(fake_server):
    server = fake_server(faults={"script": ["500"] * 3})
    scheduler = Scheduler(backend_for(server, max_attempts=3), policy=FAST)
    [outcome] = run_all(scheduler, [req()])
    assert not outcome.ok and outcome.error.kind == "server_error"
    assert server.requests == 3
    assert scheduler.stats.requests_failed["server_error"] == 1


def test_unusable_answers_are_reasked_within_the_same_budget(fake_server):
    server = fake_server(faults={"script": ["500"]})
    seen = []

    def parse(completion: Completion) -> str:
        seen.append(completion.text)
        if len(seen) < 2:
            raise InvalidAnswer("not good enough")
        return completion.text.upper()

    scheduler = Scheduler(backend_for(server, max_attempts=3), policy=FAST)
    [outcome] = run_all(scheduler, [req(seed_override := 0)], parse)
    assert outcome.ok and outcome.value == seen[-1].upper()
    assert outcome.tries == 3  # one 500, one unusable answer, one good one
    assert outcome.request.attempt == 1 and outcome.request.seed != 0
    # the re-ask is a different request (a fresh draw), not a replay
    assert seen[0] != seen[1]


def test_unusable_answers_exhaust_the_budget(fake_server):
    server = fake_server()

    def never(completion):
        raise InvalidAnswer("never good")

    scheduler = Scheduler(backend_for(server, max_attempts=2), policy=FAST)
    [outcome] = run_all(scheduler, [req()], never)
    assert not outcome.ok and outcome.error.kind == "invalid_answer"
    assert server.requests == 2


def test_concurrency_is_bounded(fake_server):
    server = fake_server(latency=0.05)
    scheduler = Scheduler(backend_for(server, concurrency=5), policy=FAST)
    run_all(scheduler, [req(i) for i in range(40)])
    assert server.max_in_flight == 5


def test_many_429s_halve_the_concurrency(fake_server):
    server = fake_server(latency=0.01, faults={"rates": {"429": 0.5}, "retry_after": 0.01})
    scheduler = Scheduler(backend_for(server, concurrency=32), policy=FAST)
    outcomes = run_all(scheduler, [req(i) for i in range(200)])
    assert all(o.ok for o in outcomes)
    assert scheduler.limiter.limit < 32


def test_a_steady_few_429s_keep_the_limit_and_many_halve_it():
    limiter = AdaptiveLimiter(32)
    for i in range(2000):
        limiter.record(i % 20 == 0)  # a server that refuses 5%, whatever the load
    assert limiter.limit == 32
    for i in range(200):
        limiter.record(i % 4 == 0)  # 25%: too much, shed load
    assert limiter.limit <= 8
    for i in range(1000):
        limiter.record(False)
    assert limiter.limit == 32


def test_early_stop_when_most_requests_fail(fake_server):
    server = fake_server(faults={"rates": {"500": 1.0}})
    scheduler = Scheduler(backend_for(server, max_attempts=2), policy=FAST)
    with pytest.raises(RunAborted, match=r"stopping early: .* \(most often server_error"):
        run_all(scheduler, [req(i) for i in range(500)])
    assert server.requests < 200


def test_connection_refused_stops_early_with_the_url():
    config = OpenAIConfig(base_url="http://127.0.0.1:9/v1", model="m", max_attempts=2)
    scheduler = Scheduler(OpenAIBackend(config), policy=FAST)
    with pytest.raises(RunAborted, match="cannot connect to http://127.0.0.1:9/v1"):
        run_all(scheduler, [req(i) for i in range(100)])


def test_auth_failure_stops_at_once(fake_server, monkeypatch):
    server = fake_server(faults={"rates": {}})

    async def deny(request):
        from aiohttp import web

        return web.json_response({"error": {"message": "bad key"}}, status=401)

    server._chat_inner = deny
    monkeypatch.setenv("TEST_KEY", "sk-secret-value")
    scheduler = Scheduler(backend_for(server, api_key_env="TEST_KEY"), policy=FAST)
    with pytest.raises(RunAborted) as info:
        run_all(scheduler, [req(i) for i in range(50)])
    assert "refused the credentials (401)" in str(info.value)
    assert "sk-secret-value" not in str(info.value)


def test_missing_key_variable_is_a_clear_stop(fake_server, monkeypatch):
    server = fake_server()
    monkeypatch.delenv("NO_SUCH_KEY", raising=False)
    scheduler = Scheduler(backend_for(server, api_key_env="NO_SUCH_KEY"), policy=FAST)
    with pytest.raises(RunAborted, match="NO_SUCH_KEY"):
        run_all(scheduler, [req()])


def test_cache_hits_cost_nothing(tmp_path, fake_server):
    server = fake_server()
    cache = CompletionCache(tmp_path / "c.sqlite")
    first = run_all(Scheduler(backend_for(server), cache, policy=FAST), [req(i) for i in range(5)])
    again_scheduler = Scheduler(backend_for(server), CompletionCache(tmp_path / "c.sqlite"), policy=FAST)
    again = run_all(again_scheduler, [req(i) for i in range(5)])
    assert server.requests == 5
    assert again_scheduler.stats.calls == 0 and again_scheduler.stats.cache_hits == 5
    assert [o.value for o in again] == [o.value for o in first]


def test_cached_unusable_answers_replay_the_same_way(tmp_path):
    answers = iter(["bad", "good one", "bad", "good two"])
    backend = FakeBackend(responder=lambda r: next(answers))

    def parse(c):
        if c.text == "bad":
            raise InvalidAnswer("bad")
        return c.text

    first = run_all(Scheduler(backend, CompletionCache(tmp_path / "c.sqlite"), policy=FAST), [req()], parse)
    replay_backend = FakeBackend(responder=lambda r: pytest.fail("should come from cache"))
    replay = run_all(Scheduler(replay_backend, CompletionCache(tmp_path / "c.sqlite"), policy=FAST), [req()], parse)
    assert first[0].value == replay[0].value == "good one"
    assert replay_backend.calls == []


def test_requests_per_minute_spaces_calls():
    backend = FakeBackend()
    scheduler = Scheduler(backend, policy=FAST)
    scheduler.limiter._interval = 0.05  # 1,200 per minute
    start = time.monotonic()
    run_all(scheduler, [req(i) for i in range(6)])
    assert time.monotonic() - start >= 0.25
