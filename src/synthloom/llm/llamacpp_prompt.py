"""Turn a Request into what llama.cpp decodes: prompt tokens, stops, grammar, sampling.

The batched engine must build exactly the prompt and sampler that
`Llama.create_chat_completion` builds, so that its answers are those of the
single-stream path and a recipe means the same thing on both. Rather than
re-implementing llama-cpp-python's chat-format choice (the GGUF's own Jinja
template, a guessed or a named format), its chat handler runs as it is, on a
stand-in `Llama` that keeps the arguments of `create_completion` instead of
generating: prompt tokens, the template's stop strings, the grammar of a JSON
schema and the default sampling settings all come from the real code.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .types import Request
from .wire import response_format

# llama-cpp-python's default when no seed is given: a random one per sampler.
RANDOM_SEED = 0xFFFFFFFF


@dataclass(frozen=True)
class Prepared:
    """One request in llama.cpp's terms; `max_tokens` is capped to the context."""

    prompt: list[int]
    stop: tuple[bytes, ...]
    grammar: str | None
    temperature: float
    top_k: int
    top_p: float
    min_p: float
    typical_p: float
    seed: int
    max_tokens: int
    logprobs: bool
    top_logprobs: int


class _Captured(Exception):
    def __init__(self, kwargs: dict[str, Any]):
        self.kwargs = kwargs


class _PromptOnly:
    """The part of `Llama` a chat handler uses, with `create_completion` recording its arguments."""

    verbose = False

    def __init__(self, model: Any):
        self._model = model

    def tokenize(self, text: bytes, add_bos: bool = True, special: bool = False) -> list[int]:
        return self._model.tokenize(text, add_bos, special)

    def create_completion(self, **kwargs: Any) -> Any:
        raise _Captured(kwargs)


def chat_handler(model: Any, chat_format: str | None) -> Any:
    """The handler `Llama(chat_format=...)` would pick for this model (see Llama.__init__)."""
    from llama_cpp import llama_chat_format as formats

    metadata = model.metadata()
    eos, bos = model.token_eos(), model.token_bos()
    templates = {k[10:]: v for k, v in metadata.items() if k.startswith("tokenizer.chat_template.")}
    if "tokenizer.chat_template" in metadata:
        templates["chat_template.default"] = metadata["tokenizer.chat_template"]
    if chat_format is None and "chat_template.default" in templates:
        chat_format = formats.guess_chat_format_from_gguf_metadata(metadata) or "chat_template.default"
    chat_format = chat_format or "llama-2"
    if chat_format in templates:
        return formats.Jinja2ChatFormatter(
            template=templates[chat_format],
            eos_token=model.token_get_text(eos) if eos != -1 else "",
            bos_token=model.token_get_text(bos) if bos != -1 else "",
            stop_token_ids=[eos],
        ).to_chat_handler()
    return formats.get_chat_completion_handler(chat_format)


def prepare(handler: Any, model: Any, request: Request, n_ctx: int) -> Prepared:
    """The request as the chat handler passes it to `create_completion`.

    Raises ValueError when the prompt does not fit `n_ctx`, as `Llama` does.
    """
    kwargs: dict[str, Any] = {
        "messages": list(request.messages),
        "temperature": request.temperature,
        "max_tokens": request.max_tokens,
        "stop": list(request.stop) if request.stop else [],
        "logprobs": request.logprobs,
        "top_logprobs": request.top_logprobs,
    }
    if request.top_p is not None:
        kwargs["top_p"] = request.top_p
    if request.json_schema is not None:
        kwargs["response_format"] = response_format(request.json_schema, "json_object")
    try:
        handler(llama=_PromptOnly(model), **kwargs)
    except _Captured as captured:
        args = captured.kwargs
    else:  # pragma: no cover - every handler ends in create_completion
        raise ValueError("the chat handler did not ask for a completion")
    prompt = list(args["prompt"])
    if len(prompt) >= n_ctx:
        raise ValueError(f"Requested tokens ({len(prompt)}) exceed context window of {n_ctx}")
    stop = args.get("stop") or []
    stop = [stop] if isinstance(stop, str) else stop
    grammar = args.get("grammar")
    max_tokens = args.get("max_tokens")
    room = n_ctx - len(prompt)
    return Prepared(
        prompt=prompt,
        stop=tuple(s.encode("utf-8") for s in stop if s),
        grammar=grammar._grammar if grammar is not None else None,
        temperature=float(args.get("temperature", 0.8)),
        top_k=int(args.get("top_k", 40)),
        top_p=float(args.get("top_p", 0.95)),
        min_p=float(args.get("min_p", 0.05)),
        typical_p=float(args.get("typical_p", 1.0)),
        seed=RANDOM_SEED if request.seed is None else int(request.seed),
        max_tokens=room if not max_tokens or max_tokens <= 0 else min(int(max_tokens), room),
        logprobs=request.logprobs,
        top_logprobs=request.top_logprobs if request.logprobs else 0,
    )
