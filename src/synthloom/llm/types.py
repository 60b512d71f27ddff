"""The values that cross the model layer: a request, a completion, and errors.

Every backend speaks these types, so the scheduler, the cache and the
generation code never see a provider's wire format. They are plain
dataclasses (not pydantic models) because they sit on the hot path: a run at
a thousand requests per second builds and hashes each of them once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Request:
    """One chat completion to ask for.

    `sample` tells apart several draws for the same prompt and `attempt` a
    re-ask after an unusable answer; both are part of the cache key, so each
    draw is paid for once and replayed on resume.
    """

    messages: tuple[dict[str, str], ...]
    temperature: float = 0.7
    max_tokens: int = 256
    top_p: float | None = None
    seed: int | None = None
    stop: tuple[str, ...] | None = None
    json_schema: dict[str, Any] | None = None
    logprobs: bool = False
    top_logprobs: int = 0
    sample: int = 0
    attempt: int = 0

    def to_json(self) -> dict[str, Any]:
        """The request as plain JSON values, the input of the cache key."""
        return {
            "messages": [dict(m) for m in self.messages],
            "temperature": self.temperature,
            "max_tokens": self.max_tokens,
            "top_p": self.top_p,
            "seed": self.seed,
            "stop": list(self.stop) if self.stop else None,
            "json_schema": self.json_schema,
            "logprobs": self.logprobs,
            "top_logprobs": self.top_logprobs,
            "sample": self.sample,
            "attempt": self.attempt,
        }


@dataclass
class Usage:
    """Tokens of one answer (or a sum); `cached_tokens`: the prompt tokens the provider read from
    its prompt cache (OpenAI's `prompt_tokens_details.cached_tokens`, Anthropic's
    `cache_read_input_tokens`), a part of `prompt_tokens`."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0

    def add(self, other: Usage) -> None:
        self.prompt_tokens += other.prompt_tokens
        self.completion_tokens += other.completion_tokens
        self.cached_tokens += other.cached_tokens


@dataclass
class TokenLogprob:
    token: str
    logprob: float
    top: list[tuple[str, float]] = field(default_factory=list)


@dataclass
class Completion:
    """A model's answer; `logprobs` is filled when the backend gives them."""

    text: str
    finish_reason: str | None = None
    usage: Usage = field(default_factory=Usage)
    logprobs: list[TokenLogprob] | None = None
    cached: bool = False
    batch: bool = False  # answered through a provider's batch API (priced at its discount)

    def to_json(self) -> dict[str, Any]:
        data = {
            "text": self.text,
            "finish_reason": self.finish_reason,
            # [prompt, completion], and the cached prompt tokens third when there are some
            "usage": [self.usage.prompt_tokens, self.usage.completion_tokens]
            + ([self.usage.cached_tokens] if self.usage.cached_tokens else []),
            "logprobs": None
            if self.logprobs is None
            else [[t.token, t.logprob, [list(p) for p in t.top]] for t in self.logprobs],
        }
        if self.batch:  # written only when true, so an online answer's stored bytes are as before
            data["batch"] = True
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any], cached: bool = False) -> Completion:
        logprobs = data.get("logprobs")
        return cls(
            text=data["text"],
            finish_reason=data.get("finish_reason"),
            usage=Usage(*data.get("usage", (0, 0))),
            logprobs=None
            if logprobs is None
            else [TokenLogprob(t, lp, [(a, b) for a, b in top]) for t, lp, top in logprobs],
            cached=cached,
            batch=bool(data.get("batch", False)),
        )


class ModelError(Exception):
    """A request that did not produce a usable completion.

    `kind` is a short stable name used for the manifest's failure counts.
    """

    kind = "error"
    retryable = False

    def __init__(self, message: str, *, status: int | None = None):
        super().__init__(message)
        self.status = status


class RateLimited(ModelError):
    kind = "rate_limited"
    retryable = True

    def __init__(self, message: str, *, retry_after: float | None = None, status: int = 429):
        super().__init__(message, status=status)
        self.retry_after = retry_after


class ServerError(ModelError):
    kind = "server_error"
    retryable = True


class RequestTimeout(ModelError):
    kind = "timeout"
    retryable = True


class ConnectionLost(ModelError):
    kind = "connection"
    retryable = True


class BadResponse(ModelError):
    """The server answered 200 with a body that is not a completion."""

    kind = "bad_response"
    retryable = True


class InvalidAnswer(ModelError):
    """The completion arrived but its content is unusable (unparsable, off schema)."""

    kind = "invalid_answer"
    retryable = True


class RequestRejected(ModelError):
    """The server refused this request (4xx other than 429); asking again will not help."""

    kind = "rejected"


class FatalModelError(ModelError):
    """Nothing will work until the user acts: wrong key, unknown model, no server."""

    kind = "fatal"
