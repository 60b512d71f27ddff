"""The Backend contract and the registry that maps a recipe's `backend:` name to it.

A new backend is one module: a config class (pydantic, with a `backend`
literal that names it) and a class with `complete()`, registered with
`@register_backend`. Third-party packages register theirs through the
`synthloom.backends` entry point group, so the core never grows an
`if name == ...` chain.
"""

from __future__ import annotations

from typing import Any, Callable, Protocol, TypeVar, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field

from .pricing import Budget, Price
from .types import Completion, Request


class BackendConfig(BaseModel):
    """Settings every backend shares: how hard the scheduler may push it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    backend: str
    concurrency: int = Field(8, ge=1, le=4096, description="requests in flight at once")
    max_attempts: int = Field(
        4, ge=1, le=100, description="tries per record, shared by errors and unusable answers"
    )
    timeout: float = Field(120.0, gt=0, description="seconds before a request is abandoned")
    requests_per_minute: float | None = Field(None, gt=0, description="an upper bound on the rate")
    price: Price | None = Field(None, description="money per million tokens (default: the built-in table, or free for a local model)")
    budget: Budget | None = Field(None, description="caps on the run's tokens or money, in all and per stage")


@runtime_checkable
class Backend(Protocol):
    """A language model that answers chat requests."""

    config: BackendConfig

    def identity(self) -> dict[str, Any]:
        """What makes two answers interchangeable: backend kind and model, never a key or URL."""

    async def complete(self, request: Request) -> Completion:
        """Answer one request or raise a `ModelError`."""

    async def aclose(self) -> None:
        """Release connections, threads and models."""


B = TypeVar("B")
_BACKENDS: dict[str, tuple[type[BackendConfig], Callable[[Any], Backend]]] = {}
_entry_points_loaded = False


def register_backend(name: str, config_class: type[BackendConfig]) -> Callable[[B], B]:
    """Class decorator: `@register_backend("openai", OpenAIConfig)`."""

    def decorate(cls: B) -> B:
        _BACKENDS[name] = (config_class, cls)  # type: ignore[assignment]
        return cls

    return decorate


def _load_entry_points() -> None:
    global _entry_points_loaded
    if _entry_points_loaded:
        return
    _entry_points_loaded = True
    from importlib.metadata import entry_points

    for ep in entry_points(group="synthloom.backends"):
        ep.load()


def backend_config_classes() -> tuple[type[BackendConfig], ...]:
    _load_entry_points()
    return tuple(config for config, _ in _BACKENDS.values())


def backend_names() -> list[str]:
    _load_entry_points()
    return sorted(_BACKENDS)


def create_backend(config: BackendConfig) -> Backend:
    """A backend object for `config`; nothing is loaded or connected until it is used."""
    _load_entry_points()
    try:
        _, factory = _BACKENDS[config.backend]
    except KeyError:
        raise ValueError(
            f"unknown backend {config.backend!r}; known: {', '.join(backend_names())}"
        ) from None
    return factory(config)


def config_for(name: str, **params: Any) -> BackendConfig:
    """Build a backend's config by name, e.g. `config_for("openai", base_url=..., model=...)`."""
    _load_entry_points()
    if name not in _BACKENDS:
        raise ValueError(f"unknown backend {name!r}; known: {', '.join(backend_names())}")
    return _BACKENDS[name][0](backend=name, **params)
