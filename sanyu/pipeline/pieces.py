"""Cutting long recordings into pieces at pauses, so that all workers share one long input.

Every file streams through the one decoder (`sanyu.audio.stream_audio`, bounded in length,
memory and time), block by block; one longer than 1.25 × ``piece_seconds`` is cut into pieces
of about ``piece_seconds`` (default 10 min) at a pause: the cut goes in the middle of the longest non-speech stretch Silero VAD finds in the last 30 s before the
target length, or at the quietest 100 ms there when the speech never pauses. No process holds
more than a few pieces of a recording.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
from faster_whisper.vad import VadOptions, get_speech_timestamps

from sanyu.audio import DEFAULT_MAX_DURATION_S, SAMPLE_RATE, stream_audio
from sanyu.errors import AudioError
from sanyu.pipeline.settings import DEFAULT_PIECE_SECONDS

CUT_SEARCH_SECONDS = 30.0  # where a piece may end: this long before its target length
MIN_CUT_GAP_SECONDS = 0.3  # a pause at least this long is a good place to cut


def split_audio(
    path: str, piece_seconds: float = DEFAULT_PIECE_SECONDS
) -> Iterator[tuple[int, bool, float, np.ndarray]]:
    """(index, last, offset seconds, float32 samples) for each piece of a local audio file.

    The file streams through `sanyu.audio.stream_audio`; a long one is cut at pauses (see the
    module doc). The last piece is only given once the whole file has decoded cleanly, so a
    file found truncated at its end yields an AudioError, never a last piece.
    """
    blocks = stream_audio(path, DEFAULT_MAX_DURATION_S, block_seconds=min(30.0, piece_seconds / 2))
    yield from _cut(blocks, piece_seconds)


def _cut(blocks: Iterator[np.ndarray], piece_seconds: float):
    piece = int(piece_seconds * SAMPLE_RATE)
    search = min(int(CUT_SEARCH_SECONDS * SAMPLE_RATE), piece // 2)
    buffer = np.empty(0, dtype=np.float32)
    pending: tuple[float, np.ndarray] | None = None
    index, offset = 0, 0
    for block in blocks:
        buffer = np.concatenate([buffer, block]) if len(buffer) else block
        # Cut only when what follows the cut would not itself be a sliver of a piece.
        while len(buffer) > int(1.25 * piece):
            cut = find_cut(buffer, piece - search, piece)
            if pending is not None:
                yield index, False, pending[0], pending[1]
                index += 1
            pending = (offset / SAMPLE_RATE, buffer[:cut].copy())
            offset += cut
            buffer = buffer[cut:]
    if len(buffer):
        if pending is not None:
            yield index, False, pending[0], pending[1]
            index += 1
        pending = (offset / SAMPLE_RATE, buffer)
    if pending is None:
        raise AudioError("", "no audio samples (zero-length recording)")
    yield index, True, pending[0], pending[1]


def find_cut(samples: np.ndarray, low: int, high: int) -> int:
    """A sample index in [low, high) to cut at: the middle of the longest pause VAD finds there,
    else the quietest 100 ms."""
    window = samples[low:high]
    speech = get_speech_timestamps(
        window, VadOptions(min_silence_duration_ms=int(MIN_CUT_GAP_SECONDS * 1000), speech_pad_ms=0)
    )
    edges = [0] + [x for ts in speech for x in (ts["start"], ts["end"])] + [len(window)]
    gaps = [(edges[i + 1] - edges[i], edges[i]) for i in range(0, len(edges), 2)]
    length, start = max(gaps)
    if length >= MIN_CUT_GAP_SECONDS * SAMPLE_RATE or not speech:
        return low + start + length // 2
    frame = SAMPLE_RATE // 10
    usable = len(window) // frame * frame
    energy = (window[:usable].reshape(-1, frame) ** 2).mean(axis=1)
    return low + int(np.argmin(energy)) * frame + frame // 2


# ---- transcribe: the Whisper actor pool ------------------------------------------------------
