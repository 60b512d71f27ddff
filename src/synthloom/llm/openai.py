"""The `openai` backend: any OpenAI-compatible chat-completions server over HTTP.

vLLM, Ollama, llama.cpp's server, LM Studio and hosted APIs all answer
`POST {base_url}/chat/completions`. The client is a bare aiohttp session,
not the `openai` SDK: at hundreds of requests per second the SDK's own
per-request CPU cost caps throughput (see benchmarks/throughput.py).

Servers differ in how they take a JSON schema; the backend probes
`json_schema`, then llama.cpp's `json_object` + schema, then plain text, and
remembers the first that works. The API key is read from the environment
variable the config names, at first use, and is never stored anywhere else.
"""

from __future__ import annotations

import asyncio
import email.utils
import itertools
import json
import os
import time
from typing import Any, Literal

import aiohttp
from pydantic import Field, field_validator

from .._json import dumps, loads
from .batch import BatchSettings
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
)
from .wire import JSON_MODES, chat_body, parse_chat_answer


class OpenAIConfig(BackendConfig):
    backend: Literal["openai"] = "openai"
    base_url: str | list[str] = Field(
        ..., description="e.g. http://127.0.0.1:8000/v1; a list spreads load over replicas"
    )
    model: str = Field(..., min_length=1)
    api_key_env: str | None = Field(
        None, description="name of the environment variable that holds the API key"
    )
    json_mode: Literal["auto", "json_schema", "json_object", "none"] = "auto"
    extra_body: dict[str, Any] = Field(default_factory=dict)
    mode: Literal["online", "batch"] = Field(
        "online", description="online: one call per request; batch: the server's Files + Batches API, at its discount"
    )
    batch: BatchSettings = Field(default_factory=BatchSettings, description="limits and polling of mode: batch")

    @field_validator("base_url")
    @classmethod
    def _check_urls(cls, value: str | list[str]) -> str | list[str]:
        urls = [value] if isinstance(value, str) else value
        if not urls:
            raise ValueError("needs at least one URL")
        for url in urls:
            if not url.startswith(("http://", "https://")):
                raise ValueError(f"{url!r} is not an http:// or https:// URL")
        return value

    @property
    def urls(self) -> list[str]:
        urls = [self.base_url] if isinstance(self.base_url, str) else list(self.base_url)
        return [u.rstrip("/") for u in urls]


@register_backend("openai", OpenAIConfig)
class OpenAIBackend:
    """Chat completions over HTTP with one pooled aiohttp session."""

    def __init__(self, config: OpenAIConfig):
        self.config = config
        self._session: aiohttp.ClientSession | None = None
        self._urls = itertools.cycle(config.urls)
        self._headers: dict[str, str] = {}
        self._json_mode: str | None = None if config.json_mode == "auto" else config.json_mode
        self._probe_lock: asyncio.Lock | None = None

    def identity(self) -> dict[str, Any]:
        return {"backend": "openai", "model": self.config.model}

    def _open(self) -> aiohttp.ClientSession:
        headers = {"Content-Type": "application/json"}
        if self.config.api_key_env:
            key = os.environ.get(self.config.api_key_env)
            if not key:
                raise FatalModelError(
                    f"environment variable {self.config.api_key_env} (model.api_key_env) is not set"
                )
            headers["Authorization"] = f"Bearer {key}"
        self._headers = headers
        # Building an SSL context loads the system's certificates: skip it
        # when every server is plain http (a local vLLM, Ollama, llama.cpp).
        plain = all(url.startswith("http://") for url in self.config.urls)
        connector = aiohttp.TCPConnector(limit=0, ttl_dns_cache=300, ssl=False if plain else True)
        self._session = aiohttp.ClientSession(
            connector=connector,
            timeout=aiohttp.ClientTimeout(total=self.config.timeout),
            skip_auto_headers=("User-Agent",),
        )
        return self._session

    async def complete(self, request: Request) -> Completion:
        if request.json_schema is None:
            return await self._post(request, "none")
        if self._json_mode is not None:
            return await self._post(request, self._json_mode)
        return await self._probe_json_mode(request)

    async def _probe_json_mode(self, request: Request) -> Completion:
        """Find how this server takes a schema, once, while other requests wait."""
        if self._probe_lock is None:
            self._probe_lock = asyncio.Lock()
        async with self._probe_lock:
            if self._json_mode is not None:
                return await self._post(request, self._json_mode)
            for mode in JSON_MODES:
                try:
                    completion = await self._post(request, mode)
                except (RequestRejected, ServerError) as exc:
                    if mode == "none":
                        raise
                    last = exc
                    continue
                self._json_mode = mode
                return completion
            raise last  # pragma: no cover - "none" either returns or raises above

    def batch_provider(self):
        """The server's Batch API, for `mode: batch` (see batch.py)."""
        from .openai_batch import OpenAIBatches

        return OpenAIBatches(self.config)

    @property
    def json_mode(self) -> str | None:
        """The way this server takes a JSON schema, once found."""
        return self._json_mode

    async def _post(self, request: Request, json_mode: str) -> Completion:
        session = self._session or self._open()
        body = chat_body(request, self.config.model, json_mode)
        if self.config.extra_body:
            body.update(self.config.extra_body)
        url = next(self._urls) + "/chat/completions"
        try:
            async with session.post(url, data=dumps(body), headers=self._headers) as resp:
                status = resp.status
                raw = await resp.read()
                if status != 200:
                    raise _status_error(url, status, raw, resp.headers)
        except ModelError:
            raise
        except asyncio.TimeoutError:
            raise RequestTimeout(f"no answer from {url} within {self.config.timeout:g} s") from None
        except aiohttp.ClientConnectorError as exc:
            raise ConnectionLost(f"cannot connect to {url}: {exc.os_error}") from None
        except (aiohttp.ClientError, OSError) as exc:
            raise ConnectionLost(f"connection to {url} failed: {type(exc).__name__} {exc}") from None
        try:
            data = loads(raw)
        except ValueError:
            raise BadResponse(f"{url} answered 200 with a body that is not JSON: {raw[:80]!r}") from None
        return parse_chat_answer(data)

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


def _status_error(url: str, status: int, raw: bytes, headers: Any) -> ModelError:
    detail = _error_detail(raw)
    message = f"{url} answered {status}: {detail}"
    if status == 429:
        return RateLimited(message, retry_after=_retry_after(headers))
    if status >= 500:
        return ServerError(message, status=status)
    if status in (401, 403):
        return FatalModelError(f"{url} refused the credentials ({status}): {detail}", status=status)
    if status == 404:
        return FatalModelError(f"{url} not found (404): {detail}; check base_url and model", status=status)
    return RequestRejected(message, status=status)


def _error_detail(raw: bytes) -> str:
    try:
        data = json.loads(raw)
        error = data.get("error", data) if isinstance(data, dict) else data
        if isinstance(error, dict):
            error = error.get("message", error)
        text = str(error)
    except ValueError:
        text = raw.decode("utf-8", "replace")
    text = " ".join(text.split())
    return text[:200] or "(empty body)"


def _retry_after(headers: Any) -> float | None:
    """Seconds to wait, from `retry-after-ms`, or `Retry-After` in seconds or as an HTTP date."""
    ms = headers.get("retry-after-ms")
    if ms:
        try:
            return max(0.0, float(ms) / 1000)
        except ValueError:
            pass
    value = headers.get("Retry-After")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())
