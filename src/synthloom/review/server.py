"""The review web app: a small aiohttp server over a ReviewSet and its ReviewStore.

It listens on 127.0.0.1 unless told otherwise and answers only requests
that carry its token (in the `token` URL parameter or the `X-Review-Token`
header; anything else gets 401). The page, its script and its style ship
inside the package (`review/static/`), so it works with no network.

Every decision is committed to SQLite before the answer goes back; the
page keeps a decision it could not send and resends it (with the same uid,
so nothing is stored twice) until the server confirms it.
"""

from __future__ import annotations

import asyncio
import hmac
import secrets
from dataclasses import dataclass
from importlib import resources
from typing import Any, Awaitable, Callable

from aiohttp import web

from .agreement import agreement
from .queue import ReviewSet, View, reviewer_queue
from .store import ReviewError, ReviewStore, check_reviewer

STATIC_FILES = {"app.js": "text/javascript", "app.css": "text/css", "index.html": "text/html"}
TOKEN_HEADER = "X-Review-Token"


@dataclass
class ReviewSettings:
    host: str = "127.0.0.1"
    port: int = 0
    token: str | None = None
    overlap: int | None = None


class ReviewApp:
    """The app's state and its request handlers."""

    def __init__(self, review_set: ReviewSet, store: ReviewStore, token: str, overlap: int | None = None):
        self.review_set = review_set
        self.store = store
        self.token = token
        self.overlap = overlap
        self._records = review_set.by_id()
        self._views: dict[View, list[str]] = {}
        self._static = {name: _read_static(name) for name in STATIC_FILES}

    def build(self) -> web.Application:
        app = web.Application(middlewares=[self._auth], client_max_size=4 * 1024 * 1024)
        app.router.add_get("/", self.index)
        app.router.add_get("/static/{name}", self.static)
        app.router.add_get("/api/info", self.info)
        app.router.add_get("/api/next", self.next_record)
        app.router.add_get("/api/record/{id}", self.record)
        app.router.add_post("/api/decide", self.decide)
        app.router.add_post("/api/undo", self.undo)
        app.router.add_get("/api/history", self.history)
        app.router.add_get("/api/stats", self.stats)
        return app

    @web.middleware
    async def _auth(self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> web.StreamResponse:
        given = request.headers.get(TOKEN_HEADER) or request.query.get("token") or ""
        if not hmac.compare_digest(given.encode(), self.token.encode()):
            return web.json_response({"error": "a valid token is required (open the URL the server printed)"}, status=401)
        try:
            response = await handler(request)
        except (ReviewError, ValueError) as exc:
            return web.json_response({"error": str(exc)}, status=400)
        response.headers["Cache-Control"] = "no-store"
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Referrer-Policy"] = "no-referrer"
        return response

    # -- pages -------------------------------------------------------------------

    async def index(self, request: web.Request) -> web.Response:
        page = self._static["index.html"].replace("{{TOKEN}}", self.token)
        response = web.Response(text=page, content_type="text/html")
        response.headers["Content-Security-Policy"] = (
            "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:"
        )
        return response

    async def static(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        if name not in STATIC_FILES or name == "index.html":
            raise web.HTTPNotFound()
        return web.Response(text=self._static[name], content_type=STATIC_FILES[name])

    # -- API -----------------------------------------------------------------------

    def _view(self, request: web.Request) -> View:
        default = "assigned" if self.store.assignments() else "confidence"
        view = View.from_query(request.query, default)
        if view not in self._views:
            self._views[view] = view.apply(self.review_set.records, self.store.assignments())
        return view

    def _reviewer(self, request: web.Request, body: dict[str, Any] | None = None) -> str:
        return check_reviewer((body or {}).get("reviewer") or request.query.get("reviewer", ""))

    def _progress(self, reviewer: str, view: View) -> tuple[list[str], dict[str, Any]]:
        ordered = self._views[view]
        current = self.store.current()
        mine = {rid for (rid, who) in current if who == reviewer}
        others: dict[str, int] = {}
        for rid, who in current:
            if who != reviewer:
                others[rid] = others.get(rid, 0) + 1
        skipped = self.store.skipped(reviewer)
        queue = reviewer_queue(ordered, mine, skipped, others, self.overlap)
        in_view = set(ordered)
        done = len(mine & in_view)
        progress = {
            "total": len(ordered),
            "done": done,
            "remaining": len(queue),
            "skipped": sum(1 for rid in skipped if rid in in_view and rid not in mine),
            "decided_by_anyone": len({rid for rid, _ in current} & in_view),
            "all_done_by_me": len(mine),
        }
        return queue, progress

    def _record_payload(self, record_id: str, reviewer: str) -> dict[str, Any]:
        record = self._records.get(record_id)
        if record is None:
            raise web.HTTPNotFound(text=f"no record {record_id!r}")
        data = self.review_set.record_json(record)
        mine = self.store.current(reviewer).get((record_id, reviewer))
        data["decision"] = mine.to_json() if mine else None
        return data

    async def info(self, request: web.Request) -> web.Response:
        rs = self.review_set
        return web.json_response(
            {
                "name": rs.name,
                "records": len(rs.records),
                "labels": rs.labels,
                "label_descriptions": rs.label_descriptions,
                "orders": (["assigned"] if self.store.assignments() else []) + rs.orders(),
                "conditions": rs.conditions(),
                "flags": rs.flag_values(),
                "stages": rs.stages(),
                "assigned": len(self.store.assignments()),
                "reviewers": self.store.reviewers(),
                "overlap": self.overlap,
            }
        )

    async def next_record(self, request: web.Request) -> web.Response:
        reviewer = self._reviewer(request)
        view = self._view(request)
        queue, progress = self._progress(reviewer, view)
        record = self._record_payload(queue[0], reviewer) if queue else None
        return web.json_response({"record": record, "progress": progress})

    async def record(self, request: web.Request) -> web.Response:
        reviewer = self._reviewer(request)
        view = self._view(request)
        _, progress = self._progress(reviewer, view)
        return web.json_response({"record": self._record_payload(request.match_info["id"], reviewer), "progress": progress})

    async def decide(self, request: web.Request) -> web.Response:
        body = await _json_body(request)
        reviewer = self._reviewer(request, body)
        record_id = str(body.get("record_id", ""))
        record = self._records.get(record_id)
        if record is None:
            raise ReviewError(f"no record {record_id!r} in this dataset")
        label = body.get("label")
        if label is not None and self.review_set.labels and label not in self.review_set.labels:
            raise ReviewError(f"unknown label {label!r}; known: {', '.join(self.review_set.labels)}")
        fields = body.get("fields") or None
        if fields is not None:
            if not isinstance(fields, dict):
                raise ReviewError("fields must be an object of edited text fields")
            unknown = [k for k in fields if k not in record.fields]
            if unknown or not all(isinstance(v, str) for v in fields.values()):
                raise ReviewError(f"edited fields must be text fields of the record ({', '.join(record.fields)})")
            fields = {k: v for k, v in fields.items() if v != record.fields.get(k)} or None
        action = body.get("action", "")
        if action == "edit" and fields is None and (label is None or label == record.label):
            action, label = "accept", None  # an edit that changed nothing is an accept
        # SQLite calls run on the event loop: one connection, one writer at a
        # time, and a commit takes about a millisecond.
        decision = self.store.decide(
            record_id, reviewer, action, label=label, fields=fields,
            original_label=record.label, note=body.get("note") or None, uid=body.get("uid") or None,
        )
        return web.json_response({"decision": decision.to_json()})

    async def undo(self, request: web.Request) -> web.Response:
        body = await _json_body(request)
        undone = self.store.undo(self._reviewer(request, body))
        return web.json_response({"undone": undone.to_json()})

    async def history(self, request: web.Request) -> web.Response:
        reviewer = self._reviewer(request)
        limit = min(200, int(request.query.get("limit", "30")))
        items = []
        for d in self.store.history(reviewer, limit):
            record = self._records.get(d.record_id)
            item = d.to_json()
            item["text"] = record.text()[:160] if record else ""
            items.append(item)
        return web.json_response({"history": items})

    async def stats(self, request: web.Request) -> web.Response:
        current = self.store.current()
        counts: dict[str, dict[str, int]] = {}
        for (_, reviewer), d in current.items():
            counts.setdefault(reviewer, {}).setdefault(d.action, 0)
            counts[reviewer][d.action] += 1
        return web.json_response({"by_reviewer": counts, "agreement": agreement(current)})


async def _json_body(request: web.Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except ValueError:
        raise ReviewError("the request body must be JSON") from None
    if not isinstance(body, dict):
        raise ReviewError("the request body must be a JSON object")
    return body


def _read_static(name: str) -> str:
    return resources.files("synthloom.review").joinpath("static", name).read_text(encoding="utf-8")


def new_token() -> str:
    return secrets.token_urlsafe(18)


class ReviewServer:
    """Runs the app on an event loop: `start()` binds and returns the URL; `stop()` closes."""

    def __init__(self, review_set: ReviewSet, settings: ReviewSettings | None = None):
        self.review_set = review_set
        self.settings = settings or ReviewSettings()
        self.token = self.settings.token or new_token()
        self.store = ReviewStore(review_set.store_path)
        self._runner: web.AppRunner | None = None
        self.port: int | None = None

    @property
    def url(self) -> str:
        host = self.settings.host
        shown = f"[{host}]" if ":" in host else host
        return f"http://{shown}:{self.port}/?token={self.token}"

    async def start(self) -> str:
        app = ReviewApp(self.review_set, self.store, self.token, self.settings.overlap).build()
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.settings.host, self.settings.port)
        await site.start()
        self.port = self._runner.addresses[0][1]
        return self.url

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        self.store.close()


def serve(review_set: ReviewSet, settings: ReviewSettings, on_ready: Callable[[str], None]) -> None:
    """Serve until interrupted (Ctrl-C)."""

    async def main() -> None:
        server = ReviewServer(review_set, settings)
        on_ready(await server.start())
        try:
            await asyncio.Event().wait()
        finally:
            await server.stop()

    asyncio.run(main())


__all__ = ["ReviewApp", "ReviewServer", "ReviewSettings", "new_token", "serve"]
