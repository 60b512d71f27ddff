"""OpenAI's Files + Batches API (also served by vLLM), for the `openai` backend's `mode: batch`.

The few calls a batch takes (upload, create, poll, download) go through the
`openai` SDK, which knows the protocol; its per-request cost does not
matter at a handful of calls per batch. Provider errors become the model
layer's errors: a server without the Batch API (404) or a file over its
size limit is a `BatchRefused` that names the setting or the file.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from .batch import BatchRefused, BatchSettings, BatchStatus
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
from .wire import chat_body, parse_chat_answer

ENDPOINT = "/v1/chat/completions"


class OpenAIBatches:
    """The Batch API of one OpenAI-compatible server (the config's first URL)."""

    def __init__(self, config: Any):
        self.config = config
        self.settings: BatchSettings = config.batch
        # No probing in batch mode: `auto` means the standard `json_schema` (OpenAI, vLLM).
        self.json_mode = "json_schema" if config.json_mode == "auto" else config.json_mode
        self.url = config.urls[0]
        self._client: Any = None

    def _open(self) -> Any:
        if self._client is None:
            try:
                import openai
            except ImportError:
                raise ImportError("model.mode: batch needs the openai package: pip install 'synthloom[batch]'") from None

            key = None
            if self.config.api_key_env:
                key = os.environ.get(self.config.api_key_env)
                if not key:
                    raise FatalModelError(f"environment variable {self.config.api_key_env} (model.api_key_env) is not set")
            self._client = openai.AsyncOpenAI(api_key=key or "unused", base_url=self.url,
                                              timeout=self.config.timeout, max_retries=2)
        return self._client

    def line(self, cid: str, request: Request) -> dict[str, Any]:
        body = chat_body(request, self.config.model, self.json_mode)
        if self.config.extra_body:
            body.update(self.config.extra_body)
        return {"custom_id": cid, "method": "POST", "url": ENDPOINT, "body": body}

    async def upload(self, path: Path) -> str | None:
        client = self._open()
        try:
            uploaded = await client.files.create(file=path, purpose="batch")
        except Exception as exc:
            raise _error(exc, f"{self.url}/files", upload=path, limit=self.settings.max_bytes) from None
        return uploaded.id

    async def find(self, part: str, file_id: str | None) -> str | None:
        """A batch this part made before a kill: the same input file, or our part id in its metadata."""
        if file_id is None:
            return None
        client = self._open()
        try:
            seen = 0
            async for batch in client.batches.list(limit=100):
                if batch.input_file_id == file_id or (batch.metadata or {}).get("synthloom_part") == part:
                    return batch.id
                seen += 1
                if seen >= 1000:
                    break
        except Exception as exc:
            raise _error(exc, f"{self.url}/batches") from None
        return None

    async def create(self, part: str, file_id: str | None, lines: list[dict[str, Any]]) -> str:
        client = self._open()
        try:
            batch = await client.batches.create(input_file_id=file_id, endpoint=ENDPOINT,
                                                completion_window=self.settings.completion_window,
                                                metadata={"synthloom_part": part})
        except Exception as exc:
            raise _error(exc, f"{self.url}/batches") from None
        return batch.id

    async def poll(self, batch_id: str) -> BatchStatus:
        client = self._open()
        try:
            batch = await client.batches.retrieve(batch_id)
        except Exception as exc:
            raise _error(exc, f"{self.url}/batches/{batch_id}") from None
        counts = batch.request_counts
        errors = [f"{e.code}: {e.message}" + (f" (line {e.line})" if e.line else "")
                  for e in ((batch.errors.data or []) if batch.errors else [])]
        return BatchStatus(batch.status, counts.completed if counts else 0, counts.failed if counts else 0,
                           counts.total if counts else 0, batch.output_file_id, batch.error_file_id, errors)

    async def results(self, batch_id: str, status: BatchStatus) -> tuple[dict[str, Completion], dict[str, tuple[str, str]]]:
        client = self._open()
        answers: dict[str, Completion] = {}
        errors: dict[str, tuple[str, str]] = {}
        for file_id in (status.output_file, status.error_file):
            if not file_id:
                continue
            try:
                content = await client.files.content(file_id)
            except Exception as exc:
                raise _error(exc, f"{self.url}/files/{file_id}/content") from None
            for raw in content.text.splitlines():
                if not raw.strip():
                    continue
                try:
                    data = json.loads(raw)
                    cid = data["custom_id"]
                except (ValueError, KeyError, TypeError):
                    raise BadResponse(f"batch {batch_id}: a result line is not JSON with a custom_id: {raw[:80]!r}") from None
                outcome = read_line(data)
                if isinstance(outcome, Completion):
                    answers[cid] = outcome
                else:
                    errors[cid] = outcome
        return answers, errors

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.close()
            self._client = None


def read_line(data: dict[str, Any]) -> Completion | tuple[str, str]:
    """One output or error line: the answer, or (kind, message)."""
    error = data.get("error")
    response = data.get("response") or {}
    code = response.get("status_code")
    if not error and code == 200:
        try:
            return parse_chat_answer(response.get("body"))
        except BadResponse as exc:
            return "bad_response", str(exc)
    if error:
        name = str(error.get("code") or "error")
        return ("expired" if "expired" in name else name), str(error.get("message") or name)
    body = response.get("body") or {}
    detail = body.get("error", body) if isinstance(body, dict) else body
    message = detail.get("message", detail) if isinstance(detail, dict) else detail
    if code is not None and 400 <= code < 500 and code != 429:
        return "rejected", f"{code}: {message}"
    return "server_error", f"{code}: {message}"


def _error(exc: Exception, url: str, upload: Path | None = None, limit: int | None = None) -> ModelError:
    """An `openai` SDK error as a model-layer error that says what to do."""
    import openai

    if isinstance(exc, openai.APITimeoutError):
        return RequestTimeout(f"no answer from {url}")
    if isinstance(exc, openai.APIConnectionError):
        return ConnectionLost(f"cannot reach {url}: {exc}")
    if not isinstance(exc, openai.APIStatusError):
        return BadResponse(f"{url}: {type(exc).__name__}: {exc}")
    status = exc.status_code
    detail = " ".join(str(getattr(exc, "message", exc)).split())[:200]
    if status == 413 and upload is not None:
        return BatchRefused(f"{upload}: the server refused the upload as too large ({detail}); "
                            f"lower model.batch.max_bytes (now {limit:,})")
    if status in (404, 405, 501):
        return BatchRefused(f"model.mode: batch, but {url} answered {status}: the server has no Batch API "
                            f"(Files + Batches); use mode: online")
    if status in (401, 403):
        return FatalModelError(f"{url} refused the credentials ({status}): {detail}", status=status)
    if status == 429:
        return RateLimited(f"{url} answered 429: {detail}")
    if status >= 500:
        return ServerError(f"{url} answered {status}: {detail}", status=status)
    if upload is not None:
        return BatchRefused(f"{upload}: the server refused the upload ({status}: {detail})")
    return RequestRejected(f"{url} answered {status}: {detail}", status=status)


__all__ = ["OpenAIBatches", "read_line"]
