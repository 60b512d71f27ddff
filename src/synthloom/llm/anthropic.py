"""The `anthropic` backend: Anthropic's Messages API, online or through its Message Batches API.

Requests go through the `anthropic` SDK (extra `anthropic`), with its own
retries off: the scheduler retries, and honours what the server says about
its limits. A 429 waits `retry-after`, or else until the earliest
`anthropic-ratelimit-*-reset`; an answer whose `anthropic-ratelimit-*-remaining`
reads 0 holds the next request until that limit resets. Error bodies come as
`{"type": "error", "error": {"type": "rate_limit_error", "message": ...}}`
and become the model layer's errors (`overloaded_error` is a server error, to
be retried; `invalid_request_error` a rejected request).

The chat messages of a `Request` map onto the Messages API: system messages
become the top-level `system`, the rest stay in order. Anthropic reports
prompt tokens read from its prompt cache apart (`cache_read_input_tokens`,
`cache_creation_input_tokens`); they are added to the prompt tokens and the
cache reads kept as `Usage.cached_tokens`. The key is read from the
environment (`api_key_env`, default ANTHROPIC_API_KEY) at first use.
"""

from __future__ import annotations

import asyncio
import os
import time
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator

from .batch import BatchRefused, BatchSettings, BatchStatus
from .registry import BackendConfig, register_backend
from .types import (
    BadResponse,
    Completion,
    ConnectionLost,
    FatalModelError,
    ModelError,
    RateLimited,
    Request,
    RequestRejected,
    RequestTimeout,
    ServerError,
    Usage,
)

LIMITS = ("requests", "tokens", "input-tokens", "output-tokens")
TYPED = ("model", "max_tokens", "messages", "system", "stop_sequences")


class AnthropicConfig(BackendConfig):
    backend: Literal["anthropic"] = "anthropic"
    model: str = Field(..., min_length=1)
    base_url: str = Field("https://api.anthropic.com", description="the API's root, without /v1")
    api_key_env: str = Field("ANTHROPIC_API_KEY", description="name of the environment variable that holds the API key")
    mode: Literal["online", "batch"] = Field("online", description="online: one call per request; batch: Message Batches, at its discount")
    batch: BatchSettings = Field(default_factory=BatchSettings, description="limits and polling of mode: batch")
    extra_body: dict[str, Any] = Field(default_factory=dict)

    @field_validator("base_url")
    @classmethod
    def _check_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError(f"{value!r} is not an http:// or https:// URL")
        return value.rstrip("/")


