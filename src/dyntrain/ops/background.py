"""One way to run work beside the API: a daemon thread calling a function every interval
(and, for asyncio-only broker clients, one event loop on its own thread)."""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

__all__ = ["Periodic", "AsyncioThread"]

log = logging.getLogger(__name__)
T = TypeVar("T")


class Periodic:
    """Call ``fn`` every ``interval_s`` on a daemon thread until :meth:`stop` (or the ``with`` ends).

    An exception is logged and the next round comes as usual; ``stopping`` lets ``fn`` cut a
    long wait short (``self.stopping.wait(delay)`` returns True once stopped).

    >>> timer = Periodic("gc", lambda: None, 3600).start()  # doctest: +SKIP
    """

    def __init__(self, name: str, fn: Callable[[], object], interval_s: float, *, first_at_once: bool = False):
        self.name, self.fn, self.interval_s, self.first_at_once = name, fn, interval_s, first_at_once
        self.stopping = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=f"dyntrain-{name}", daemon=True)

    def _loop(self) -> None:
        if self.first_at_once and not self.stopping.is_set():
            self._round()
        while not self.stopping.wait(self.interval_s):
            self._round()

    def _round(self) -> None:
        try:
            self.fn()
        except Exception:
            log.exception("%s failed; trying again in %.0f s", self.name, self.interval_s)

    def start(self) -> "Periodic":
        self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        self.stopping.set()
        self._thread.join(timeout=timeout)

    def __enter__(self) -> "Periodic":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


class AsyncioThread:
    """An asyncio event loop on a daemon thread, for asyncio-only clients (NATS, AMQP) used from threads.

    >>> loop = AsyncioThread("broker"); loop.run(asyncio.sleep(0), timeout=1)  # doctest: +SKIP
    """

    def __init__(self, name: str):
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name=f"dyntrain-{name}", daemon=True)
        self._thread.start()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float) -> T:
        """Run ``coro`` on the loop and wait for its result (cancelled after ``timeout``)."""
        future = asyncio.run_coroutine_threadsafe(coro, self.loop)
        try:
            return future.result(timeout)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise TimeoutError(f"gave up after {timeout:.0f} s") from None

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> concurrent.futures.Future:
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    def stop(self, timeout: float = 5.0) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=timeout)
