"""From decoded windows to transcript segments: source times, kept text, and skipped speech."""

from __future__ import annotations

from dataclasses import dataclass, field

from sanyu.schema import Segment, Word
from sanyu.transcribe.language import is_latin_word
from sanyu.adapters.faster_whisper import Generation
from sanyu.transcribe.windows import Utterance, Window, utterance_at

# Speech with no text for this long, inside an utterance that has some, is decoded again.
RESCUE_SECONDS = 2.0
# After the point where a decode left its window unfinished, this much is enough: VAD pads
# speech by 0.2 s, so a shorter stretch may hold no word at all.
RESUME_SECONDS = 0.5
# A looped segment this long is decoded again on its own.
LOOP_RETRY_SECONDS = 1.0


@dataclass
class Result:
    """One decoded window's kept segments, in source time."""

    window: Window
    segments: list[Segment]
    # Kept segments whose decode was a repetition loop (their text collapsed): decoded again on
    # their own, and replaced if that decode is sound.
    looped: list[Segment] = field(default_factory=list)
    # Source time where the decode left the window unfinished: the speech after it is decoded
    # again, as faster-whisper seeks there (None: the decode spoke for the whole window).
    resume_at: float | None = None

    @property
    def stopped_at(self) -> float:
        """Source time up to which the decode spoke: where it left the window unfinished, else
        the window's end."""
        return self.resume_at if self.resume_at is not None else self.window.end

    @classmethod
    def drop(cls, window: Window, reason: str, resume_at: float | None = None) -> Result:
        """A window that gave no text; its utterances remember the guard that dropped them.
        ``resume_at``: where its decode left it unfinished (what follows is decoded again)."""
        for u in window.utterances:
            (u.parent or u).drop_reason = reason
        return cls(window, [], resume_at=resume_at)


def segment_of(window: Window, raw: dict, text: str, generation: Generation | None) -> Segment:
    """A transcript segment from one decoded segment of ``window`` (window times mapped back)."""
    words = [
        Word(
            start=round(float(window.to_source(w["start"])), 3),
            end=round(float(window.to_source(w["end"])), 3),
            text=w["word"],
            probability=round(float(w["probability"]), 4),
        )
        for w in raw.get("words") or []
    ]
    start, end = float(window.to_source(raw["start"])), float(window.to_source(raw["end"]))
    language = window.language or "en"
    if language in ("zh", "yue") and _latin_only(text):
        language = "en"  # English speech in a Chinese window comes out in Latin letters
    return Segment(
        start=round(max(start, window.start), 3),
        end=round(min(max(end, start), window.end), 3),
        text=text,
        language=language,
        words=words,
        avg_logprob=round(generation.avg_logprob, 4) if generation else None,
        no_speech_prob=round(generation.no_speech_prob, 4) if generation else None,
    )


def loops(result: Result) -> list[tuple[Utterance, float, float, Segment]]:
    """The stretches a window's looped segments cover, each with its utterance (the one it
    overlaps most) and the segment a sound decode of it would replace. A stretch runs over
    every utterance the segment overlaps: a decode that replaces the segment must speak for
    all of its speech."""
    window = result.window
    out = []
    for segment in result.looped:
        u = utterance_at(window.utterances, segment.start, segment.end)
        overlapped = [v for v in window.utterances if v.end > segment.start and v.start < segment.end] or [u]
        start, end = max(segment.start, overlapped[0].start), min(segment.end, overlapped[-1].end)
        if end - start >= LOOP_RETRY_SECONDS:
            out.append((u, start, end, segment))
    return out


def _latin_only(text: str) -> bool:
    """Letters, and all of them Latin (no Chinese character; full-width punctuation is fine)."""
    letters = [c for c in text if c.isalpha()]
    return bool(letters) and all(c.isascii() for c in letters)


def uncovered(result: Result) -> list[tuple[Utterance, float, float]]:
    """Speech of a window that none of its segments covers: a whole utterance without text
    (when the window held others, so that decoding it alone is another decode), or
    RESCUE_SECONDS of one; after the point where the decode left the window unfinished,
    RESUME_SECONDS."""
    window, resume_at = result.window, result.stopped_at
    out = []
    for u in window.utterances:
        spans = sorted(
            (max(s.start, u.start), min(s.end, u.end)) for s in result.segments
            if s.end > u.start and s.start < u.end
        )
        if not spans:
            if len(window.utterances) > 1:
                out.append((u, u.start, u.end))
            elif u.end - max(u.start, resume_at) >= RESUME_SECONDS:
                out.append((u, max(u.start, resume_at), u.end))
            continue
        cursor = u.start
        for start, end in [*spans, (u.end, u.end)]:
            if start - cursor >= RESCUE_SECONDS:
                out.append((u, cursor, start))
            elif start - max(cursor, resume_at) >= RESUME_SECONDS:
                out.append((u, max(cursor, resume_at), start))
            cursor = max(cursor, end)
    return out


def tag_word_languages(segment: Segment) -> None:
    """In Chinese segments, mark Latin-script words as English (code-switching)."""
    if segment.language in ("zh", "yue"):
        for word in segment.words:
            if is_latin_word(word.text):
                word.language = "en"
