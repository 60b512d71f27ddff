"""Running the async core from synchronous code, on uvloop when it is installed.

The model layer is async; commands and `synthloom.run()` are not. uvloop
cuts the client's CPU per request by about a third at high concurrency
(see benchmarks/throughput.py), so it is used whenever it is importable.

Ctrl-C: asyncio's own runner cancels only the main task, once, and forgets
the interrupt when that cancellation is absorbed somewhere below it (a rare
race in the HTTP stack let a run go on to the end and exit 0). Here the
first Ctrl-C cancels every task of the loop and is remembered: the call
always ends in KeyboardInterrupt. A second Ctrl-C interrupts at once.
"""

from __future__ import annotations

import asyncio
import signal
import sys
import threading
from typing import Any, Callable, Coroutine, TypeVar

T = TypeVar("T")


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


def run_async(coro: Coroutine[Any, Any, T]) -> T:
    factory = _loop_factory()
    if sys.version_info < (3, 11):  # no asyncio.Runner; Ctrl-C raises KeyboardInterrupt inside the loop
        if factory is None:
            return asyncio.run(coro)
        import uvloop

        return uvloop.run(coro)
    with asyncio.Runner(loop_factory=factory) as runner:
        if threading.current_thread() is not threading.main_thread():
            return runner.run(coro)
        loop = runner.get_loop()
        interrupted = False

        def cancel_everything() -> None:
            for task in asyncio.all_tasks(loop):
                task.cancel()

        def on_sigint(signum: int, frame: Any) -> None:
            nonlocal interrupted
            if interrupted:
                raise KeyboardInterrupt
            interrupted = True
            loop.call_soon_threadsafe(cancel_everything)

        previous = signal.signal(signal.SIGINT, on_sigint)
        try:
            result = runner.run(coro)
        except asyncio.CancelledError:
            if interrupted:
                raise KeyboardInterrupt from None
            raise
        finally:
            signal.signal(signal.SIGINT, previous)
        if interrupted:
            raise KeyboardInterrupt
        return result
