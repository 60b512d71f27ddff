"""`model.mode: batch`: requests answered through a provider's batch API, at its discount.

Providers answer a file of requests within a day at about half the price
(OpenAI's Files + Batches, which vLLM also serves; Anthropic's Message
Batches). `BatchingBackend` wraps a backend so the scheduler and everything
above it stay as they are: each `complete()` call waits in a collection
until no new request has come for `collect_seconds`; the collection is then
written as JSONL parts under the provider's limits (`max_lines`,
`max_bytes`; the files are kept under the run's `batches/`), each part
uploaded and submitted, polled every `poll_seconds` (the progress bar shows
its status), and its output and error lines mapped back to the waiting
calls by `custom_id` (the hex of the request's cache key). The scheduler
then caches each answer like any other, so a later online run pays nothing
again. A step that needs an earlier step's answer (a chain, a dialogue, a
round) is asked when that answer arrives, so it goes in the next batch.

A failed or expired line raises a retryable error; the scheduler's retry
sends it in the next batch, or online (`retry: online`). Which line went
into which batch is written down before anything is sent (`batch_ledger.py`),
so a killed run resumes polling the same batches and never sends a line
twice.
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field

from .._json import dumps
from .batch_ledger import BatchLedger
from .cache import cache_key
from .types import Completion, ConnectionLost, FatalModelError, ModelError, Request, RequestRejected

TERMINAL = ("completed", "expired", "failed", "cancelled", "ended")


class BatchSettings(BaseModel):
    """How requests are sent in `mode: batch` (the defaults are OpenAI's limits)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_lines: int = Field(50_000, ge=1, description="requests in one batch file at most")
    max_bytes: int = Field(200 * 1024 * 1024, ge=1024, description="bytes of one batch file at most")
    poll_seconds: float = Field(30.0, gt=0, description="seconds between two looks at a batch's status")
    collect_seconds: float = Field(0.5, gt=0, description="a batch is sent when no request came for this long")
    retry: Literal["batch", "online"] = Field("batch", description="where failed and expired lines are asked again")
    completion_window: str = Field("24h", description="how long the provider may take (OpenAI: 24h)")


class BatchLineFailed(ModelError):
    """A line of a batch came back failed or expired; asking again (batch or online) may work."""

    kind = "batch_failed"
    retryable = True


class BatchRefused(FatalModelError):
    """The provider cannot take the batch as the recipe sets it (no Batch API, a file over its limit).

    The message names the setting or file; the run stops with nothing sent twice or lost."""

    fixable = True


@dataclass
class BatchStatus:
    """What a poll of one batch says."""

    status: str
    done: int = 0
    failed: int = 0
    total: int = 0
    output_file: str | None = None
    error_file: str | None = None
    errors: list[str] = field(default_factory=list)

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL


class BatchProvider(Protocol):
    """One provider's batch API: what a backend with `mode: batch` gives `BatchingBackend`."""

    def line(self, cid: str, request: Request) -> dict[str, Any]:
        """The JSONL line that asks `request` under `custom_id` `cid`."""

    async def upload(self, path: Path) -> str | None:
        """Upload a part's file and return its id (None: this provider takes the lines with `create`)."""

    async def find(self, part: str, file_id: str | None) -> str | None:
        """The id of a batch made from this part before the process was killed, if there is one."""

    async def create(self, part: str, file_id: str | None, lines: list[dict[str, Any]]) -> str:
        """Submit a part; the batch id."""

    async def poll(self, batch_id: str) -> BatchStatus: ...

    async def results(self, batch_id: str, status: BatchStatus) -> tuple[dict[str, Completion], dict[str, tuple[str, str]]]:
        """Answers by cid, and errors by cid as (kind, message)."""

    async def aclose(self) -> None: ...


class BatchingBackend:
    """A backend in batch mode: collects `complete()` calls into provider batches (see the module docstring)."""

    def __init__(self, inner: Any, provider: BatchProvider, settings: BatchSettings, ledger: BatchLedger,
                 folder: Path | None = None, bar: Any = None):
        self.inner = inner
        self.config = inner.config
        self.provider = provider
        self.settings = settings
        self.ledger = ledger
        self.folder = folder
        self.bar = bar
        self._identity: dict[str, Any] | None = None
        self._queued: dict[str, tuple[Request, asyncio.Future]] = {}
        self._waiting: dict[str, asyncio.Future] = {}
        self._parts: dict[str, asyncio.Task] = {}
        self._status: dict[str, BatchStatus] = {}
        self._collector: asyncio.Task | None = None
        self._last = 0.0
        self._online: asyncio.Semaphore | None = None

    def identity(self) -> dict[str, Any]:
        """The wrapped backend's: a batch answer is the same answer as an online one."""
        if self._identity is None:
            self._identity = self.inner.identity()
        return self._identity

    async def complete(self, request: Request) -> Completion:
        cid = cache_key(self.identity(), request).split(":", 1)[1]
        row = self.ledger.line(cid)
        if row is not None:
            if row.state == "answered":
                return row.completion()
            if row.state == "submitted":
                return await self._await(cid, row.part)
            if self.settings.retry == "online":  # failed before: ask it online
                return await self._ask_online(request)
        return await self._enqueue(cid, request)

    async def _ask_online(self, request: Request) -> Completion:
        if self._online is None:
            self._online = asyncio.Semaphore(self.config.concurrency)
        async with self._online:
            return await self.inner.complete(request)

    def _await(self, cid: str, part: str) -> asyncio.Future:
        future = self._waiting.get(cid)
        if future is None or future.done():
            future = self._waiting[cid] = asyncio.get_running_loop().create_future()
        if part not in self._parts or self._parts[part].done():
            self._parts[part] = asyncio.ensure_future(self._run_part(part))
        return future

    def _enqueue(self, cid: str, request: Request) -> asyncio.Future:
        loop = asyncio.get_running_loop()
        queued = self._queued.get(cid)
        if queued is not None:
            return queued[1]
        future = loop.create_future()
        self._queued[cid] = (request, future)
        self._last = loop.time()
        if self._collector is None:
            self._collector = asyncio.ensure_future(self._collect())
        return future

    async def _collect(self) -> None:
        """Wait for a quiet moment, then send what was collected as parts."""
        loop = asyncio.get_running_loop()
        wait = self.settings.collect_seconds
        while True:
            await asyncio.sleep(max(0.001, self._last + wait - loop.time()))
            if loop.time() - self._last >= wait:
                break
        queued, self._queued, self._collector = self._queued, {}, None
        try:
            parts = self._split([(cid, self.provider.line(cid, request)) for cid, (request, _) in queued.items()])
        except BatchRefused as exc:
            for _, future in queued.values():
                if not future.done():
                    future.set_exception(exc)
            return
        for lines in parts:
            part = uuid.uuid4().hex[:16]
            self.ledger.new_part(part, lines)
            for cid, _ in lines:
                self._waiting[cid] = queued[cid][1]
            self._parts[part] = asyncio.ensure_future(self._run_part(part))

    def _split(self, lines: list[tuple[str, dict[str, Any]]]) -> list[list[tuple[str, dict[str, Any]]]]:
        """Lines in parts of at most `max_lines` lines and `max_bytes` bytes."""
        parts: list[list[tuple[str, dict[str, Any]]]] = []
        current: list[tuple[str, dict[str, Any]]] = []
        size = 0
        limit = self.settings.max_bytes
        for cid, line in lines:
            n = len(dumps(line)) + 1
            if n > limit:
                raise BatchRefused(f"model.batch.max_bytes: one request is {n:,} bytes, over the limit of {limit:,} "
                                   f"bytes per batch file; shorten the prompt or raise the limit if the provider allows")
            if current and (len(current) >= self.settings.max_lines or size + n > limit):
                parts.append(current)
                current, size = [], 0
            current.append((cid, line))
            size += n
        if current:
            parts.append(current)
        return parts

    async def _run_part(self, part: str) -> None:
        """Submit a part (unless it already was), poll it to its end, and hand out its lines' fates."""
        try:
            batch_id = await self._submit(part)
            status = await self._poll(batch_id)
            answers, errors = await self.provider.results(batch_id, status)
            for cid, answer in answers.items():
                answer.batch = True
            if status.status in ("failed", "cancelled", "expired"):
                reason = "; ".join(status.errors[:3]) or f"the batch ended {status.status}"
                kind = "rejected" if status.status == "failed" else status.status
                for cid, _ in self.ledger.part_lines(part):
                    if cid not in answers and cid not in errors:
                        errors[cid] = (kind, f"batch {batch_id} {status.status}: {reason}")
            self.ledger.finish(part, answers, errors)
        except BatchRefused as exc:
            self._fail_part(part, exc)
            return
        except ModelError as exc:  # polling or downloading failed: the waiting calls ask again and wait anew
            self._fail_part(part, exc, drop=False)
            return
        except ImportError as exc:  # the provider's SDK is not installed
            self._fail_part(part, BatchRefused(str(exc)))
            return
        except Exception as exc:  # a fault of ours: the waiting calls raise it rather than wait forever
            self._fail_part(part, exc, drop=False)  # type: ignore[arg-type]
            raise
        self._note("")
        for cid, _ in self.ledger.part_lines(part):
            future = self._waiting.pop(cid, None)
            if future is None or future.done():
                continue
            row = self.ledger.line(cid)
            assert row is not None
            if row.state == "answered":
                future.set_result(row.completion())
            elif row.error_kind == "rejected":
                future.set_exception(RequestRejected(f"batch line {cid[:12]}: {row.error}"))
            else:
                future.set_exception(BatchLineFailed(f"batch line {cid[:12]} {row.error_kind}: {row.error}"))

    def _fail_part(self, part: str, exc: ModelError, drop: bool = True) -> None:
        row = self.ledger.part(part)
        cids = [cid for cid, _ in self.ledger.part_lines(part)]
        if drop and row is not None and row.batch_id is None:
            self.ledger.drop_part(part)  # nothing was submitted: the lines may be sent again
        for cid in cids:
            future = self._waiting.pop(cid, None)
            if future is not None and not future.done():
                future.set_exception(exc)

    async def _submit(self, part: str) -> str:
        row = self.ledger.part(part)
        assert row is not None
        if row.batch_id is not None:
            return row.batch_id
        lines = self.ledger.part_lines(part)
        file_id = row.file_id
        if file_id is None:
            path = self._write(part, [line for _, line in lines])
            file_id = await self.provider.upload(path)
            if file_id is not None:
                self.ledger.set_file(part, file_id)
        batch_id = await self.provider.find(part, file_id) if row.state == "preparing" else None
        if batch_id is None:
            batch_id = await self.provider.create(part, file_id, [line for _, line in lines])
        self.ledger.set_batch(part, batch_id)
        return batch_id

    def _write(self, part: str, lines: list[dict[str, Any]]) -> Path:
        import tempfile

        folder = self.folder or Path(tempfile.gettempdir()) / "synthloom-batches"
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"part-{part}.jsonl"
        path.write_bytes(b"".join(dumps(line) + b"\n" for line in lines))
        return path

    async def _poll(self, batch_id: str) -> BatchStatus:
        errors = 0
        while True:
            try:
                status = await self.provider.poll(batch_id)
                errors = 0
            except (ConnectionLost, ModelError) as exc:
                if isinstance(exc, FatalModelError) or not exc.retryable:
                    raise
                errors += 1
                if errors >= 10:
                    raise
                await asyncio.sleep(min(60.0, self.settings.poll_seconds * errors))
                continue
            self._status[batch_id] = status
            self._note(self._describe())
            if status.terminal:
                return status
            await asyncio.sleep(self.settings.poll_seconds)

    def _describe(self) -> str:
        live = [s for s in self._status.values() if not s.terminal]
        if not live:
            return ""
        done = sum(s.done + s.failed for s in live)
        total = sum(s.total for s in live)
        states = sorted({s.status for s in live})
        return f"{len(live)} batch{'es' if len(live) > 1 else ''} {'/'.join(states)} {done}/{total}"

    def _note(self, text: str) -> None:
        if self.bar is not None and hasattr(self.bar, "note"):
            self.bar.note(text)

    async def aclose(self) -> None:
        for task in list(self._parts.values()) + ([self._collector] if self._collector else []):
            if not task.done():
                task.cancel()
        try:
            await self.provider.aclose()
        finally:
            try:
                await self.inner.aclose()
            finally:
                self.ledger.close()


def batching(backend: Any, cache_path: Path | None, bar: Any = None) -> Any:
    """`backend` itself, or wrapped in a `BatchingBackend` when its config says `mode: batch`."""
    config = backend.config
    if getattr(config, "mode", "online") != "batch":
        return backend
    make = getattr(backend, "batch_provider", None)
    if make is None:
        raise BatchRefused(f"model.mode: backend {config.backend!r} has no batch API; use mode: online")
    folder = cache_path.parent / "batches" if cache_path is not None else None
    ledger = BatchLedger(cache_path.parent / "batches.sqlite" if cache_path is not None else None)
    return BatchingBackend(backend, make(), config.batch, ledger, folder, bar)


__all__ = ["BatchLineFailed", "BatchProvider", "BatchRefused", "BatchSettings", "BatchStatus", "BatchingBackend", "batching"]
