"""The batched embedded model (continuous batching) against the real SmolLM2-135M, few tokens each."""

from __future__ import annotations

import asyncio
import json
import random

import pytest

from synthloom.llm import LlamaCppBackend, LlamaCppConfig, Request, RequestRejected, Scheduler

pytestmark = pytest.mark.slow
pytest.importorskip("llama_cpp")

SCHEMA = {"type": "object", "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
          "required": ["name", "age"]}
TOPICS = ["a cat", "the sea", "bread", "a train", "winter", "a phone", "music", "a garden"]


def ask(topic: str, **kw) -> Request:
    kw.setdefault("max_tokens", 8)
    kw.setdefault("seed", 3)
    return Request(messages=({"role": "user", "content": f"Write one sentence about {topic}."},), **kw)


def answer_all(backend, requests):
    async def main():
        try:
            return await asyncio.gather(*(backend.complete(r) for r in requests))
        finally:
            await backend.aclose()

    return asyncio.run(main())


def test_config_defaults_and_old_recipes():
    config = LlamaCppConfig()
    assert config.engine == "batched" and config.concurrency == config.batch_size > 1
    assert LlamaCppConfig(batch_size=3).concurrency == 3
    assert LlamaCppConfig(engine="single").concurrency == 1
    assert LlamaCppConfig(concurrency=1, n_threads=1).batch_size == config.batch_size


def test_same_answers_as_create_chat_completion():
    requests = [ask("a cat"), ask("bread", temperature=0), ask("the sea", top_p=0.5, seed=11),
                ask("a train", stop=(" ",)), ask("winter", json_schema=SCHEMA, max_tokens=30)]
    batched = answer_all(LlamaCppBackend(LlamaCppConfig(batch_size=4)), requests)
    single = answer_all(LlamaCppBackend(LlamaCppConfig(engine="single")), requests)
    assert [a.text for a in batched] == [a.text for a in single]
    assert [a.finish_reason for a in batched] == [a.finish_reason for a in single]
    assert [a.usage.prompt_tokens for a in batched] == [a.usage.prompt_tokens for a in single]


def test_every_option_through_the_batch():
    backend = LlamaCppBackend(LlamaCppConfig(batch_size=4, n_ctx=256))
    plain, greedy, stopped, constrained, scored, long = answer_all(backend, [
        ask("a cat"), ask("bread", temperature=0), ask("a train", stop=(" ",), max_tokens=12),
        ask("winter", json_schema=SCHEMA, max_tokens=40), ask("music", logprobs=True, top_logprobs=3),
        ask("the sea", max_tokens=500),
    ])
    assert plain.finish_reason == "length" and plain.usage.completion_tokens == 8
    assert greedy.text and greedy.usage.prompt_tokens > 0
    assert " " not in stopped.text and stopped.finish_reason == "stop"
    data = json.loads(constrained.text)
    assert isinstance(data["name"], str) and isinstance(data["age"], int)
    assert len(scored.logprobs) == scored.usage.completion_tokens
    assert all(t.logprob <= 0 and 1 <= len(t.top) <= 4 for t in scored.logprobs)
    assert scored.logprobs[0].top[0][1] >= scored.logprobs[0].logprob
    # max_tokens beyond the context is capped to what is left of it
    assert long.usage.prompt_tokens + long.usage.completion_tokens <= 256
    seeds = answer_all(backend, [ask("a cat", temperature=1.0, seed=s, max_tokens=12) for s in (1, 2, 3, 4)])
    assert len({a.text for a in seeds}) > 1


def test_a_prompt_too_long_for_the_context_is_rejected():
    backend = LlamaCppBackend(LlamaCppConfig(batch_size=2, n_ctx=128))

    async def main():
        try:
            with pytest.raises(RequestRejected, match="context window"):
                await backend.complete(ask("a cat " * 200))
            return await backend.complete(ask("a cat"))  # the engine still answers
        finally:
            await backend.aclose()

    assert asyncio.run(main()).text


def test_same_records_at_any_width_and_order():
    requests = [ask(t, temperature=0.9, seed=i, max_tokens=10) for i, t in enumerate(TOPICS)]
    shuffled = requests[:]
    random.Random(5).shuffle(shuffled)
    wide = LlamaCppBackend(LlamaCppConfig(batch_size=8))
    one = answer_all(LlamaCppBackend(LlamaCppConfig(batch_size=1)), requests)
    many = answer_all(wide, shuffled)
    by_seed = {r.seed: a.text for r, a in zip(shuffled, many)}
    assert [a.text for a in one] == [by_seed[r.seed] for r in requests]


def test_sequences_really_decode_together_and_slots_are_reused():
    backend = LlamaCppBackend(LlamaCppConfig(batch_size=3))
    engine = backend.engine()
    answers = answer_all(backend, [ask(t) for t in TOPICS])
    assert all(a.usage.completion_tokens > 0 for a in answers)
    assert engine.stats.max_sequences == 3  # continuous batching: 8 requests through 3 slots
    assert engine.stats.prompt_tokens_reused > 0  # a freed slot keeps its shared prompt prefix


def test_cancelled_requests_free_their_slots():
    backend = LlamaCppBackend(LlamaCppConfig(batch_size=2))

    async def main():
        try:
            running = [asyncio.create_task(backend.complete(ask(t, max_tokens=200))) for t in TOPICS[:4]]
            await asyncio.sleep(0.5)
            for task in running:  # two decoding, two waiting: as Ctrl-C cancels a run
                task.cancel()
            await asyncio.gather(*running, return_exceptions=True)
            return await asyncio.wait_for(backend.complete(ask("a garden")), 120)
        finally:
            await backend.aclose()

    assert asyncio.run(main()).usage.completion_tokens > 0


def test_aclose_stops_the_engine_thread():
    backend = LlamaCppBackend(LlamaCppConfig(batch_size=2))
    engine = backend.engine()
    answer_all(backend, [ask("a cat")])
    assert not engine._thread.is_alive()
    # the backend starts a new engine when asked again
    assert answer_all(backend, [ask("a cat")])[0].text


def test_scheduler_feeds_the_batch():
    backend = LlamaCppBackend(LlamaCppConfig(batch_size=4))

    async def main():
        scheduler = Scheduler(backend)
        try:
            return await asyncio.gather(*(scheduler.complete(ask(t)) for t in TOPICS))
        finally:
            await backend.aclose()

    outcomes = asyncio.run(main())
    assert all(o.ok for o in outcomes)
