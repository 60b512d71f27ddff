"""A loopback stand-in of Anthropic's Messages and Message Batches endpoints.

    POST /v1/messages                       an answer, or a scripted error in Anthropic's shape:
                                            {"type": "error", "error": {"type": "rate_limit_error", ...}}
    POST /v1/messages/batches               a batch of {custom_id, params}
    GET  /v1/messages/batches/{id}          in_progress for `polls_to_end` polls, then ended
    GET  /v1/messages/batches/{id}/results  JSONL: succeeded, errored (overloaded_error), expired

`script` scripts the first online answers: "429" (with `retry-after`),
"429-reset" (only `anthropic-ratelimit-requests-reset`), "529"
(overloaded_error), "400" (invalid_request_error). `exhaust` makes the first
answer say `anthropic-ratelimit-requests-remaining: 0` with a reset `exhaust`
seconds ahead. `errored_lines`: the first N batch lines come back errored.
Every answer says `cache_read_input_tokens: cached_tokens`. `arrivals` keeps
the wall-clock time each online request came.
"""

from __future__ import annotations

import collections
import hashlib
import json
import time
from datetime import datetime, timezone
from typing import Any

from aiohttp import web

from fake_server import LoopbackServer


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, timezone.utc).isoformat().replace("+00:00", "Z")


def _error(kind: str, status: int, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response({"type": "error", "error": {"type": kind, "message": f"{kind} (scripted)"}},
                             status=status, headers=headers)


class AnthropicServer(LoopbackServer):
    thread_name = "anthropic-stand-in"

    def __init__(self, *, script: list[str] | None = None, exhaust: float | None = None, errored_lines: int = 0,
                 polls_to_end: int = 2, cached_tokens: int = 0, batches_api: bool = True):
        self.script = list(script or [])
        self.exhaust = exhaust
        self.errored_lines = errored_lines
        self.polls_to_end = polls_to_end
        self.cached_tokens = cached_tokens
        self.batches_api = batches_api
        self.port = 0
        self.arrivals: list[float] = []
        self.resets: list[float] = []
        self.answered = 0
        self.keys: set[str] = set()
        self.batches: dict[str, dict[str, Any]] = {}
        self.submitted: collections.Counter[str] = collections.Counter()
        self._init_loop()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def app(self) -> web.Application:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_post("/v1/messages", self._messages)
        app.router.add_post("/v1/messages/batches", self._create)
        app.router.add_get("/v1/messages/batches/{id}", self._retrieve)
        app.router.add_get("/v1/messages/batches/{id}/results", self._results)
        return app

    def message(self, params: dict[str, Any]) -> dict[str, Any]:
        text = json.dumps(params, sort_keys=True)
        digest = hashlib.sha256(text.encode()).hexdigest()
        last = params["messages"][-1]["content"]
        answer = f"Reply {digest[:10]} to: {last[-40:]}"
        prompt = len(str(params.get("system", "")).split()) + sum(len(m["content"].split()) for m in params["messages"])
        cached = min(self.cached_tokens, prompt)
        return {"id": f"msg_{digest[:12]}", "type": "message", "role": "assistant", "model": params["model"],
                "content": [{"type": "text", "text": answer}], "stop_reason": "end_turn", "stop_sequence": None,
                "usage": {"input_tokens": prompt - cached, "output_tokens": len(answer.split()),
                          "cache_read_input_tokens": cached, "cache_creation_input_tokens": 0}}

    async def _messages(self, request: web.Request) -> web.Response:
        self.arrivals.append(time.time())
        self.keys.add(request.headers.get("x-api-key") or request.headers.get("authorization", "").removeprefix("Bearer "))
        params = await request.json()
        if self.script:
            fault = self.script.pop(0)
            if fault == "429":
                return _error("rate_limit_error", 429, {"retry-after": "0.05"})
            if fault == "429-reset":
                reset = time.time() + 0.2
                self.resets.append(reset)
                return _error("rate_limit_error", 429, {"anthropic-ratelimit-requests-remaining": "0",
                                                        "anthropic-ratelimit-requests-reset": _iso(reset)})
            if fault == "529":
                return _error("overloaded_error", 529)
            if fault == "400":
                return _error("invalid_request_error", 400)
        headers = {}
        if self.exhaust is not None:
            reset = time.time() + self.exhaust
            self.resets.append(reset)
            self.exhaust = None
            headers = {"anthropic-ratelimit-requests-limit": "50", "anthropic-ratelimit-requests-remaining": "0",
                       "anthropic-ratelimit-requests-reset": _iso(reset)}
        self.answered += 1
        return web.json_response(self.message(params), headers=headers)

    def _public(self, batch: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in batch.items() if not k.startswith("_")}

    async def _create(self, request: web.Request) -> web.Response:
        if not self.batches_api:
            return _error("not_found_error", 404)
        body = await request.json()
        lines = body["requests"]
        for line in lines:
            self.submitted[line["custom_id"]] += 1
        batch_id = f"msgbatch_{len(self.batches) + 1:04d}"
        now = time.time()
        self.batches[batch_id] = {
            "id": batch_id, "type": "message_batch", "processing_status": "in_progress",
            "request_counts": {"processing": len(lines), "succeeded": 0, "errored": 0, "canceled": 0, "expired": 0},
            "ended_at": None, "created_at": _iso(now), "expires_at": _iso(now + 86400), "archived_at": None,
            "cancel_initiated_at": None, "results_url": None, "_lines": lines, "_polls": 0, "_results": [],
        }
        return web.json_response(self._public(self.batches[batch_id]))

    async def _retrieve(self, request: web.Request) -> web.Response:
        batch = self.batches.get(request.match_info["id"])
        if batch is None:
            return _error("not_found_error", 404)
        batch["_polls"] += 1
        if batch["processing_status"] == "in_progress" and batch["_polls"] >= self.polls_to_end:
            counts = batch["request_counts"]
            for line in batch["_lines"]:
                counts["processing"] -= 1
                if self.errored_lines > 0:
                    self.errored_lines -= 1
                    counts["errored"] += 1
                    result = {"type": "errored", "error": {"type": "error", "error": {
                        "type": "overloaded_error", "message": "Overloaded (scripted)"}}}
                else:
                    counts["succeeded"] += 1
                    self.answered += 1
                    result = {"type": "succeeded", "message": self.message(line["params"])}
                batch["_results"].append({"custom_id": line["custom_id"], "result": result})
            batch["processing_status"] = "ended"
            batch["ended_at"] = _iso(time.time())
            batch["results_url"] = f"{self.url}/v1/messages/batches/{batch['id']}/results"
        return web.json_response(self._public(batch))

    async def _results(self, request: web.Request) -> web.Response:
        batch = self.batches.get(request.match_info["id"])
        if batch is None or batch["processing_status"] != "ended":
            return _error("not_found_error", 404)
        body = "".join(json.dumps(r) + "\n" for r in batch["_results"])
        return web.Response(body=body.encode(), content_type="application/binary")
