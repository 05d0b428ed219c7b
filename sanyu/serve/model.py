"""The model deployment: one loaded Transcriber per replica; concurrent requests are batched
onto it with ``@serve.batch`` (grouped by options, cut by audio seconds, bulk work after
interactive requests: `sanyu.serve.batching`) and run through `Transcriber.transcribe_many`.
Diarizing a long recording whole (`sanyu.serve.recording`) runs beside transcription, one at a
time."""

# No `from __future__ import annotations` here: Ray Serve reads the deployment's signatures.
import asyncio
import logging
import os
import threading
import time
from dataclasses import dataclass, replace
from typing import Any

import ray
from ray import serve

from sanyu.adapters.ray_serve import bind_replica_grpc_to_loopback
from sanyu.api import Transcriber
from sanyu.audio import Audio
from sanyu.options import TranscribeOptions
from sanyu.schema import Transcript
from sanyu.serve.batching import BatchStats, Coalescer, run_planned
from sanyu.serve.config import ServeConfig

log = logging.getLogger("sanyu.serve")


def _available_cpus() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


@dataclass
class _Item:
    audio: Audio
    options: TranscribeOptions
    bulk: bool = False  # a piece of a long recording, or a job: after interactive requests


# ---------------------------------------------------------------------------------------
# The model deployment


@serve.deployment(name="SanyuModel")
class SanyuModel:
    """One loaded Transcriber; concurrent requests are batched onto it with `@serve.batch`."""

    def __init__(self, config: ServeConfig):
        bind_replica_grpc_to_loopback()
        self.config = config
        model_options = config.model_options
        if model_options.cpu_threads == 0:
            # Ray sets OMP_NUM_THREADS to the replica's (fractional) CPUs; use the cores instead.
            model_options = replace(model_options, cpu_threads=_available_cpus())
        self.transcriber = Transcriber(model_options)
        self.node = ray.get_runtime_context().get_node_id()  # reported by /v1/stats
        self.stats = BatchStats()
        self.coalescer = self._new_coalescer()
        self._loaded = threading.Event()
        self._diarizing = threading.Lock()  # one diarization at a time beside transcription
        self._load_error: str | None = None
        self._load_seconds: float | None = None
        self.transcribe_batch.set_max_batch_size(config.max_batch_size)
        self.transcribe_batch.set_batch_wait_timeout_s(config.batch_wait_timeout_s)
        threading.Thread(target=self._load, name="sanyu-model-load", daemon=True).start()

    def _load(self) -> None:
        started = time.perf_counter()
        try:
            self.transcriber.engine  # noqa: B018 - loads Whisper
            if self.config.preload_diarizer and self.config.allow_diarize:
                self.transcriber.diarizer  # noqa: B018 - loads pyannote
        except Exception as exc:  # reported by ready() and to every request
            log.exception("loading models failed")
            self._load_error = f"{type(exc).__name__}: {exc}"
        finally:
            self._load_seconds = time.perf_counter() - started
            self._loaded.set()

    def ready(self) -> dict[str, Any]:
        return {
            "ready": self._loaded.is_set() and self._load_error is None,
            "loading": not self._loaded.is_set(),
            "error": self._load_error,
            "model": self.config.model_options.model,
            "load_seconds": self._load_seconds,
            # what a job's result key holds of the model as it runs here ("auto" resolved)
            "compute_type": self.transcriber.engine.compute_type if self._loaded.is_set()
            and self._load_error is None else None,
        }

    def _new_coalescer(self) -> Coalescer:
        return Coalescer(
            self._run_batch,
            max_items=self.config.max_batch_size,
            max_seconds=self.config.max_batch_audio_s,
            seconds=lambda item: item.audio.duration,
            stats=self.stats,
            bulk=lambda item: item.bulk,
        )

    def batch_stats(self) -> dict[str, Any]:
        return {**self.stats.to_dict(), "waiting": self.coalescer.waiting, "node": self.node}

    async def _wait_loaded(self) -> None:
        while not self._loaded.is_set():
            await asyncio.sleep(0.1)
        if self._load_error:
            raise RuntimeError(f"models failed to load: {self._load_error}")

    async def transcribe(self, audio: Audio, options: TranscribeOptions, bulk: bool = False) -> Transcript:
        await self._wait_loaded()
        result = await (await self.transcribe_batch(_Item(audio, options, bulk)))
        if isinstance(result, BaseException):
            raise result
        return result

    async def diarize(self, audio: Audio, transcript: Transcript, options: TranscribeOptions) -> Transcript:
        """Speakers on the transcript of a whole recording (transcribed in pieces)."""
        await self._wait_loaded()

        def run() -> Transcript:
            with self._diarizing:
                return self.transcriber.diarize(audio, transcript, options)

        return await asyncio.to_thread(run)

    # Requests are batched here (max_batch_size and the wait are set from the config in
    # __init__). Serve forms the next batch while the model is still busy with the last one, so
    # the handler only queues its batch for the model and returns one future per request; the
    # coalescer merges the batches waiting for the model into calls of up to max_batch_size.
    @serve.batch(max_batch_size=8, batch_wait_timeout_s=0.1)
    async def transcribe_batch(self, items: list[_Item]) -> list[asyncio.Future]:
        self.stats.batches += 1
        return self.coalescer.enqueue(items)

    def _run_batch(self, items: list[_Item]) -> list[Transcript | Exception]:
        return run_planned(
            items,
            keys=[item.options for item in items],
            durations=[item.audio.duration for item in items],
            max_seconds=self.config.max_batch_audio_s,
            call=lambda batch, options: self.transcriber.transcribe_many(
                [item.audio for item in batch], options
            ),
            stats=self.stats,
        )