def messages_body(request: Request, model: str, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """The Messages API parameters of `request`."""
    system = "\n\n".join(m["content"] for m in request.messages if m["role"] == "system")
    body: dict[str, Any] = {
        "model": model,
        "max_tokens": request.max_tokens,
        "messages": [{"role": m["role"], "content": m["content"]} for m in request.messages if m["role"] != "system"],
        "temperature": min(1.0, request.temperature),  # Anthropic takes 0..1
    }
    if system:
        body["system"] = system
    if request.top_p is not None:
        body["top_p"] = request.top_p
    if request.stop:
        body["stop_sequences"] = list(request.stop)
    if extra:
        body.update(extra)
    return body


def parse_message(data: Any) -> Completion:
    """A Messages API answer (a dict or the SDK's Message) as a Completion."""
    if hasattr(data, "model_dump"):
        data = data.model_dump()
    try:
        text = "".join(block.get("text") or "" for block in data["content"] if block.get("type") == "text")
    except (KeyError, TypeError, AttributeError) as exc:
        raise BadResponse(f"a message without content blocks ({exc!r})") from None
    usage = data.get("usage") or {}
    read = int(usage.get("cache_read_input_tokens") or 0)
    made = int(usage.get("cache_creation_input_tokens") or 0)
    return Completion(
        text=text,
        finish_reason={"end_turn": "stop", "max_tokens": "length", "stop_sequence": "stop"}.get(
            data.get("stop_reason"), data.get("stop_reason")),
        usage=Usage(int(usage.get("input_tokens") or 0) + read + made, int(usage.get("output_tokens") or 0), read),
    )


def limit_wait(headers: Any, now: float | None = None, exhausted_only: bool = False) -> float | None:
    """Seconds to wait from `retry-after`, else from the `anthropic-ratelimit-*-reset` times.

    `exhausted_only`: only limits whose `-remaining` reads 0 count (after a good answer)."""
    if headers is None:
        return None
    if not exhausted_only:
        value = headers.get("retry-after")
        if value:
            try:
                return max(0.0, float(value))
            except ValueError:
                pass
    now = time.time() if now is None else now
    waits = []
    for limit in LIMITS:
        reset = headers.get(f"anthropic-ratelimit-{limit}-reset")
        if not reset:
            continue
        if exhausted_only and headers.get(f"anthropic-ratelimit-{limit}-remaining") != "0":
            continue
        try:
            when = datetime.fromisoformat(reset.replace("Z", "+00:00")).timestamp()
        except ValueError:
            continue
        waits.append(max(0.0, when - now))
    if not waits:
        return None
    return min(waits) if not exhausted_only else max(waits)


def error_of(exc: Exception, where: str) -> ModelError:
    """An `anthropic` SDK error as a model-layer error."""
    import anthropic

    if isinstance(exc, anthropic.APITimeoutError):
        return RequestTimeout(f"no answer from {where}")
    if isinstance(exc, anthropic.APIConnectionError):
        return ConnectionLost(f"cannot reach {where}: {exc}")
    if not isinstance(exc, anthropic.APIStatusError):
        return BadResponse(f"{where}: {type(exc).__name__}: {exc}")
    status = exc.status_code
    body = exc.body if isinstance(exc.body, dict) else {}
    error = body.get("error") if isinstance(body.get("error"), dict) else {}
    kind = error.get("type", "")
    message = f"{where} answered {status} {kind}: {' '.join(str(error.get('message', exc)).split())[:200]}"
    headers = getattr(exc.response, "headers", None)
    if status == 429 or kind == "rate_limit_error":
        return RateLimited(message, retry_after=limit_wait(headers))
    if status >= 500 or kind in ("overloaded_error", "api_error"):
        return ServerError(message, status=status)
    if status in (401, 403) or kind in ("authentication_error", "permission_error"):
        return FatalModelError(f"{where} refused the credentials ({status}): {message}", status=status)
    if status == 404:
        return FatalModelError(f"{message}; check base_url and model", status=status)
    return RequestRejected(message, status=status)


@register_backend("anthropic", AnthropicConfig)
class AnthropicBackend:
    """Messages over the `anthropic` SDK; one client per backend."""

    def __init__(self, config: AnthropicConfig):
        self.config = config
        self._client: Any = None
        self._pause_until = 0.0

    def identity(self) -> dict[str, Any]:
        return {"backend": "anthropic", "model": self.config.model}

    def client(self) -> Any:
        if self._client is None:
            try:
                import anthropic
            except ImportError:
                raise ImportError("backend: anthropic needs the anthropic package: pip install 'synthloom[anthropic]'") from None
            key = os.environ.get(self.config.api_key_env)
            if not key:
                raise FatalModelError(f"environment variable {self.config.api_key_env} (model.api_key_env) is not set")
            self._client = anthropic.AsyncAnthropic(api_key=key, base_url=self.config.base_url,
                                                    timeout=self.config.timeout, max_retries=0)
        return self._client

    async def complete(self, request: Request) -> Completion:
        client = self.client()
        wait = self._pause_until - time.time()
        if wait > 0:
            await asyncio.sleep(wait)
        body = messages_body(request, self.config.model, self.config.extra_body)
        where = f"{self.config.base_url}/v1/messages"
        # What this SDK does not type (sampling settings) goes as extra_body, the same JSON on the wire.
        typed = {k: body.pop(k) for k in TYPED if k in body}
        try:
            raw = await client.messages.with_raw_response.create(**typed, extra_body=body)
            message = await raw.parse()
        except Exception as exc:
            raise error_of(exc, where) from None
        hold = limit_wait(raw.headers, exhausted_only=True)
        if hold:
            self._pause_until = max(self._pause_until, time.time() + hold)
        return parse_message(message)

    def batch_provider(self) -> AnthropicBatches:
        return AnthropicBatches(self)

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.close()
            self._client = None


class AnthropicBatches:
    """The Message Batches API: lines go in the create call itself (no file upload)."""

    STATUS = {"in_progress": "in_progress", "canceling": "cancelling", "ended": "ended"}

    def __init__(self, backend: AnthropicBackend):
        self.backend = backend
        self.config = backend.config
        self.where = f"{self.config.base_url}/v1/messages/batches"

    def line(self, cid: str, request: Request) -> dict[str, Any]:
        return {"custom_id": cid, "params": messages_body(request, self.config.model, self.config.extra_body)}

    async def upload(self, path: Path) -> str | None:
        return None

    async def find(self, part: str, file_id: str | None) -> str | None:
        return None  # Message Batches carry no metadata to find a part by

    async def create(self, part: str, file_id: str | None, lines: list[dict[str, Any]]) -> str:
        try:
            batch = await self.backend.client().messages.batches.create(requests=lines)
        except Exception as exc:
            raise _refusal(error_of(exc, self.where), exc) from None
        return batch.id

    async def poll(self, batch_id: str) -> BatchStatus:
        try:
            batch = await self.backend.client().messages.batches.retrieve(batch_id)
        except Exception as exc:
            raise error_of(exc, f"{self.where}/{batch_id}") from None
        counts = batch.request_counts
        failed = counts.errored + counts.canceled + counts.expired
        total = counts.processing + counts.succeeded + failed
        return BatchStatus(self.STATUS.get(batch.processing_status, batch.processing_status), counts.succeeded, failed, total)

    async def results(self, batch_id: str, status: BatchStatus) -> tuple[dict[str, Completion], dict[str, tuple[str, str]]]:
        answers: dict[str, Completion] = {}
        errors: dict[str, tuple[str, str]] = {}
        try:
            async for entry in await self.backend.client().messages.batches.results(batch_id):
                result = entry.result
                if result.type == "succeeded":
                    answers[entry.custom_id] = parse_message(result.message)
                elif result.type == "errored":
                    error = result.error.error if hasattr(result.error, "error") else result.error
                    kind = getattr(error, "type", "error")
                    retry = kind in ("rate_limit_error", "overloaded_error", "api_error")
                    errors[entry.custom_id] = ("server_error" if retry else "rejected", f"{kind}: {getattr(error, 'message', '')}")
                else:  # canceled, expired
                    errors[entry.custom_id] = (result.type, f"the line was {result.type}")
        except Exception as exc:
            raise error_of(exc, f"{self.where}/{batch_id}/results") from None
        return answers, errors

    async def aclose(self) -> None:
        pass  # the backend closes the client


def _refusal(error: ModelError, exc: Exception) -> ModelError:
    status = getattr(exc, "status_code", None)
    if status in (404, 405, 501):
        return BatchRefused(f"model.mode: batch, but {error}: the server has no Message Batches API; use mode: online")
    if status == 413:
        return BatchRefused(f"model.batch.max_bytes: the server refused a batch as too large ({error}); lower the limit")
    return error


__all__ = ["AnthropicBackend", "AnthropicBatches", "AnthropicConfig", "limit_wait", "messages_body", "parse_message"]
