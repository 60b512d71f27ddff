"""The completion cache: a documented key, durable answers, no secrets."""

from __future__ import annotations

import hashlib
import json
import random
import sqlite3

from synthloom.llm import Completion, CompletionCache, Request, Usage, cache_key
from synthloom.llm.types import TokenLogprob

IDENTITY = {"backend": "openai", "model": "m"}
REQ = Request(messages=({"role": "user", "content": "héllo"},), temperature=0.5, seed=3)


def documented_key(identity, request):
    payload = json.dumps(
        {"backend": identity, "request": request.to_json()},
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    )
    return "v1:" + hashlib.sha256(payload.encode("utf-8")).hexdigest()


def test_key_follows_the_documented_formula():
    assert cache_key(IDENTITY, REQ) == documented_key(IDENTITY, REQ)


def test_key_follows_the_formula_for_every_kind_of_value():
    """The key is computed by a faster encoder where it writes the same bytes: it must, always."""
    rng = random.Random(7)
    texts = ["plain", "héllo wörld", "中文 テキスト", "emoji 🎉 \U0001f600", "tab\tnew\nline\r", "ctrl \x00\x01\x1f\x7f",
             'quote " back \\ slash', "\u2028\u2029 separators", "</script>", ""]
    floats = [0.0, -0.0, 1.0, 0.7, 1e-4, 9.99e-5, 1e-7, 123456.789, 1e15, 1e16, 1e22, 2.5e-300, float("nan"), float("inf")]
    floats += [rng.uniform(-3, 3) for _ in range(200)] + [10 ** rng.uniform(-8, 20) for _ in range(200)]
    schemas = [None, {"type": "object", "properties": {"x": {"type": "number", "minimum": 0.5, "maximum": 1e20}}},
               {"enum": [1, 2**63, -(2**63) - 1, 2**70]}, {"title": "中文", "default": None, "x": [True, False, 3.25]}]
    for i in range(400):
        request = Request(
            messages=({"role": "system", "content": rng.choice(texts)}, {"role": "user", "content": rng.choice(texts) * rng.randint(0, 3)}),
            temperature=rng.choice(floats), top_p=rng.choice([None, *floats]), max_tokens=rng.choice([1, 256, 2**40]),
            seed=rng.choice([None, 0, 2**31 - 1]), stop=rng.choice([None, ("\n",), ("ä", "</s>")]),
            json_schema=rng.choice(schemas), sample=i % 3, attempt=i % 2,
        )
        assert cache_key(IDENTITY, request) == documented_key(IDENTITY, request), request


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
