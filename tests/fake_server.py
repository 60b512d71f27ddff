"""A scripted OpenAI-compatible HTTP server that misbehaves on purpose.

Used by the tests and benchmarks, and by anyone who wants to rehearse a
recipe against a server with latency and faults before paying for a real
one. It listens on 127.0.0.1 only, answers `POST /v1/chat/completions`
after a set latency with a deterministic text (or JSON following the
requested schema), injects 429 / 500 / garbage / truncated bodies / hangs /
dropped connections at given rates or in a scripted order, and counts what
it saw: `GET /_stats` returns, among others, how many times each distinct
request body was answered with a completion (`GET /_stats?answered=1`: per
body, by its sha256).

    python tests/fake_server.py --port 8001 --latency 0.2 --rate-429 0.05
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import hashlib
import json
import random
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from aiohttp import web

FAULTS = ("429", "500", "garbage", "truncated", "hang", "drop")


@dataclass
class FaultPlan:
    """Fault rates in [0, 1] and an optional script of faults for the first arrivals."""

    rates: dict[str, float] = field(default_factory=dict)
    script: list[str | None] = field(default_factory=list)
    seed: int = 0
    retry_after: float | None = 0.05
    hang_seconds: float = 30.0

    def __post_init__(self) -> None:
        for name in list(self.rates) + [s for s in self.script if s]:
            if name not in FAULTS:
                raise ValueError(f"unknown fault {name!r}; known: {', '.join(FAULTS)}")


class LoopbackServer:
    """Running an aiohttp `app()` on `host:port` (port 0: any free one): in the current loop
    (`serve`, for a process) or in a background thread with its own loop (`start`/`stop`)."""

    host = "127.0.0.1"
    port = 0
    thread_name = "loopback-server"

    def _init_loop(self) -> None:
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._started = threading.Event()

    def app(self) -> web.Application:
        raise NotImplementedError

    async def serve(self) -> None:
        """Start listening in the running loop (the port is known afterwards)."""
        self._runner = web.AppRunner(self.app(), access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port, backlog=4096)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    def start(self):
        """Run in a background thread with its own event loop; returns once listening."""

        def main() -> None:
            self._loop = asyncio.new_event_loop()
            self._loop.run_until_complete(self.serve())
            self._started.set()
            self._loop.run_forever()

        self._thread = threading.Thread(target=main, daemon=True, name=self.thread_name)
        self._thread.start()
        self._started.wait(10)
        return self

    def stop(self) -> None:
        if self._loop is None:
            return
        loop = self._loop

        async def shutdown() -> None:
            if self._runner is not None:
                await self._runner.cleanup()
            loop.stop()

        asyncio.run_coroutine_threadsafe(shutdown(), loop)
        if self._thread is not None:
            self._thread.join(10)
        self._loop = None


class FakeOpenAIServer(LoopbackServer):
    """The server's state and handlers; start it in a thread or run it as a process."""

    def __init__(
        self,
        latency: float = 0.0,
        faults: FaultPlan | None = None,
        responder: Callable[[dict[str, Any]], str] | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        refuse_json_schema: bool = False,
        prefix_cache: bool = False,
    ):
        self.latency = latency
        # Like a provider's automatic prompt caching: report as cached the longest prompt prefix
        # (in words of the messages' contents, in order) that an earlier request began with.
        self.prefix_cache = prefix_cache
        self._prompts: list[list[str]] = []
        self.refuse_json_schema = refuse_json_schema
        self.in_flight = 0
        self.max_in_flight = 0
        self.arrivals: list[float] = []
        self.faults = faults or FaultPlan()
        self.responder = responder
        self.host = host
        self.port = port
        self.requests = 0
        self.answered: collections.Counter[str] = collections.Counter()
        self.answered_seeds: collections.Counter[Any] = collections.Counter()  # by the request's `seed`
        self.faults_sent: collections.Counter[str] = collections.Counter()
        self._rng = random.Random(self.faults.seed)
        self._script = list(self.faults.script)
        self._init_loop()

    thread_name = "fake-openai-server"

    # -- the app ---------------------------------------------------------------

    def app(self) -> web.Application:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_post("/v1/chat/completions", self._chat)
        app.router.add_get("/v1/models", self._models)
        app.router.add_get("/_stats", self._stats)
        return app

    def _pick_fault(self) -> str | None:
        if self._script:
            return self._script.pop(0)
        roll = self._rng.random()
        for name in FAULTS:
            rate = self.faults.rates.get(name, 0.0)
            if roll < rate:
                return name
            roll -= rate
        return None

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            return await self._chat_inner(request)
        finally:
            self.in_flight -= 1

    async def _chat_inner(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        self.requests += 1
        self.arrivals.append(time.monotonic())
        fault = self._pick_fault()
        if self.latency:
            await asyncio.sleep(self.latency)
        if fault is not None:
            self.faults_sent[fault] += 1
            return await self._fault(request, fault)
        try:
            body = json.loads(raw)
        except ValueError:
            return web.json_response({"error": {"message": "body is not JSON"}}, status=400)
        if self.refuse_json_schema and (body.get("response_format") or {}).get("type") == "json_schema":
            # What llama.cpp's server does with OpenAI's json_schema format.
            return web.json_response({"error": {"message": "unsupported response_format"}}, status=500)
        text = self._answer(body)
        self.answered[hashlib.sha256(raw).hexdigest()] += 1
        self.answered_seeds[body.get("seed")] += 1
        answer = _completion_bytes(body, text)
        if self.prefix_cache:
            data = json.loads(answer)
            data["usage"]["prompt_tokens_details"] = {"cached_tokens": self._cached_prefix(body)}
            answer = json.dumps(data).encode()
        return web.Response(body=answer, content_type="application/json")

    def _cached_prefix(self, body: dict[str, Any]) -> int:
        words = [w for m in body.get("messages", []) for w in str(m.get("content", "")).split()]
        best = 0
        for earlier in self._prompts:
            n = 0
            for a, b in zip(words, earlier):
                if a != b:
                    break
                n += 1
            best = max(best, n)
        self._prompts.append(words)
        return best

    async def _fault(self, request: web.Request, fault: str) -> web.StreamResponse:
        if fault == "429":
            headers = {}
            if self.faults.retry_after is not None:
                headers["Retry-After"] = f"{self.faults.retry_after:g}"
            return web.json_response(
                {"error": {"message": "rate limited (injected)"}}, status=429, headers=headers
            )
        if fault == "500":
            return web.json_response({"error": {"message": "server error (injected)"}}, status=500)
        if fault == "garbage":
            return web.Response(body=b"<html>upstream hiccup</html>", content_type="text/html")
        if fault == "truncated":
            full = _completion_bytes({"model": "fake"}, "this body is cut short")
            return web.Response(body=full[: len(full) // 2], content_type="application/json")
        if fault == "hang":
            await asyncio.sleep(self.faults.hang_seconds)
            return web.json_response({"error": {"message": "hung (injected)"}}, status=504)
        # drop: close the connection without an answer
        if request.transport is not None:
            request.transport.abort()
        raise asyncio.CancelledError()

    def _answer(self, body: dict[str, Any]) -> str:
        if self.responder is not None:
            return self.responder(body)
        digest = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()
        schema = (body.get("response_format") or {}).get("schema") or (
            (body.get("response_format") or {}).get("json_schema") or {}
        ).get("schema")
        if schema:
            return json.dumps(_fill_schema(schema, digest))
        last = (body.get("messages") or [{}])[-1].get("content", "")
        return f"Reply {digest[:10]} to: {last[-40:]}"

    async def _models(self, request: web.Request) -> web.Response:
        return web.json_response({"object": "list", "data": [{"id": "fake", "object": "model"}]})

    async def _stats(self, request: web.Request) -> web.Response:
        stats = self.stats()
        if request.query.get("answered"):  # `?answered=1`: the answers per distinct request body, by its sha256
            stats["answered_by_request"] = dict(self.answered)
        return web.json_response(stats)

    def stats(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "answered": sum(self.answered.values()),
            "distinct_answered": len(self.answered),
            "answered_more_than_once": sum(1 for c in self.answered.values() if c > 1),
            "faults": dict(self.faults_sent),
            # time.monotonic() of the first and last arrival: one clock for every process of a machine
            "first_arrival": self.arrivals[0] if self.arrivals else None,
            "last_arrival": self.arrivals[-1] if self.arrivals else None,
        }

    # -- running ---------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/v1"

    def __enter__(self) -> FakeOpenAIServer:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()


def _completion_bytes(body: dict[str, Any], text: str) -> bytes:
    prompt_tokens = sum(len(str(m.get("content", "")).split()) for m in body.get("messages", []))
    return json.dumps(
        {
            "id": "chatcmpl-fake",
            "object": "chat.completion",
            "model": body.get("model", "fake"),
            "choices": [
                {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}
            ],
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": len(text.split()),
                "total_tokens": prompt_tokens + len(text.split()),
            },
        }
    ).encode()


def _fill_schema(schema: dict[str, Any], digest: str) -> Any:
    """A small value that follows `schema`, for JSON-mode requests."""
    if "enum" in schema:
        return schema["enum"][int(digest[:4], 16) % len(schema["enum"])]
    kind = schema.get("type", "string")
    if kind == "object":
        return {k: _fill_schema(v, digest) for k, v in schema.get("properties", {}).items()}
    if kind == "array":
        return [_fill_schema(schema.get("items", {}), digest)]
    if kind in ("integer", "number"):
        return 1
    if kind == "boolean":
        return True
    return f"text {digest[:8]}"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=8001)
    parser.add_argument("--latency", type=float, default=0.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--retry-after", type=float, default=0.05)
    parser.add_argument("--hang-seconds", type=float, default=30.0)
    parser.add_argument("--prefix-cache", action="store_true", help="report cached_tokens like a provider's prompt cache")
    for fault in FAULTS:
        parser.add_argument(f"--rate-{fault}", type=float, default=0.0)
    args = parser.parse_args(argv)
    rates = {f: getattr(args, f"rate_{f}") for f in FAULTS if getattr(args, f"rate_{f}")}
    server = FakeOpenAIServer(
        latency=args.latency,
        faults=FaultPlan(rates, seed=args.seed, retry_after=args.retry_after, hang_seconds=args.hang_seconds),
        port=args.port,
        prefix_cache=args.prefix_cache,
    )

    async def run() -> None:
        await server.serve()
        print(f"fake OpenAI-compatible server listening on {server.url}", flush=True)
        await asyncio.Event().wait()

    try:
        asyncio.run(run())
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
