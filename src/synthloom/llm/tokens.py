"""Counting a request's prompt tokens before it is sent, with the model's own tokenizer when it is at hand.

- The embedded model (`llamacpp`): the GGUF file's own tokenizer and chat
  template (llama.cpp loads the vocabulary only, no weights), so the count
  is the one the model will report.
- OpenAI models: tiktoken, when it is installed and has the model's
  encoding locally, plus the chat format's few tokens per message.
- Anything else: an estimate of one token per four characters, and the
  counter says so (`exact = False`), so a plan never passes a guess off as
  a count.
"""

from __future__ import annotations

import contextlib
import functools
import io
import sys
from typing import Any, Protocol, Sequence

Messages = Sequence[dict[str, str]]


class TokenCounter(Protocol):
    name: str
    exact: bool

    def count(self, messages: Messages) -> int: ...


class CharEstimate:
    """About one token per four characters of the messages, plus a few per message."""

    name = "estimate (4 characters a token)"
    exact = False

    def count(self, messages: Messages) -> int:
        return sum(4 + len(m.get("content", "")) // 4 for m in messages) + 3


class GGUFCounter:
    """The GGUF model's tokenizer and chat template, loaded without the weights."""

    exact = True

    def __init__(self, path: str):
        from llama_cpp import Llama
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        self.name = f"the model's own tokenizer ({path.rsplit('/', 1)[-1]})"
        # Without its weights the model reports a training context of 0, so llama.cpp warns
        # "n_ctx_seq (512) > n_ctx_train (0)" at every plan: true of no real run, so kept quiet
        # (and shown after all if the load fails).
        said = io.StringIO()
        try:
            with contextlib.redirect_stderr(said):
                self.llama = Llama(model_path=path, vocab_only=True, verbose=False)
        except Exception:
            sys.stderr.write(said.getvalue())
            raise
        metadata = self.llama.metadata
        template = metadata.get("tokenizer.chat_template")
        if template is None:
            raise ValueError("the GGUF file has no chat template")
        vocab = self.llama._model

        def token_text(key: str) -> str:
            token = metadata.get(key)
            return vocab.token_get_text(int(token)) if token is not None else ""

        self.formatter = Jinja2ChatFormatter(
            template, eos_token=token_text("tokenizer.ggml.eos_token_id"), bos_token=token_text("tokenizer.ggml.bos_token_id"),
        )

    def count(self, messages: Messages) -> int:
        prompt = self.formatter(messages=list(messages)).prompt
        return len(self.llama.tokenize(prompt.encode("utf-8"), add_bos=False, special=True))


class TiktokenCounter:
    """tiktoken's encoding of an OpenAI model, with the chat format's overhead (3 per message, 3 to reply)."""

    exact = True

    def __init__(self, model: str):
        import tiktoken

        self.encoding = tiktoken.encoding_for_model(model)
        self.name = f"tiktoken ({self.encoding.name})"

    def count(self, messages: Messages) -> int:
        return sum(3 + len(self.encoding.encode(m.get("content", ""))) for m in messages) + 3


@functools.lru_cache(maxsize=8)
def _gguf(path: str) -> TokenCounter:
    return GGUFCounter(path)


def counter_for(config: Any) -> TokenCounter:
    """The best counter for a backend's model: exact where the tokenizer is at hand, else an estimate."""
    backend = getattr(config, "backend", None)
    try:
        if backend == "llamacpp":
            from .llamacpp import LlamaCppBackend

            return _gguf(str(LlamaCppBackend(config).model_path()))
        if backend == "openai":
            return TiktokenCounter(str(config.model).rsplit("/", 1)[-1])
    except Exception:  # no tokenizer here (not installed, no local encoding, no template): estimate
        pass
    return CharEstimate()


__all__ = ["CharEstimate", "GGUFCounter", "TiktokenCounter", "TokenCounter", "counter_for"]
