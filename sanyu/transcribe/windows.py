"""Utterances and the decoding windows they are packed into (pure logic, no model).

Whisper encodes 30 s at a time whatever the speech in it, so consecutive utterances of one
recording share a window (as faster-whisper's batched pipeline and WhisperS2T do) while each
keeps its own language decision. A window's audio is its utterances in order with the pauses
between them; a pause longer than ``KEPT_PAUSE_S`` is shortened to that (its two ends kept), so
silence does not take the room of speech. ``Window.to_source`` maps window time back.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np

WINDOW_SECONDS = 30.0
# Pauses inside a window are kept up to this long (chosen on fold A, docs/language.md): VAD
# sometimes calls a soft word a pause, and a shortened pause would cut it.
KEPT_PAUSE_S = 2.0
# A pause this long ends a window: what follows is likely another turn, and long windows of
# sparse speech give the decoder little context for the cost of a full encoder pass.
LONG_PAUSE_S = 6.0
# Audio kept around a window's first and last utterance, when the recording has it: VAD
# starts speech late on soft onsets ("In addition, ...").
EDGE_PAD_S = 0.3


@dataclass(eq=False)
class Utterance:
    """A stretch of speech VAD found in one recording, and what became of it."""

    item: int  # index of the recording in the call
    start: float
    end: float
    language: str | None = None  # decided language: a Whisper code, or "yue"
    language_probability: float = 1.0
    scores: dict[str, float] = field(default_factory=dict)  # detector, restricted to candidates
    dialect_score: float | None = None  # Cantonese evidence, when it was weighed
    drop_reason: str | None = None  # the guard that left it without text, if one did
    parent: Utterance | None = None  # the utterance a re-decoded stretch comes from

    @property
    def duration(self) -> float:
        return self.end - self.start


@dataclass(eq=False)
class Window:
    """Consecutive utterances of one recording decoded together, and the audio spans they use."""

    item: int
    utterances: list[Utterance]
    spans: list[tuple[float, float]]  # source times whose audio, in order, makes the window
    language: str | None = None
    features: np.ndarray | None = None  # its log-mel features, when computed ahead

    @property
    def start(self) -> float:
        return self.spans[0][0]

    @property
    def end(self) -> float:
        return self.spans[-1][1]

    @property
    def duration(self) -> float:
        return sum(end - start for start, end in self.spans)

    @property
    def speech_seconds(self) -> float:
        return sum(u.duration for u in self.utterances)

    def to_source(self, t: float) -> float:
        """Source time of window time ``t`` (clamped into the window)."""
        offset = 0.0
        for start, end in self.spans:
            if t <= offset + (end - start):
                return start + max(0.0, t - offset)
            offset += end - start
        return self.end

    def to_window(self, t: float) -> float:
        """Window time of source time ``t`` (a time in a shortened pause maps to its cut)."""
        offset = 0.0
        for start, end in self.spans:
            if t < start:
                return offset
            if t <= end:
                return offset + t - start
            offset += end - start
        return offset


def window_spans(
    utterances: Sequence[Utterance], duration: float, before: float = 0.0, after: float | None = None
) -> list[tuple[float, float]]:
    """The audio spans of a window holding ``utterances``: each utterance and the pause to the
    next, shortened to KEPT_PAUSE_S; EDGE_PAD_S around the ends, kept within (before, after)."""
    after = duration if after is None else after
    first, last = utterances[0], utterances[-1]
    spans = [[max(before, first.start - EDGE_PAD_S, 0.0), first.end]]
    for previous, current in zip(utterances, utterances[1:]):
        pause = current.start - previous.end
        if pause <= KEPT_PAUSE_S:
            spans[-1][1] = current.end
        else:
            spans[-1][1] = previous.end + KEPT_PAUSE_S / 2
            spans.append([current.start - KEPT_PAUSE_S / 2, current.end])
    spans[-1][1] = min(after, last.end + EDGE_PAD_S, duration)
    return [(s, e) for s, e in spans]


def _content(utterances: Sequence[Utterance]) -> float:
    """Window seconds ``utterances`` need, pauses shortened, edge padding included."""
    pauses = sum(
        min(b.start - a.end, KEPT_PAUSE_S) for a, b in zip(utterances, utterances[1:])
    )
    return sum(u.duration for u in utterances) + max(0.0, pauses) + 2 * EDGE_PAD_S


def recording_windows(utterances: Sequence[Utterance], duration: float) -> list[Window]:
    """A recording's first windows: the recording itself, whole, when it fits one window (as
    plain Whisper decodes it: trimming it saves no encoder work), else its utterances packed."""
    if utterances and duration <= WINDOW_SECONDS:
        return [Window(utterances[0].item, list(utterances), [(0.0, duration)])]
    return pack(utterances, duration)


def pack(utterances: Sequence[Utterance], duration: float, before: float = 0.0) -> list[Window]:
    """Consecutive utterances of one recording packed into windows of at most WINDOW_SECONDS,
    cut at pauses longer than LONG_PAUSE_S (speech decoded again is packed this way too, never
    as the whole recording); no audio before ``before``."""
    groups: list[list[Utterance]] = []
    for utterance in utterances:
        group = groups[-1] if groups else None
        if (
            group
            and utterance.start - group[-1].end <= LONG_PAUSE_S
            and _content([*group, utterance]) <= WINDOW_SECONDS
        ):
            group.append(utterance)
        else:
            groups.append([utterance])
    return windows_for(groups, duration, before)


def windows_for(
    groups: Sequence[Sequence[Utterance]], duration: float, before: float = 0.0,
    after: float | None = None,
) -> list[Window]:
    """One window per group of consecutive utterances; edge padding never reaches into the
    neighbouring groups' speech, nor outside (before, after)."""
    windows = []
    for i, group in enumerate(groups):
        low = groups[i - 1][-1].end if i else before
        high = groups[i + 1][0].start if i + 1 < len(groups) else after
        windows.append(Window(group[0].item, list(group), window_spans(group, duration, low, high)))
    return windows


