"""Being a polite client: a request rate cap, backoff with jitter, and a pause when refusals pile up.

Why: YouTube (and any mirror) answers an impolite client with 429s and then 403s for hours; a fetch of
200k clips must slow down by itself instead of burning the whole list into ``rate_limited`` rows.  All
three pieces are shared by every worker thread of one fetcher, since the server sees them as one client.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass


class RateLimiter:
    """At most ``rate`` request starts per second across all threads (``None`` or ``<= 0``: no cap).

    A simple schedule of "next allowed start" rather than a token bucket: fetch requests are few and long,
    so bursts buy nothing and an even spacing is the politest shape.
    """

    def __init__(self, rate: float | None, *, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep):
        self.interval = 1.0 / rate if rate and rate > 0 else 0.0
        self._next = 0.0
        self._lock = threading.Lock()
        self._clock = clock
        self._sleep = sleep

    def acquire(self) -> None:
        if self.interval <= 0:
            return
        with self._lock:
            now = self._clock()
            start = max(now, self._next)
            self._next = start + self.interval
        delay = start - now
        if delay > 0:
            self._sleep(delay)


@dataclass
class Backoff:
    """Exponential backoff with full jitter: attempt ``n`` (0-based) waits ``uniform(0.5, 1) * min(cap,
    base * 2**n)``, or the server's ``Retry-After`` when it sent one (capped by ``max_retry_after``)."""

    base: float = 2.0
    cap: float = 60.0
    max_retry_after: float = 300.0
    rng: random.Random | None = None

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        if retry_after is not None and retry_after >= 0:
            return min(retry_after, self.max_retry_after)
        rng = self.rng or random
        return min(self.cap, self.base * (2 ** attempt)) * rng.uniform(0.5, 1.0)


class RefusalBreaker:
    """Pause every worker after ``threshold`` refusals (429/403) in a row.

    One success resets the count.  While paused, ``wait()`` blocks callers until the pause ends, so the
    whole fetcher goes quiet at once rather than each worker backing off on its own schedule.
    """

    def __init__(self, threshold: int = 10, pause: float = 60.0, *, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep):
        self.threshold = threshold
        self.pause = pause
        self._streak = 0
        self._until = 0.0
        self.pauses = 0
        self._lock = threading.Lock()
        self._clock = clock
        self._sleep = sleep

    def refused(self) -> None:
        with self._lock:
            self._streak += 1
            if self.threshold > 0 and self._streak >= self.threshold:
                self._until = self._clock() + self.pause
                self._streak = 0
                self.pauses += 1

    def succeeded(self) -> None:
        with self._lock:
            self._streak = 0

    def wait(self) -> float:
        """Block while a pause is on; returns the seconds waited."""
        with self._lock:
            remaining = self._until - self._clock()
        if remaining > 0:
            self._sleep(remaining)
            return remaining
        return 0.0


@dataclass
class Politeness:
    """The three pieces together, as the runner holds them."""

    limiter: RateLimiter
    backoff: Backoff
    breaker: RefusalBreaker

    def before_request(self) -> None:
        self.breaker.wait()
        self.limiter.acquire()
