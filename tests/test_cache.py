"""The completion cache: a documented key, durable answers, no secrets."""

from __future__ import annotations

import hashlib
import json
import sqlite3

from synthloom.llm import Completion, CompletionCache, Request, Usage, cache_key
from synthloom.llm.types import TokenLogprob

IDENTITY = {"backend": "openai", "model": "m"}
REQ = Request(messages=({"role": "user", "content": "héllo"},), temperature=0.5, seed=3)


def test_key_follows_the_documented_formula():
    payload = json.dumps(
        {"backend": IDENTITY, "request": REQ.to_json()},
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    )
    expected = "v1:" + hashlib.sha256(payload.encode("utf-8")).hexdigest()
    assert cache_key(IDENTITY, REQ) == expected


def test_key_is_stable_for_equal_requests_and_ignores_dict_order():
    a = Request(messages=({"role": "user", "content": "x"},), seed=1)
    b = Request(messages=({"content": "x", "role": "user"},), seed=1)
    assert cache_key(IDENTITY, a) == cache_key(IDENTITY, b)
    assert cache_key({"model": "m", "backend": "openai"}, a) == cache_key(IDENTITY, a)


def test_key_changes_with_everything_that_changes_the_answer():
    base = cache_key(IDENTITY, REQ)
    variants = [
        Request(messages=REQ.messages, temperature=0.6, seed=3),
        Request(messages=REQ.messages, temperature=0.5, seed=4),
        Request(messages=REQ.messages, temperature=0.5, seed=3, sample=1),
        Request(messages=REQ.messages, temperature=0.5, seed=3, attempt=1),
        Request(messages=REQ.messages, temperature=0.5, seed=3, max_tokens=10),
        Request(messages=({"role": "user", "content": "hello"},), temperature=0.5, seed=3),
    ]
    keys = {cache_key(IDENTITY, v) for v in variants}
    assert base not in keys and len(keys) == len(variants)
    assert cache_key({"backend": "openai", "model": "other"}, REQ) != base


def test_answers_survive_reopening(tmp_path):
    path = tmp_path / "cache.sqlite"
    cache = CompletionCache(path)
    completion = Completion(
        "answer", "stop", Usage(5, 2), [TokenLogprob("an", -0.1, [("an", -0.1), ("a", -2.5)])]
    )
    key = cache_key(IDENTITY, REQ)
    cache.put(key, completion)
    # Another connection sees it at once: it was committed before put() returned.
    other = sqlite3.connect(path)
    assert other.execute("SELECT COUNT(*) FROM completions").fetchone()[0] == 1
    other.close()
    cache.close()
    again = CompletionCache(path).get(key)
    assert again is not None and again.cached
    assert again.text == "answer" and again.usage.completion_tokens == 2
    assert again.logprobs[0].top == [("an", -0.1), ("a", -2.5)]
    assert CompletionCache(path).get("v1:missing") is None


def test_uses_wal(tmp_path):
    cache = CompletionCache(tmp_path / "c.sqlite")
    cache.put("k", Completion("x"))
    mode = cache._connect().execute("PRAGMA journal_mode").fetchone()[0]
    assert mode == "wal"