def runs(utterances: Iterable[Utterance], key) -> Iterator[list[Utterance]]:
    """Maximal runs of consecutive utterances with the same ``key(utterance)``."""
    run: list[Utterance] = []
    for utterance in utterances:
        if run and key(run[-1]) != key(utterance):
            yield run
            run = []
        run.append(utterance)
    if run:
        yield run


def split_by(window: Window, key, duration: float) -> list[Window]:
    """``window`` itself when ``key`` agrees on all its utterances, else one window per run."""
    groups = list(runs(window.utterances, key))
    if len(groups) == 1:
        return [window]
    return windows_for(groups, duration, window.start, window.end)


def on_its_own(window: Window, utterance: Utterance, duration: float) -> Window:
    """``utterance`` alone, with the audio that cutting ``window`` around it gives it (`split_by`):
    so a check of it alone and a run of it alone encode the same audio."""
    pieces = split_by(window, lambda u: u is utterance, duration)
    return next(piece for piece in pieces if piece.utterances == [utterance])


def differs_from_neighbours(window: Window, utterance: Utterance, every: bool) -> bool:
    """Whether ``utterance``'s language differs from that of the utterances beside it in
    ``window``: from each of them (``every``: it stands alone in its language), or from one."""
    i = window.utterances.index(utterance)
    neighbours = window.utterances[max(0, i - 1) : i] + window.utterances[i + 1 : i + 2]
    differs = [n.language != utterance.language for n in neighbours]
    return bool(differs) and (all(differs) if every else any(differs))


def utterance_at(utterances: Sequence[Utterance], start: float, end: float) -> Utterance:
    """The utterance a stretch of time belongs to: most overlap, else the nearest."""

    def overlap(u: Utterance) -> float:
        return min(end, u.end) - max(start, u.start)

    return max(utterances, key=overlap)
