"""Admission control: how much one ingress replica takes on at once.

Everything a client can make the server hold is bounded, and work over a bound is refused at
once with 429 and ``Retry-After`` rather than queued without end:

* synchronous requests being received, decoded or transcribed (``max_pending_requests``);
* jobs queued or running (``max_queued_jobs``);
* bytes of uploads on disk, counted as they arrive (``max_spool_mb``), for requests and jobs;
* recordings longer than one piece decoded and transcribed at once (``max_long_recordings``):
  the others wait their turn (within their own deadline), so long recordings never take every
  turn on the model.

The counters live in the ingress's event loop (one thread), so they need no lock. They are per
ingress replica: with several, each has its own.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from sanyu.serve.config import ServeConfig
from sanyu.serve.errors import APIError


def busy(message: str, retry_after_s: float) -> APIError:
    return APIError(429, f"{message}; try again in {retry_after_s:g} s", code="server_busy",
                    headers={"Retry-After": str(max(1, round(retry_after_s)))})


class Slots:
    """At most ``limit`` holders at once; one more is refused (429)."""

    def __init__(self, limit: int, what: str, retry_after_s: float):
        self.limit, self.what, self.retry_after_s = max(1, limit), what, retry_after_s
        self.used = 0

    def take(self) -> Slot:
        if self.used >= self.limit:
            raise busy(f"the server is busy: {self.used} {self.what} already", self.retry_after_s)
        self.used += 1
        return Slot(self)


class Slot:
    """One place in `Slots`, given back once (``release``, or leaving a ``with`` block)."""

    def __init__(self, slots: Slots):
        self._slots: Slots | None = slots

    def release(self) -> None:
        if self._slots is not None:
            self._slots.used -= 1
            self._slots = None

    def __enter__(self) -> Slot:
        return self

    def __exit__(self, *exc) -> None:
        self.release()


class Spool:
    """Bytes of uploads held on disk, across all requests and jobs of this replica."""

    def __init__(self, max_bytes: int, retry_after_s: float):
        self.max_bytes, self.retry_after_s = max_bytes, retry_after_s
        self.used = 0

    def reserve(self) -> SpoolShare:
        return SpoolShare(self)


class SpoolShare:
    """What one upload holds of the `Spool`; ``take`` as bytes arrive (429 past the cap),
    ``release`` once its files are removed."""

    def __init__(self, spool: Spool):
        self.spool, self.held = spool, 0

    def room(self) -> int:
        return self.spool.max_bytes - self.spool.used

    def take(self, count: int) -> None:
        if count > self.room():
            raise busy(
                f"the server is busy: its upload space ({self.spool.max_bytes / 2**20:g} MB) "
                "is full", self.spool.retry_after_s,
            )
        self.spool.used += count
        self.held += count

    def release(self) -> None:
        self.spool.used -= self.held
        self.held = 0


class Admission:
    """The bounds of one ingress replica (see the module doc)."""

    def __init__(self, config: ServeConfig):
        retry = config.retry_after_s
        self.requests = Slots(config.max_pending_requests, "requests in progress", retry)
        self.jobs = Slots(config.max_queued_jobs, "jobs queued or running", retry)
        self.spool = Spool(int(config.max_spool_mb * 2**20), retry)
        self._long = asyncio.Semaphore(max(1, config.max_long_recordings))
        self.long_waiting = 0

    @contextlib.asynccontextmanager
    async def long_recording(self) -> AsyncIterator[None]:
        """A turn to decode and transcribe a long recording; waits for one to end."""
        self.long_waiting += 1
        try:
            await self._long.acquire()
        finally:
            self.long_waiting -= 1
        try:
            yield
        finally:
            self._long.release()

    def stats(self) -> dict:
        return {
            "requests": self.requests.used, "jobs": self.jobs.used,
            "spool_bytes": self.spool.used, "long_waiting": self.long_waiting,
        }
