"""The model layer: one async Backend contract, its registry, the scheduler and the cache.

Importing this package registers the built-in backends (`openai`,
`anthropic`, `llamacpp`, `fake`); none of them loads a model or opens a connection
until its first request.
"""

from . import anthropic, fake, llamacpp, openai  # noqa: F401  (registration)
from .anthropic import AnthropicBackend, AnthropicConfig
from .cache import CompletionCache, cache_key
from .fake import FakeBackend, FakeConfig
from .llamacpp import LlamaCppBackend, LlamaCppConfig, bundled_model_path
from .openai import OpenAIBackend, OpenAIConfig
from .registry import (
    Backend,
    BackendConfig,
    backend_config_classes,
    backend_names,
    config_for,
    create_backend,
    register_backend,
)
from .scheduler import Outcome, RetryPolicy, RunAborted, Scheduler, SchedulerStats
from .session import Session
from .types import (
    BadResponse,
    Completion,
    ConnectionLost,
    FatalModelError,
    InvalidAnswer,
    ModelError,
    RateLimited,
    Request,
    RequestRejected,
    RequestTimeout,
    ServerError,
    TokenLogprob,
    Usage,
)

__all__ = [
    "AnthropicBackend",
    "AnthropicConfig",
    "Backend",
    "BackendConfig",
    "BadResponse",
    "Completion",
    "CompletionCache",
    "ConnectionLost",
    "FakeBackend",
    "FakeConfig",
    "FatalModelError",
    "InvalidAnswer",
    "LlamaCppBackend",
    "LlamaCppConfig",
    "ModelError",
    "OpenAIBackend",
    "OpenAIConfig",
    "Outcome",
    "RateLimited",
    "Request",
    "RequestRejected",
    "RequestTimeout",
    "RetryPolicy",
    "RunAborted",
    "Scheduler",
    "SchedulerStats",
    "ServerError",
    "Session",
    "TokenLogprob",
    "Usage",
    "backend_config_classes",
    "backend_names",
    "bundled_model_path",
    "cache_key",
    "config_for",
    "create_backend",
    "register_backend",
]
