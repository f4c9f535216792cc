"""One way to run work beside the API: a daemon thread calling a function every interval."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

__all__ = ["Periodic"]

log = logging.getLogger(__name__)


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
