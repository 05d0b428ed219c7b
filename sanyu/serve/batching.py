"""How batched requests become calls to ``Transcriber.transcribe_many``.

Requests are grouped by their TranscribeOptions (one call runs one set of options), then each
group is cut, in arrival order, into sub-batches whose total audio stays under a cap in seconds:
ten 5-second questions ride together, a 20-minute recording goes alone. Both the count cap
(`max_batch_size`) and the audio cap bound how much work one model call holds.
"""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict, deque
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

T = TypeVar("T")


def split_by_seconds(durations: Sequence[float], max_seconds: float) -> list[list[int]]:
    """Indices cut into consecutive runs of at most ``max_seconds`` of audio each; an item
    longer than the cap makes a run of its own."""
    runs: list[list[int]] = []
    current: list[int] = []
    total = 0.0
    for index, seconds in enumerate(durations):
        if current and total + seconds > max_seconds:
            runs.append(current)
            current, total = [], 0.0
        current.append(index)
        total += seconds
    if current:
        runs.append(current)
    return runs


def plan_batches(
    keys: Sequence[Hashable], durations: Sequence[float], max_seconds: float
) -> list[list[int]]:
    """Indices of the items in each model call: same key (options) together, audio capped."""
    groups: dict[Hashable, list[int]] = defaultdict(list)
    for index, key in enumerate(keys):
        groups[key].append(index)
    plan = []
    for indices in groups.values():
        for run in split_by_seconds([durations[i] for i in indices], max_seconds):
            plan.append([indices[i] for i in run])
    return plan


@dataclass
class BatchStats:
    """Counters a replica reports: how requests were actually batched."""

    batches: int = 0  # @serve.batch calls
    calls: int = 0  # transcribe_many calls (sub-batches)
    items: int = 0
    audio_seconds: float = 0.0
    busy_seconds: float = 0.0
    sizes: dict[int, int] = field(default_factory=dict)  # items per call -> how many calls

    def record_call(self, size: int, audio_seconds: float) -> None:
        self.calls += 1
        self.items += size
        self.audio_seconds += audio_seconds
        self.sizes[size] = self.sizes.get(size, 0) + 1

    def to_dict(self) -> dict[str, Any]:
        return {
            "batches": self.batches,
            "calls": self.calls,
            "items": self.items,
            "audio_seconds": round(self.audio_seconds, 1),
            "busy_seconds": round(self.busy_seconds, 1),
            "mean_items_per_call": round(self.items / self.calls, 2) if self.calls else 0.0,
            "sizes": dict(sorted(self.sizes.items())),
        }


def run_planned(
    items: Sequence[T],
    keys: Sequence[Hashable],
    durations: Sequence[float],
    max_seconds: float,
    call: Callable[[list[T], Hashable], list[Any]],
    stats: BatchStats | None = None,
) -> list[Any]:
    """Run ``call`` on every planned sub-batch; one result (or the exception) per item.

    A sub-batch that fails is retried item by item, so one bad request fails alone.
    """
    results: list[Any] = [None] * len(items)
    for indices in plan_batches(keys, durations, max_seconds):
        key = keys[indices[0]]
        try:
            outputs = call([items[i] for i in indices], key)
            if stats is not None:
                stats.record_call(len(indices), sum(durations[i] for i in indices))
            for i, output in zip(indices, outputs):
                results[i] = output
        except Exception as exc:
            if len(indices) == 1:
                results[indices[0]] = exc
                continue
            for i in indices:
                try:
                    results[i] = call([items[i]], key)[0]
                    if stats is not None:
                        stats.record_call(1, durations[i])
                except Exception as single_exc:
                    results[i] = single_exc
    return results


class Coalescer:
    """Merges the batches that wait for one model into model-sized calls.

    Ray Serve's `@serve.batch` forms a batch from whatever is queued as soon as the previous one
    is *formed*, not when it has *finished* (with ``max_concurrent_batches=1`` the new batch then
    waits for the semaphore). While a long call runs, requests arriving one by one become batches
    of one or two, each waiting its turn. Here the batch handler only hands its items to one
    worker per replica (returning a future per item at once) which, each time the model is free,
    takes the oldest waiting items, up to ``max_items`` and ``max_seconds`` of audio (at least
    one item), and runs them in one call.

    Items ``bulk`` says are bulk work (the pieces of long recordings, jobs) wait in a queue of
    their own, taken only when no other item waits: a short request waits for at most the call
    the model is on.
    """

    def __init__(
        self,
        run: Callable[[list[T]], list[Any]],
        max_items: int,
        max_seconds: float,
        seconds: Callable[[T], float],
        stats: BatchStats | None = None,
        bulk: Callable[[T], bool] = lambda item: False,
    ):
        self.run = run
        self.max_items = max_items
        self.max_seconds = max_seconds
        self.seconds = seconds
        self.stats = stats
        self.bulk = bulk
        self._pending: deque = deque()  # interactive items first
        self._bulk: deque = deque()
        self._worker = None

    @property
    def waiting(self) -> int:
        return len(self._pending) + len(self._bulk)

    def enqueue(self, items: list[T]) -> list[Any]:
        """Queue ``items`` for the model; one asyncio future per item, resolved with its result
        (an exception object in place of a failed item's result). Call from the event loop."""
        loop = asyncio.get_running_loop()
        futures = [loop.create_future() for _ in items]
        for item, future in zip(items, futures):
            (self._bulk if self.bulk(item) else self._pending).append((item, future))
        if self._worker is None or self._worker.done():
            self._worker = loop.create_task(self._work())
        return futures

    def _take(self) -> list[tuple[T, Any]]:
        taken: list[tuple[T, Any]] = []
        total = 0.0
        for queue in (self._pending, self._bulk):
            while queue and len(taken) < self.max_items:
                item, future = queue[0]
                if future.done():  # cancelled while waiting
                    queue.popleft()
                    continue
                seconds = self.seconds(item)
                if taken and total + seconds > self.max_seconds:
                    return taken
                queue.popleft()
                taken.append((item, future))
                total += seconds
        return taken

    async def _work(self) -> None:
        while self._pending or self._bulk:
            taken = self._take()
            if not taken:
                continue
            started = time.perf_counter()
            try:
                results = await asyncio.to_thread(self.run, [item for item, _ in taken])
            except Exception as exc:  # run_planned reports per item; this is a bug guard
                results = [exc] * len(taken)
            finally:
                if self.stats is not None:
                    self.stats.busy_seconds += time.perf_counter() - started
            for (_, future), result in zip(taken, results):
                if not future.done():
                    future.set_result(result)
