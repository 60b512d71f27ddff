"""The OpenAI chat-completions wire format, spoken by most servers and by llama.cpp.

Both the HTTP backend and the in-process llama.cpp backend build request
bodies and read answers in this shape, so the translation lives here once.
"""

from __future__ import annotations

from typing import Any

from .types import BadResponse, Completion, Request, TokenLogprob, Usage

# How to ask for JSON that follows a schema. Servers differ: OpenAI and vLLM
# take "json_schema"; llama.cpp's server takes a schema inside "json_object".
JSON_MODES = ("json_schema", "json_object", "none")


def chat_body(request: Request, model: str | None, json_mode: str) -> dict[str, Any]:
    """The JSON body of a chat-completions call for `request`."""
    body: dict[str, Any] = {
        "messages": list(request.messages),
        "temperature": request.temperature,
        "max_tokens": request.max_tokens,
    }
    if model:
        body["model"] = model
    if request.top_p is not None:
        body["top_p"] = request.top_p
    if request.seed is not None:
        body["seed"] = request.seed
    if request.stop:
        body["stop"] = list(request.stop)
    if request.logprobs:
        body["logprobs"] = True
        if request.top_logprobs:
            body["top_logprobs"] = request.top_logprobs
    if request.json_schema is not None and json_mode != "none":
        body["response_format"] = response_format(request.json_schema, json_mode)
    return body


def response_format(schema: dict[str, Any], json_mode: str) -> dict[str, Any]:
    if json_mode == "json_schema":
        return {"type": "json_schema", "json_schema": {"name": "record", "schema": schema}}
    if json_mode == "json_object":
        return {"type": "json_object", "schema": schema}
    raise ValueError(f"unknown JSON mode {json_mode!r}; expected one of {JSON_MODES}")


def parse_chat_answer(data: Any) -> Completion:
    """Read a chat-completions answer; anything that is not one is a BadResponse."""
    try:
        choice = data["choices"][0]
        text = choice["message"]["content"]
    except (KeyError, IndexError, TypeError) as exc:
        raise BadResponse(f"answer without choices[0].message.content ({exc!r})") from None
    if text is None:
        text = ""
    if not isinstance(text, str):
        raise BadResponse("choices[0].message.content is not a string")
    usage = data.get("usage") or {}
    return Completion(
        text=text,
        finish_reason=choice.get("finish_reason"),
        usage=Usage(int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0),
                    int((usage.get("prompt_tokens_details") or {}).get("cached_tokens") or 0)),
        logprobs=_parse_logprobs(choice.get("logprobs")),
    )


def _parse_logprobs(data: Any) -> list[TokenLogprob] | None:
    if not data:
        return None
    content = data.get("content") if isinstance(data, dict) else None
    if content:  # the chat-completions shape
        return [
            TokenLogprob(
                t["token"],
                float(t["logprob"]),
                [(c["token"], float(c["logprob"])) for c in (t.get("top_logprobs") or [])],
            )
            for t in content
        ]
    tokens = data.get("tokens") if isinstance(data, dict) else None
    if tokens:  # the legacy completions shape, which llama-cpp-python returns in-process
        top = data.get("top_logprobs") or [None] * len(tokens)
        return [
            TokenLogprob(tok, float(lp), sorted((dict(t or {})).items(), key=lambda kv: -kv[1]))
            for tok, lp, t in zip(tokens, data["token_logprobs"], top)
        ]
    return None
