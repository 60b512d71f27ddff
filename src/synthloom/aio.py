"""Running the async core from synchronous code, on uvloop when it is installed.

The model layer is async; commands and `synthloom.run()` are not. uvloop
cuts the client's CPU per request by about a third at high concurrency
(see benchmarks/throughput.py), so it is used whenever it is importable.
"""

from __future__ import annotations

import asyncio
from typing import Any, Coroutine, TypeVar

T = TypeVar("T")


def run_async(coro: Coroutine[Any, Any, T]) -> T:
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coro)
    return uvloop.run(coro)
