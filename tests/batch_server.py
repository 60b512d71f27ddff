"""A loopback stand-in of OpenAI's Files + Batches API, on top of the scripted chat server.

`BatchServer` adds to `FakeOpenAIServer` (which keeps answering
`/v1/chat/completions` online):

    POST /v1/files                  multipart upload (purpose=batch); 413 over `max_upload_bytes`
    GET  /v1/files/{id}/content     an input, output or error file
    POST /v1/batches                a batch over an uploaded file
    GET  /v1/batches/{id}           its status: validating, in_progress, finalizing, completed
                                    (or expired, failed, cancelled, as scripted)
    GET  /v1/batches                the list, newest first

Lines are answered in the background, `line_delay` seconds each (a slow
batch), by the scripted responder or, with `forward=URL`, by a real
OpenAI-compatible server (llama.cpp's) that gets each line's body as a chat
request. Scripted troubles: `fail_lines` (the first N lines answered, over
all batches, come back as error lines with status 500), `expire_after` (a
batch ends `expired` after N lines; the rest are error lines
`batch_expired`), `final_status` (`failed` or `cancelled` at validation),
`batch_api=False` (404: a server without the Batch API). `submitted`
counts, per `custom_id`, how many times a line was submitted in a batch;
`GET /_batch_stats` returns the counts.

    python tests/batch_server.py --port 8002 --forward http://127.0.0.1:8080/v1
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import time
from typing import Any

import aiohttp
from aiohttp import web

from fake_server import FakeOpenAIServer, _completion_bytes


class BatchServer(FakeOpenAIServer):
    def __init__(self, *, line_delay: float = 0.0, fail_lines: int = 0, expire_after: int | None = None,
                 final_status: str | None = None, batch_api: bool = True, max_upload_bytes: int | None = None,
                 forward: str | None = None, validating_polls: int = 1, cached_tokens: int = 0, **kwargs: Any):
        super().__init__(**kwargs)
        self.line_delay = line_delay
        self.fail_lines = fail_lines
        self.expire_after = expire_after
        self.final_status = final_status
        self.batch_api = batch_api
        self.max_upload_bytes = max_upload_bytes
        self.forward = forward.rstrip("/") if forward else None
        self.validating_polls = validating_polls
        self.cached_tokens = cached_tokens
        self.files: dict[str, bytes] = {}
        self.batches: dict[str, dict[str, Any]] = {}
        self.submitted: collections.Counter[str] = collections.Counter()
        self.lines_answered = 0
        self.uploads = 0
        self._polls: collections.Counter[str] = collections.Counter()
        self._tasks: list[asyncio.Task] = []
        self._client: aiohttp.ClientSession | None = None

    def app(self) -> web.Application:
        app = super().app()
        app.router.add_post("/v1/files", self._upload)
        app.router.add_get("/v1/files/{id}/content", self._content)
        app.router.add_post("/v1/batches", self._create)
        app.router.add_get("/v1/batches", self._list)
        app.router.add_get("/v1/batches/{id}", self._retrieve)
        app.router.add_get("/_batch_stats", self._batch_stats)
        app.on_cleanup.append(self._close_client)
        return app

    async def _close_client(self, app: web.Application) -> None:
        if self._client is not None:
            await self._client.close()

    def _refuse(self) -> web.Response:
        return web.json_response({"error": {"message": "Not Found", "type": "invalid_request_error"}}, status=404)

    async def _upload(self, request: web.Request) -> web.Response:
        if not self.batch_api:
            return self._refuse()
        form = await request.post()
        upload = form.get("file")
        data = upload.file.read() if hasattr(upload, "file") else bytes(str(upload), "utf-8")
        if self.max_upload_bytes is not None and len(data) > self.max_upload_bytes:
            return web.json_response({"error": {"message": f"file is {len(data)} bytes, over {self.max_upload_bytes}"}},
                                     status=413)
        self.uploads += 1
        file_id = f"file-{len(self.files) + 1}"
        self.files[file_id] = data
        return web.json_response({"id": file_id, "object": "file", "bytes": len(data), "created_at": int(time.time()),
                                  "filename": getattr(upload, "filename", "batch.jsonl"), "purpose": "batch",
                                  "status": "processed"})

    async def _content(self, request: web.Request) -> web.Response:
        data = self.files.get(request.match_info["id"])
        if data is None:
            return self._refuse()
        return web.Response(body=data, content_type="application/octet-stream")

    async def _create(self, request: web.Request) -> web.Response:
        if not self.batch_api:
            return self._refuse()
        body = await request.json()
        data = self.files.get(body.get("input_file_id"))
        if data is None:
            return web.json_response({"error": {"message": "no such file"}}, status=400)
        lines = [json.loads(raw) for raw in data.decode().splitlines() if raw.strip()]
        for line in lines:
            self.submitted[line["custom_id"]] += 1
        batch_id = f"batch_{len(self.batches) + 1}"
        self.batches[batch_id] = {
            "id": batch_id, "object": "batch", "endpoint": body.get("endpoint"), "errors": None,
            "input_file_id": body["input_file_id"], "completion_window": body.get("completion_window", "24h"),
            "status": "validating", "output_file_id": None, "error_file_id": None,
            "created_at": int(time.time()), "metadata": body.get("metadata"),
            "request_counts": {"total": len(lines), "completed": 0, "failed": 0},
            "_lines": lines,
        }
        return web.json_response(self._public(self.batches[batch_id]))

    @staticmethod
    def _public(batch: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in batch.items() if not k.startswith("_")}

    async def _list(self, request: web.Request) -> web.Response:
        if not self.batch_api:
            return self._refuse()
        data = [self._public(b) for b in reversed(list(self.batches.values()))]
        return web.json_response({"object": "list", "data": data, "has_more": False,
                                  "first_id": data[0]["id"] if data else None, "last_id": data[-1]["id"] if data else None})

    async def _retrieve(self, request: web.Request) -> web.Response:
        batch = self.batches.get(request.match_info["id"])
        if batch is None:
            return self._refuse()
        self._polls[batch["id"]] += 1
        if batch["status"] == "validating" and self._polls[batch["id"]] >= self.validating_polls:
            if self.final_status in ("failed", "cancelled"):
                batch["status"] = self.final_status
                if self.final_status == "failed":
                    batch["errors"] = {"object": "list", "data": [
                        {"code": "invalid_request", "message": "scripted validation failure", "line": 1, "param": None}]}
            else:
                batch["status"] = "in_progress"
                self._tasks.append(asyncio.ensure_future(self._process(batch)))
        return web.json_response(self._public(batch))

    async def _process(self, batch: dict[str, Any]) -> None:
        """Answer a batch's lines one by one, then write its output and error files."""
        out: list[dict[str, Any]] = []
        errors: list[dict[str, Any]] = []
        counts = batch["request_counts"]
        for i, line in enumerate(batch["_lines"]):
            cid = line["custom_id"]
            if self.expire_after is not None and i >= self.expire_after:
                errors.append({"id": f"req_{cid[:8]}", "custom_id": cid, "response": None, "error": {
                    "code": "batch_expired",
                    "message": "This request could not be executed before the completion window expired."}})
                counts["failed"] += 1
                continue
            if self.line_delay:
                await asyncio.sleep(self.line_delay)
            if self.fail_lines > 0:
                self.fail_lines -= 1
                errors.append({"id": f"req_{cid[:8]}", "custom_id": cid, "error": None, "response": {
                    "status_code": 500, "request_id": "r", "body": {"error": {"message": "server error (scripted)"}}}})
                counts["failed"] += 1
                continue
            body = await self._answer_line(line["body"])
            self.lines_answered += 1
            out.append({"id": f"req_{cid[:8]}", "custom_id": cid, "error": None,
                        "response": {"status_code": 200, "request_id": "r", "body": body}})
            counts["completed"] += 1
        batch["status"] = "finalizing"
        await asyncio.sleep(0)
        if out:
            batch["output_file_id"] = self._store(out)
        if errors:
            batch["error_file_id"] = self._store(errors)
        batch["status"] = "expired" if self.expire_after is not None and self.expire_after < len(batch["_lines"]) else "completed"

    async def _answer_line(self, body: dict[str, Any]) -> dict[str, Any]:
        if self.forward is None:
            answer = json.loads(_completion_bytes(body, self._answer(body)))
        else:
            if self._client is None:
                self._client = aiohttp.ClientSession()
            async with self._client.post(self.forward + "/chat/completions", json=body) as resp:
                answer = await resp.json()
        if self.cached_tokens:
            usage = answer.setdefault("usage", {})
            usage["prompt_tokens_details"] = {"cached_tokens": min(self.cached_tokens, usage.get("prompt_tokens", 0))}
        return answer

    def _store(self, rows: list[dict[str, Any]]) -> str:
        file_id = f"file-{len(self.files) + 1}"
        self.files[file_id] = "".join(json.dumps(r) + "\n" for r in rows).encode()
        return file_id

    def batch_stats(self) -> dict[str, Any]:
        return {
            "uploads": self.uploads,
            "batches": len(self.batches),
            "statuses": dict(collections.Counter(b["status"] for b in self.batches.values())),
            "lines_submitted": sum(self.submitted.values()),
            "distinct_lines": len(self.submitted),
            "submitted_more_than_once": sum(1 for n in self.submitted.values() if n > 1),
            "lines_answered": self.lines_answered,
        }

    async def _batch_stats(self, request: web.Request) -> web.Response:
        return web.json_response(self.batch_stats())


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=8002)
    parser.add_argument("--forward", default=None, help="answer lines with this OpenAI-compatible server")
    parser.add_argument("--line-delay", type=float, default=0.0)
    parser.add_argument("--cached-tokens", type=int, default=0)
    args = parser.parse_args(argv)
    server = BatchServer(port=args.port, forward=args.forward, line_delay=args.line_delay, cached_tokens=args.cached_tokens)

    async def run() -> None:
        await server.serve()
        print(f"batch stand-in listening on {server.url}", flush=True)
        await asyncio.Event().wait()

    try:
        asyncio.run(run())
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
