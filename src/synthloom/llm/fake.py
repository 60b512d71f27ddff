"""The `fake` backend: a scripted model in this process.

For unit tests of logic and for rehearsing a recipe before paying for a
real model: it answers from a list of canned responses (in turn), or from a
Python function of the request, with optional latency. It never fakes a
feature's real test; integration tests use real servers and the embedded
model.
"""

from __future__ import annotations

import asyncio
import hashlib
from typing import Any, Callable, Literal

from pydantic import Field

from .registry import BackendConfig, register_backend
from .types import Completion, Request, Usage

Responder = Callable[[Request], "str | Completion"]


class FakeConfig(BackendConfig):
    backend: Literal["fake"] = "fake"
    responses: list[str] | None = Field(
        None, description="answers given in turn; default: a short text derived from the prompt"
    )
    latency: float = Field(0.0, ge=0)
    concurrency: int = Field(64, ge=1)


@register_backend("fake", FakeConfig)
class FakeBackend:
    """Answers without a model. `calls` lists every request it was sent."""

    def __init__(self, config: FakeConfig | None = None, responder: Responder | None = None):
        self.config = config or FakeConfig()
        self.responder = responder
        self.calls: list[Request] = []

    def identity(self) -> dict[str, Any]:
        return {"backend": "fake", "responses": self.config.responses}

    async def complete(self, request: Request) -> Completion:
        self.calls.append(request)
        if self.config.latency:
            await asyncio.sleep(self.config.latency)
        if self.responder is not None:
            answer = self.responder(request)
        elif self.config.responses:
            answer = self.config.responses[(len(self.calls) - 1) % len(self.config.responses)]
        else:
            answer = _default_answer(request)
        if isinstance(answer, Completion):
            return answer
        words = len(answer.split())
        prompt_words = sum(len(m.get("content", "").split()) for m in request.messages)
        return Completion(text=answer, finish_reason="stop", usage=Usage(prompt_words, words))

    async def aclose(self) -> None:
        return None


def _default_answer(request: Request) -> str:
    last = request.messages[-1].get("content", "") if request.messages else ""
    digest = hashlib.sha256(f"{last}|{request.seed}|{request.sample}|{request.attempt}".encode())
    return f"sample text {digest.hexdigest()[:12]} for: {last[:60]}"
