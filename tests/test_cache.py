"""The completion cache: a documented key, durable answers, no secrets."""

from __future__ import annotations

import hashlib
import json
import random
import signal
import sqlite3
import subprocess
import sys

import pytest

from synthloom.llm import Completion, CompletionCache, Request, Usage, cache_key
from synthloom.llm.cache import PendingFile
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
    cache.close()
    # Closed, the answer is in the SQLite table itself, and the pending file is gone.
    other = sqlite3.connect(path)
    assert other.execute("SELECT COUNT(*) FROM completions").fetchone()[0] == 1
    other.close()
    assert not cache.pending_path.exists()
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


KILLED_WRITER = """
import os, signal, sys
from synthloom.llm import Completion, CompletionCache, Usage
cache = CompletionCache(sys.argv[1])
for i in range(int(sys.argv[2])):
    cache.put(f"v1:{i}", Completion(f"answer {i}", "stop", Usage(3, i)))
print("put", flush=True)
os.kill(os.getpid(), signal.SIGKILL)
"""


def test_every_answer_put_before_a_kill_9_is_there_for_the_next_run(tmp_path):
    path = tmp_path / "cache.sqlite"
    earlier = CompletionCache(path)
    earlier.put_many([("v1:old", json.dumps(Completion("old").to_json()))])
    earlier.close()
    done = subprocess.run([sys.executable, "-c", KILLED_WRITER, str(path), "1300"], capture_output=True, text=True)
    assert done.returncode == -signal.SIGKILL and done.stdout == "put\n", done.stderr
    # Some answers were folded into SQLite on the way, the rest only reached the pending file.
    assert CompletionCache.FOLD_EVERY < 1300 and path.with_name("cache.sqlite-pending").stat().st_size > 0
    cache = CompletionCache(path)
    assert len(cache) == 1301
    assert cache.get("v1:1299").text == "answer 1299" and cache.get("v1:1299").usage.completion_tokens == 1299
    assert cache.get("v1:old").text == "old"
    cache.close()
    assert not path.with_name("cache.sqlite-pending").exists()


def test_a_line_cut_short_by_a_kill_is_dropped_and_the_rest_kept(tmp_path):
    path = tmp_path / "cache.sqlite"
    pending = path.with_name("cache.sqlite-pending")
    whole = json.dumps(Completion("whole").to_json())
    pending.write_text(f"v1:a\t{whole}\nv1:b\t{whole[:-5]}")
    cache = CompletionCache(path)
    assert cache.get("v1:a").text == "whole"
    assert cache.get("v1:b") is None
    cache.put("v1:b", Completion("again"))
    cache.close()
    assert CompletionCache(path).get("v1:b").text == "again"


def test_leftovers_that_cannot_be_folded_in_stay_and_new_lines_start_whole(tmp_path, monkeypatch):
    """A killed run's pending answers, a cut-short last line, and a disk too full to fold them in at once."""
    path = tmp_path / "cache.sqlite"
    pending = path.with_name("cache.sqlite-pending")
    whole = json.dumps(Completion("left").to_json())
    pending.write_text(f"v1:a\t{whole}\nv1:b\t{whole[:9]}")

    def disk_full(self, db):
        raise OSError(28, "no space left on device", str(path))

    monkeypatch.setattr(PendingFile, "fold", disk_full)
    cache = CompletionCache(path)
    with pytest.raises(OSError, match="no space left"):
        cache.get("v1:a")  # opening folds in the leftovers, which fails here
    monkeypatch.undo()
    assert pending.read_text() == f"v1:a\t{whole}\n"  # the cut-short line is gone, the whole one kept
    cache.close()
    cache = CompletionCache(path)
    cache.put("v1:c", Completion("new"))
    cache.close()
    cache = CompletionCache(path)
    assert cache.get("v1:a").text == "left" and cache.get("v1:c").text == "new" and len(cache) == 2
    cache.close()


def test_instances_in_one_process_share_their_pending_answers(tmp_path):
    path = tmp_path / "cache.sqlite"
    first, second = CompletionCache(path), CompletionCache(path)
    first.put("v1:1", Completion("one"))
    assert second.get("v1:1").text == "one"  # not yet in SQLite, but the same pending answers
    second.put("v1:1", Completion("one again"))
    assert first.get("v1:1").text == "one again"  # the newest answer wins
    first.close()
    second.put("v1:2", Completion("two"))
    second.close()
    assert not path.with_name("cache.sqlite-pending").exists()
    cache = CompletionCache(path)
    assert len(cache) == 2 and cache.get("v1:1").text == "one again"
    cache.close()


OTHER_PROCESS = """
import sys
from synthloom.llm import Completion, CompletionCache
cache = CompletionCache(sys.argv[1])
print(cache.get("v1:mine"), flush=True)
cache.put("v1:theirs", Completion("theirs"))
"""


def test_another_process_meanwhile_commits_directly_and_both_keep_everything(tmp_path):
    path = tmp_path / "cache.sqlite"
    cache = CompletionCache(path)
    cache.put("v1:mine", Completion("mine"))
    done = subprocess.run([sys.executable, "-c", OTHER_PROCESS, str(path)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "None\n"  # still pending here: the other process sees it once it is folded in
    assert cache.get("v1:theirs").text == "theirs"  # it went to SQLite at once
    cache.close()
    again = CompletionCache(path)
    assert again.get("v1:mine").text == "mine" and len(again) == 2
    again.close()


def test_put_many_after_pending_answers_keeps_the_newest(tmp_path):
    cache = CompletionCache(tmp_path / "cache.sqlite")
    cache.put("v1:k", Completion("pending"))
    cache.put_many([("v1:k", json.dumps(Completion("batch").to_json()))])
    assert cache.get("v1:k").text == "batch"
    assert cache.get_many(["v1:k"]) == {"v1:k": json.dumps(Completion("batch").to_json())}
    cache.close()
    assert CompletionCache(tmp_path / "cache.sqlite").get("v1:k").text == "batch"
