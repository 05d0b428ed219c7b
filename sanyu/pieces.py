"""Long recordings in pieces: cut at pauses as they decode, and put back together once transcribed.

The batch job and the server both use this, so that no process ever holds a long recording whole
and one long recording is spread over many model calls (workers, or turns on a server's model
between other requests).

`split_audio` streams a file through the one decoder (`sanyu.audio.stream_audio`: bounded in
length, memory and time) and cuts it into pieces of about ``piece_seconds``: a recording of at
most 1.25 × ``piece_seconds`` is one piece; a longer one is cut in the middle of the longest
non-speech stretch Silero VAD finds in the last 30 s before each target length, or at the
quietest 100 ms there when the speech never pauses. The last piece is only given once the whole
file has decoded cleanly, so a file found truncated or too long at its end raises AudioError,
never a last piece.

`shift_transcript` and `merge_pieces` turn the pieces' transcripts back into one.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator, Sequence
from typing import NamedTuple

import numpy as np

from sanyu.audio import DEFAULT_MAX_DURATION_S, SAMPLE_RATE, Cancel, MediaInfo, Source, stream_audio
from sanyu.schema import Transcript

CUT_SEARCH_SECONDS = 30.0  # where a piece may end: this long before its target length
MIN_CUT_GAP_SECONDS = 0.3  # a pause at least this long is a good place to cut


class Piece(NamedTuple):
    index: int
    last: bool
    offset: float  # seconds from the start of the recording
    samples: np.ndarray  # float32 at SAMPLE_RATE


class Pieces:
    """The pieces of one recording, as they decode (see the module doc). ``info`` is the
    probe (taken when this is made: a file that is not audio fails here); iterating yields
    `Piece`s; ``close()`` (or leaving a ``with`` block) stops ffmpeg early."""

    def __init__(self, source: Source, piece_seconds: float,
                 max_duration: float = DEFAULT_MAX_DURATION_S, *, timeout: float | None = None,
                 cancel: Cancel | None = None):
        if piece_seconds <= 2 * MIN_CUT_GAP_SECONDS:
            raise ValueError(f"piece_seconds must be more than {2 * MIN_CUT_GAP_SECONDS} s")
        self.piece_seconds = piece_seconds
        self._stream = stream_audio(source, max_duration, timeout=timeout, cancel=cancel,
                                    block_seconds=min(30.0, piece_seconds / 2))
        self.info: MediaInfo = self._stream.info
        self.name = self._stream.name  # what errors and transcripts call the file

    def __iter__(self) -> Iterator[Piece]:
        try:
            yield from _cut(self._stream, self.piece_seconds)
        finally:
            self._stream.close()

    def close(self) -> None:
        self._stream.close()

    def __enter__(self) -> Pieces:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def split_audio(source: Source, piece_seconds: float,
                max_duration: float = DEFAULT_MAX_DURATION_S) -> Iterator[Piece]:
    """The `Piece`s of a local file (see the module doc)."""
    with Pieces(source, piece_seconds, max_duration) as pieces:
        yield from pieces


def _cut(blocks: Iterator[np.ndarray], piece_seconds: float) -> Iterator[Piece]:
    piece = int(piece_seconds * SAMPLE_RATE)
    search = min(int(CUT_SEARCH_SECONDS * SAMPLE_RATE), piece // 2)
    held: list[np.ndarray] = []  # decoded blocks not yet given out, in order
    count = 0  # samples in `held`
    pending: Piece | None = None  # the last piece cut, given out once another follows it
    index, offset = 0, 0
    for block in blocks:
        held.append(block)
        count += len(block)
        # Cut only when what follows the cut would not itself be a sliver of a piece.
        while count > int(1.25 * piece):
            buffer = np.concatenate(held) if len(held) > 1 else held[0]
            cut = find_cut(buffer, piece - search, piece)
            if pending is not None:
                yield pending
                index += 1
            pending = Piece(index, False, offset / SAMPLE_RATE, buffer[:cut].copy())
            offset += cut
            held, count = [buffer[cut:]], len(buffer) - cut
    if count:
        if pending is not None:
            yield pending
            index += 1
        pending = Piece(index, False, offset / SAMPLE_RATE,
                        np.concatenate(held) if len(held) > 1 else held[0])
    if pending is None:  # stream_audio refuses an empty decode: not reached with it
        return
    yield pending._replace(last=True)


def find_cut(samples: np.ndarray, low: int, high: int) -> int:
    """A sample index in [low, high) to cut at: the middle of the longest pause VAD finds there,
    else the quietest 100 ms."""
    from faster_whisper.vad import VadOptions, get_speech_timestamps

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


def shift_transcript(transcript: Transcript, offset: float) -> Transcript:
    """Move every time of a piece's transcript by ``offset`` seconds (in place)."""
    if offset:
        for segment in transcript.segments:
            segment.start = round(segment.start + offset, 3)
            segment.end = round(segment.end + offset, 3)
            for word in segment.words:
                word.start = round(word.start + offset, 3)
                word.end = round(word.end + offset, 3)
    return transcript


def merge_pieces(pieces: Sequence[Transcript]) -> Transcript:
    """One transcript from the (time-shifted) transcripts of consecutive pieces."""
    first = pieces[0]
    segments = [segment for piece in pieces for segment in piece.segments]
    speech: dict[str, float] = defaultdict(float)
    for segment in segments:
        speech[segment.language] += segment.duration
    return Transcript(
        source=first.source,
        duration=round(sum(piece.duration for piece in pieces), 3),
        segments=segments,
        model=first.model,
        languages=sorted(speech, key=speech.get, reverse=True),
        speakers=[],
        options=first.options,
    )
