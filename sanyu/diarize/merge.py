"""Put speakers on a transcript: pure functions over `SpeakerTurn`s, words and segments (no models).

Rules:
- each word goes to the speaker whose turns overlap it most; where turns overlap each other
  (two people talking at once) that is the dominant one: more overlap with the word, then the
  longer-held turn; a word in a gap between turns goes to the nearest turn;
- a segment whose words change speaker is split there; each piece's text is rebuilt from its
  words (`join_texts`), its timing from its first and last word, its language kept;
- a segment without words gets the speaker overlapping it most (nearest turn if none does).

`apply_diarization` puts a Diarizer's result on a transcript: words go to speakers by the
turns with overlaps and the rules above, or by pyannote's exclusive turns (`WORD_TURNS`; on the
multi-speaker evaluation clips the rules above were never worse, docs/diarization.md), and the
transcript keeps the turns with overlaps for RTTM.

Speaker labels are kept as the turns give them (the Diarizer numbers them SPEAKER_00, SPEAKER_01,
… by first appearance); `Transcript.speakers` lists those that hold at least one segment, in order
of first appearance in the transcript.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from sanyu.schema import Segment, SpeakerTurn, Transcript, Word, join_texts

# Which of the Diarizer's turns put words on speakers: "overlapping" (the dominant speaker where
# turns overlap, by the rules above) or "exclusive" (pyannote's turns with at most one speaker at
# a time, made for this). Measured by bench/diarization.py --words.
WORD_TURNS = "overlapping"


@dataclass(frozen=True)
class Diarization:
    """What the Diarizer (`sanyu.diarize.pipeline`) finds: `turns` with overlapped speech (two
    people at once give two turns), and `exclusive` turns (at most one speaker at any time, the
    one pyannote finds most active), made for putting words on speakers. Both use the same
    labels."""

    turns: list[SpeakerTurn]
    exclusive: list[SpeakerTurn]
    # pyannote's own Annotation of `turns` (same labels, unrounded times); None when empty.
    annotation: Any = field(default=None, compare=False, repr=False)


class TurnIndex:
    """Turns sorted by start, for finding those overlapping or nearest to a span in O(log n)."""

    def __init__(self, turns: Iterable[SpeakerTurn]):
        self.turns = sorted(
            (t for t in turns if t.end > t.start), key=lambda t: (t.start, t.end, t.speaker)
        )
        self.starts = [t.start for t in self.turns]
        # max_end[i]: index of the turn ending latest among turns[: i + 1]
        self.max_end: list[int] = []
        best = -1
        for i, turn in enumerate(self.turns):
            if best < 0 or turn.end > self.turns[best].end:
                best = i
            self.max_end.append(best)

    def __bool__(self) -> bool:
        return bool(self.turns)

    def overlapping(self, start: float, end: float) -> list[SpeakerTurn]:
        """Turns sharing some time with [start, end] (touching counts for a zero-length span)."""
        if end > start:
            hi = bisect.bisect_left(self.starts, end)
        else:
            hi = bisect.bisect_right(self.starts, end)
        found = []
        i = hi - 1
        while i >= 0 and self.turns[self.max_end[i]].end >= start:
            turn = self.turns[i]
            if (turn.end > start and turn.start < end) or (
                end <= start and turn.start <= start <= turn.end
            ):
                found.append(turn)
            i -= 1
        return found

    def nearest(self, start: float, end: float) -> SpeakerTurn | None:
        """The turn closest to [start, end]; on a tie, the longer one."""
        if not self.turns:
            return None
        candidates = []
        hi = bisect.bisect_left(self.starts, end)
        if hi > 0:  # the turn ending last among those starting before `end`
            candidates.append(self.turns[self.max_end[hi - 1]])
        if hi < len(self.turns):  # the first turn starting at or after `end`
            candidates.append(self.turns[hi])

        def distance(turn: SpeakerTurn) -> float:
            return max(turn.start - end, start - turn.end, 0.0)

        return min(candidates, key=lambda t: (distance(t), -(t.end - t.start), t.start))


def speaker_for_span(index: TurnIndex, start: float, end: float) -> str | None:
    """The dominant speaker of [start, end]: most overlap, then longest turn; else nearest turn."""
    overlapping = index.overlapping(start, end)
    if overlapping:
        overlap: dict[str, float] = {}
        longest: dict[str, float] = {}
        for turn in overlapping:
            shared = max(0.0, min(end, turn.end) - max(start, turn.start))
            overlap[turn.speaker] = overlap.get(turn.speaker, 0.0) + shared
            longest[turn.speaker] = max(longest.get(turn.speaker, 0.0), turn.end - turn.start)
        return max(overlap, key=lambda s: (round(overlap[s], 6), longest[s], _reverse(s)))
    turn = index.nearest(start, end)
    return turn.speaker if turn is not None else None


def _reverse(label: str) -> tuple[int, ...]:
    """Sort key that prefers the lower label on a full tie (max() picks the largest key)."""
    return tuple(-ord(c) for c in label)


def split_segment(segment: Segment, speakers: Sequence[str | None]) -> list[Segment]:
    """`segment` cut where consecutive words change speaker; `speakers[i]` is word i's speaker."""
    if len(speakers) != len(segment.words):
        raise ValueError("one speaker per word is needed")
    runs: list[tuple[str | None, list[Word]]] = []
    for word, speaker in zip(segment.words, speakers):
        word = replace(word, speaker=speaker)
        if runs and runs[-1][0] == speaker:
            runs[-1][1].append(word)
        else:
            runs.append((speaker, [word]))
    if len(runs) == 1:
        speaker, words = runs[0]
        return [replace(segment, words=words, speaker=speaker)]
    return [
        replace(
            segment,
            start=words[0].start,
            end=max(w.end for w in words),
            text=join_texts(w.text for w in words),
            words=words,
            speaker=speaker,
        )
        for speaker, words in runs
    ]


def assign_speakers(transcript: Transcript, turns: Sequence[SpeakerTurn]) -> Transcript:
    """A new Transcript with `speaker` set on every segment and word (the input is not changed)."""
    index = TurnIndex(turns)
    segments: list[Segment] = []
    for segment in transcript.segments:
        if not index:
            segments.append(
                replace(
                    segment,
                    speaker=None,
                    words=[replace(w, speaker=None) for w in segment.words],
                )
            )
        elif segment.words:
            speakers = [speaker_for_span(index, w.start, w.end) for w in segment.words]
            segments.extend(split_segment(segment, speakers))
        else:
            speaker = speaker_for_span(index, segment.start, segment.end)
            segments.append(replace(segment, speaker=speaker, words=[]))
    return replace(
        transcript,
        segments=segments,
        speakers=speakers_in_order(segments),
        languages=list(transcript.languages),
        options=dict(transcript.options),
    )


def speakers_in_order(segments: Iterable[Segment]) -> list[str]:
    """Distinct segment speakers in order of first appearance."""
    seen: dict[str, None] = {}
    for segment in segments:
        if segment.speaker is not None:
            seen.setdefault(segment.speaker)
    return list(seen)


def apply_diarization(
    transcript: Transcript, diarization: Diarization, word_turns: str = WORD_TURNS
) -> Transcript:
    """`transcript` with speakers from a `Diarization`: words by its `word_turns` turns, and
    `turns` set to its turns with overlaps (the input is not changed)."""
    if word_turns not in ("exclusive", "overlapping"):
        raise ValueError(f"word_turns must be exclusive or overlapping, not {word_turns!r}")
    chosen = diarization.exclusive if word_turns == "exclusive" else diarization.turns
    return replace(assign_speakers(transcript, chosen), turns=list(diarization.turns))
