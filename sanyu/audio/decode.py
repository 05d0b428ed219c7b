"""Decoding to 16 kHz mono float32, whole or block by block, bounded by a length limit.

One decode: open the file once (``MediaFile``), probe it, refuse it when the container already
declares more than the limit, then run ffmpeg on the same descriptor with ``-t`` just past the
limit and read its output into a buffer that never grows past that, so a header that lies
cannot make a decode cost more than the limit's worth of memory. At the end of the output:
refuse a decode that failed, reports damage, is empty, ran past the limit, or falls short of the
declared length by more than ``shortfall_tolerance``.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from sanyu.audio.media import MediaFile, Source, opened
from sanyu.audio.probe import INPUT_WHITELISTS, PROBE_TIMEOUT_S, MediaInfo, probe_media
from sanyu.audio.process import Cancel, Child, run_cancellable
from sanyu.errors import AudioError

SAMPLE_RATE = 16000
# Longer inputs are refused rather than decoded into many GB of memory.
DEFAULT_MAX_DURATION_S = 12 * 3600.0
# What stream_audio yields at a time (the batch job's blocks).
BLOCK_SECONDS = 30.0
# ffmpeg's -t is this far past the limit, so output that reaches it proves the input too long.
_LIMIT_MARGIN_S = 1.0
# Resampling may end a few samples past a length that sits exactly at the limit.
_LIMIT_SLACK = SAMPLE_RATE // 100
# ffmpeg warnings that mean the data ends early or is damaged (e.g. a WAV cut mid-copy).
CORRUPTION = re.compile(r"corrupt|truncat|invalid data|error while decoding|partial file", re.I)


@dataclass
class Audio:
    """Decoded audio: mono float32 samples at SAMPLE_RATE, and where they came from."""

    samples: np.ndarray
    source: str
    sample_rate: int = SAMPLE_RATE

    @property
    def duration(self) -> float:
        return len(self.samples) / self.sample_rate

    def slice(self, start: float, end: float) -> np.ndarray:
        return self.samples[int(start * self.sample_rate) : int(end * self.sample_rate)]


def decode_timeout(max_duration: float) -> float:
    """Seconds a decode may take. ffmpeg decodes audio at hundreds of times real time, so one
    slower than 20x over the whole limit is hung or pathological, not busy."""
    return 60.0 + max_duration / 20.0


def shortfall_tolerance(declared: float) -> float:
    """How far short of its declared length a decode may end and still count as whole.
    Containers are routinely a little off (encoder delay and padding, AAC priming, Opus
    pre-skip, timescale rounding, a last partial frame): tens of milliseconds, and up to about
    1% on long files. A copy cut short or a header patched to claim more loses far more."""
    return max(1.0, 0.02 * declared)


def span(seconds: float) -> str:
    """A length for messages: 45.0 s, 12.5 min, 3.0 h."""
    if seconds < 120:
        return f"{seconds:.1f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


class _Decoding:
    """The probe, the limits, and the ffmpeg child of one decode of an open file."""

    def __init__(self, media: MediaFile, max_duration: float, timeout: float | None,
                 cancel: Cancel | None, own_media: bool = False):
        if not 0 < max_duration < math.inf:
            raise ValueError(f"max_duration must be a positive number of seconds, not {max_duration!r}")
        self.media, self.name, self.cancel, self.own_media = media, media.name, cancel, own_media
        self.decoded = 0  # samples handed out (by a stream)
        self.max_duration = max_duration
        self.limit = int(max_duration * SAMPLE_RATE) + _LIMIT_SLACK  # most samples accepted
        self.cap = int((max_duration + _LIMIT_MARGIN_S) * SAMPLE_RATE)  # most ffmpeg may write
        self.timeout = decode_timeout(max_duration) if timeout is None else timeout
        self.child: Child | None = None
        started = time.monotonic()
        self.info: MediaInfo = probe_media(
            media, timeout=min(PROBE_TIMEOUT_S, self.timeout), cancel=cancel
        )
        self._left = self.timeout - (time.monotonic() - started)
        declared = self.info.duration
        if self.info.exact and declared > max_duration:
            raise AudioError(self.name, f"too long: {span(declared)} exceeds the {span(max_duration)} limit")

    def start(self) -> Child:
        argv = [
            "ffmpeg", "-nostdin", "-hide_banner", "-nostats", "-loglevel", "warning",
            *INPUT_WHITELISTS, "-i", self.media.url(), "-map", "0:a:0", "-ac", "1",
            "-ar", str(SAMPLE_RATE), "-t", f"{self.max_duration + _LIMIT_MARGIN_S:.3f}",
            "-c:a", "pcm_f32le", "-f", "f32le", "pipe:1",
        ]
        self.child = Child(argv, name=self.name, timeout=max(self._left, 0.0), cancel=self.cancel,
                           pass_fds=(self.media.fd,), watch={"damage": CORRUPTION}, budget=self.timeout)
        return self.child

    def too_long(self) -> AudioError:
        """Kill ffmpeg; the error for output that went past the limit."""
        self.close()
        declared = self.info.duration
        said = "" if declared is None else f", though the file declares {span(declared)}"
        return AudioError(
            self.name, f"too long: more than the {span(self.max_duration)} limit decoded{said}"
        )

    def finish(self, decoded: int) -> None:
        """The checks at the end of ffmpeg's output, ``decoded`` samples long."""
        code = self.child.wait()
        log = self.child.log
        if code != 0:
            raise AudioError(self.name, f"cannot decode audio ({log.reason('ffmpeg failed')})")
        if decoded > self.limit:
            raise self.too_long()
        if "damage" in log.first:
            raise AudioError(self.name, f"truncated or corrupt audio data (ffmpeg: {log.first['damage']})")
        if decoded == 0:
            raise AudioError(self.name, "no audio samples (zero-length recording)")
        seconds, declared = decoded / SAMPLE_RATE, self.info.duration
        if self.info.exact and declared - seconds > shortfall_tolerance(declared):
            raise AudioError(
                self.name,
                f"truncated: the file declares {declared:.1f} s but only {seconds:.1f} s can be decoded",
            )

    def read_all(self) -> np.ndarray:
        """The whole output, in a buffer sized from the declared length and grown (up to the
        limit) only when the file holds more than it declares."""
        child = self.start()
        declared = self.info.duration
        guess = 600 * SAMPLE_RATE if declared is None else int(declared * 1.02 * SAMPLE_RATE) + SAMPLE_RATE
        buffer = np.empty(min(self.cap, guess), dtype=np.float32)
        view, filled = memoryview(buffer).cast("B"), 0
        try:
            while True:
                if filled == len(view):
                    if len(buffer) >= self.cap:
                        raise self.too_long()
                    grown = np.empty(min(self.cap, 2 * len(buffer)), dtype=np.float32)
                    grown[: len(buffer)] = buffer
                    buffer, view = grown, memoryview(grown).cast("B")
                got = child.readinto(view[filled:])
                if not got:
                    break
                filled += got
            samples = filled // 4
            self.finish(samples)
        except BaseException:
            buffer = view = grown = None  # the traceback keeps this frame, not the samples
            raise
        waste = len(buffer) - samples
        return buffer[:samples].copy() if waste > max(SAMPLE_RATE, len(buffer) // 10) else buffer[:samples]

    def close(self) -> None:
        if self.child is not None:
            self.child.close()
        if self.own_media:
            self.media.close()


def decode_audio(
    path: Source, max_duration: float = DEFAULT_MAX_DURATION_S, *, timeout: float | None = None,
    cancel: Cancel | None = None,
) -> Audio:
    """The first audio stream of a local file as 16 kHz mono float32.

    AudioError naming the file and the reason for anything that is not a whole recording of
    at most ``max_duration`` seconds. ``timeout`` (default ``decode_timeout(max_duration)``)
    bounds the wall-clock time, probe included; ``cancel.cancel()`` from another thread kills
    ffmpeg and raises DecodeCancelled here.
    """
    with opened(path) as media:
        decoding = _Decoding(media, max_duration, timeout, cancel)
        try:
            samples = decoding.read_all()
        finally:
            decoding.close()
        return Audio(samples=samples, source=media.name)


async def decode_audio_async(
    path: Source, max_duration: float = DEFAULT_MAX_DURATION_S, *, timeout: float | None = None
) -> Audio:
    """``decode_audio`` for asyncio code: runs in a thread of its own, and cancelling the
    awaiting task (client gone, ``asyncio.wait_for``) kills ffmpeg before it returns."""
    return await run_cancellable(decode_audio, path, max_duration, timeout=timeout)


class AudioStream:
    """Blocks of ``block_seconds`` (the last one shorter) of 16 kHz mono float32, decoded as
    they are asked for, with the same checks and limits as ``decode_audio``: a failure raises
    AudioError before the iteration ends, so a consumer that sees the end has the whole file.

    Created by ``stream_audio``, which opens and probes the file at once (``info`` is the
    probe; a bad file fails there). ffmpeg starts at the first block and is killed by
    ``close()``, by leaving a ``with`` block, by an exception escaping a ``for`` loop over it,
    or by ``cancel``. ``timeout`` counts only time spent waiting for ffmpeg, not the time the
    consumer spends on a block.
    """

    def __init__(self, source: Source, max_duration: float, block_seconds: float,
                 timeout: float | None, cancel: Cancel | None):
        own = not isinstance(source, MediaFile)
        media = MediaFile.open(source) if own else source
        try:
            self._decoding = _Decoding(media, max_duration, timeout, cancel, own_media=own)
        except BaseException:
            if own:
                media.close()
            raise
        self.info, self.name = self._decoding.info, media.name
        # The generator holds the decoding, not this object: no cycle, so dropping the last
        # reference to the stream (an exception leaving a for loop) kills ffmpeg at once.
        self._blocks = _blocks(self._decoding, max(1, int(block_seconds * SAMPLE_RATE)))

    @property
    def decoded(self) -> int:
        """Samples given out so far."""
        return self._decoding.decoded

    @property
    def pid(self) -> int | None:
        """ffmpeg's process id while it runs."""
        child = self._decoding.child
        return child.pid if child is not None and child.returncode is None else None

    def __iter__(self) -> Iterator[np.ndarray]:
        return self

    def __next__(self) -> np.ndarray:
        return next(self._blocks)

    def close(self) -> None:
        """Stop: kill ffmpeg if it runs, and close the file if this stream opened it."""
        self._blocks.close()
        self._decoding.close()

    def __enter__(self) -> AudioStream:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self) -> None:
        if hasattr(self, "_blocks"):
            self.close()


def _blocks(decoding: _Decoding, block_samples: int) -> Iterator[np.ndarray]:
    try:
        child = decoding.start()
        while True:
            block = np.empty(block_samples, dtype=np.float32)
            view, filled = memoryview(block).cast("B"), 0
            while filled < len(view) and (got := child.readinto(view[filled:])):
                filled += got
            count = filled // 4
            if decoding.decoded + count > decoding.limit:
                raise decoding.too_long()
            if filled < len(view):  # the end of ffmpeg's output
                decoding.finish(decoding.decoded + count)
                decoding.decoded += count
                if count:
                    yield block[:count]
                return
            decoding.decoded += count
            paused = time.monotonic()
            yield block
            child.extend(time.monotonic() - paused)
    except BaseException:
        block = view = None  # the traceback keeps this frame, not the samples
        raise
    finally:
        decoding.close()


def stream_audio(
    path: Source, max_duration: float = DEFAULT_MAX_DURATION_S, *,
    block_seconds: float = BLOCK_SECONDS, timeout: float | None = None, cancel: Cancel | None = None,
) -> AudioStream:
    """The first audio stream of a local file, block by block (see ``AudioStream``)."""
    return AudioStream(path, max_duration, block_seconds, timeout, cancel)

