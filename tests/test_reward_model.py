"""The reward-model scorer of `synthloom pairs`: an OpenAI-compatible endpoint on loopback, scored
from the log-probabilities of the rating token; the responses come from another endpoint (`--base-url`)."""

from __future__ import annotations

import asyncio
import collections
import json
import math
import threading

import pyarrow.parquet as pq
import pytest
from aiohttp import web

from conftest import run_cli
from synthloom.evaluate.reward import reward_score
from synthloom.llm import Completion, InvalidAnswer
from synthloom.llm.types import TokenLogprob

GOOD = {"8": math.log(0.6), "9": math.log(0.3), "2": math.log(0.1)}   # expected rating 7.7
BAD = {"2": math.log(0.5), "3": math.log(0.25), " ": math.log(0.25)}    # 2.333..., the space is no digit


class LoopbackServer:
    """Chat completions on 127.0.0.1: answers (a good one, then a bad one, per prompt) and reward ratings."""

    def __init__(self):
        self.seen = collections.Counter()
        self.bodies = []
        self.port = None

    async def handle(self, request):
        body = await request.json()
        self.bodies.append(body)
        text = body["messages"][-1]["content"]
        if body.get("logprobs"):
            top = GOOD if "Response:\nA good answer" in text else BAD
            best = max(top, key=top.get)
            choice = {"index": 0, "finish_reason": "length", "message": {"role": "assistant", "content": best},
                      "logprobs": {"content": [{"token": best, "logprob": top[best],
                                                "top_logprobs": [{"token": t, "logprob": lp} for t, lp in top.items()]}]}}
        else:
            self.seen[text] += 1
            answer = "A good answer." if self.seen[text] == 1 else "A bad answer."
            choice = {"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": answer}}
        return web.json_response({"id": "x", "object": "chat.completion", "model": body.get("model"), "choices": [choice],
                                  "usage": {"prompt_tokens": 10, "completion_tokens": 1, "total_tokens": 11}})

    def __enter__(self):
        ready = threading.Event()

        def serve():
            self.loop = asyncio.new_event_loop()
            app = web.Application()
            app.router.add_post("/v1/chat/completions", self.handle)
            self.runner = web.AppRunner(app, access_log=None)
            self.loop.run_until_complete(self.runner.setup())
            site = web.TCPSite(self.runner, "127.0.0.1", 0)
            self.loop.run_until_complete(site.start())
            self.port = site._server.sockets[0].getsockname()[1]
            ready.set()
            self.loop.run_forever()

        self.thread = threading.Thread(target=serve, daemon=True)
        self.thread.start()
        ready.wait(10)
        return self

    def __exit__(self, *exc):
        asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}/v1"


def test_pairs_scored_by_a_reward_model_endpoint(tmp_path):
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text("".join(json.dumps({"instruction": f"Question {i}?"}) + "\n" for i in range(3)))
    with LoopbackServer() as server:
        done = run_cli("pairs", str(prompts), "--out", str(tmp_path / "pairs"), "--scorer", "reward",
                       "--base-url", server.url, "--model", "writer", "--reward-url", server.url,
                       "--reward-model", "rm", "--min-margin", "1")
    assert done.returncode == 0, done.stderr
    rows = pq.read_table(tmp_path / "pairs" / "curated.parquet").to_pylist()
    assert len(rows) == 3
    for row in rows:
        assert (row["chosen"], row["rejected"]) == ("A good answer.", "A bad answer.")
        assert row["score_chosen"] == pytest.approx(7.7)
        assert row["score_rejected"] == pytest.approx((2 * 0.5 + 3 * 0.25) / 0.75)
        assert row["margin"] == pytest.approx(7.7 - 7 / 3)
    rated = [b for b in server.bodies if b.get("logprobs")]
    assert len(rated) == 6 and {b["model"] for b in rated} == {"rm"}
    assert all(b["max_tokens"] == 1 and b["top_logprobs"] == 20 for b in rated)
    assert {b["model"] for b in server.bodies if not b.get("logprobs")} == {"writer"}
    manifest = json.loads((tmp_path / "pairs" / "manifest.json").read_text())
    assert manifest["preference"]["scorer"] == "reward" and manifest["preference"]["counts"]["pairs"] == 3


def test_a_reward_answer_without_logprobs_uses_the_digit_and_without_one_is_unusable():
    assert reward_score(Completion(text="7")) == 7.0
    assert reward_score(Completion(text="x", logprobs=[TokenLogprob("4", -0.1, [("4", -0.1), ("5", -0.1)])])) == pytest.approx(4.5)
    with pytest.raises(InvalidAnswer, match="no 1-9 rating"):
        reward_score(Completion(text="great"))


def test_reward_scorer_needs_its_endpoint(tmp_path):
    prompts = tmp_path / "p.jsonl"
    prompts.write_text('{"instruction": "Hi?"}\n')
    done = run_cli("pairs", str(prompts), "--out", str(tmp_path / "o"), "--scorer", "reward")
    assert done.returncode == 2 and "--reward-url" in done.stderr
