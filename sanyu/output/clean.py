"""What every transcript format shares: clean times, one-line text, speaker names, paragraphs.

* Times are cleaned before they are written: a non-finite or negative time becomes 0 and a
  segment whose end lies before its start has the two swapped, so no output carries a
  negative time or a reversed span.
* Speaker names: an entry ``LABEL=Name`` names that label (`sanyu.output.speakers`); any other
  entry names the speaker at its position among those entries, in the order of the
  transcript's ``speakers`` list, then any label found only on segments, then any found only
  in the diarizer's turns, each in label-number order (``SPEAKER_2`` before ``SPEAKER_10``); so
  with the usual ``speakers`` list ``SPEAKER_00`` gets the first name. A label without a
  (non-blank) name keeps its label.
* Paragraphs (TXT, DOCX and Markdown minutes): consecutive segments of one speaker make one
  paragraph; segments without a speaker make paragraphs of at most PARAGRAPH_SEGMENTS
  segments, broken at pauses longer than PARAGRAPH_PAUSE.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

from sanyu.output.speakers import split_names
from sanyu.schema import Segment, Transcript

PARAGRAPH_PAUSE = 2.0  # seconds of silence that start a new paragraph (no speakers)
PARAGRAPH_SEGMENTS = 5  # at most this many segments per paragraph (no speakers)
_RUN_OF_SPACES = re.compile(r"[ \t\n\r\v\f\x1c-\x1e\x85\u2028\u2029]+")


def clean_seconds(value: float | None) -> float:
    try:
        value = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return 0.0
    if not math.isfinite(value) or value < 0:
        return 0.0
    return value


def clean_span(start: float | None, end: float | None) -> tuple[float, float]:
    """A clean (start, end): never negative nor non-finite, and start <= end (a reversed
    span is swapped; a missing or non-finite end becomes the start)."""
    s = clean_seconds(start)
    try:
        e = float(end)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        e = s
    e = s if not math.isfinite(e) else max(e, 0.0)
    return (e, s) if e < s else (s, e)


def to_ms(seconds: float) -> int:
    return int(round(clean_seconds(seconds) * 1000))


def format_timestamp(seconds: float, decimal_marker: str = ",") -> str:
    """``HH:MM:SS,mmm`` (SRT) or, with ``decimal_marker="."``, ``HH:MM:SS.mmm`` (VTT)."""
    ms = to_ms(seconds)
    hours, ms = divmod(ms, 3_600_000)
    minutes, ms = divmod(ms, 60_000)
    secs, ms = divmod(ms, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}{decimal_marker}{ms:03d}"


def clock(seconds: float) -> str:
    """``HH:MM:SS``, rounded down: the second a paragraph starts in."""
    whole = int(clean_seconds(seconds))
    hours, whole = divmod(whole, 3600)
    minutes, secs = divmod(whole, 60)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}"


def one_line(text: str) -> str:
    """Text on one line: every run of whitespace that includes a line break becomes a space."""
    return _RUN_OF_SPACES.sub(" ", text or "").strip()


def _natural_key(label: str) -> tuple:
    return tuple(int(part) if part.isdigit() else part for part in re.split(r"(\d+)", label))


def speaker_order(transcript: Transcript) -> list[str]:
    """Speaker labels in the order ``speaker_names`` names them: the transcript's ``speakers``,
    then labels found only on segments, then labels found only in the diarizer's turns."""
    labels = [label for label in dict.fromkeys(transcript.speakers) if label]
    known = set(labels)
    extra = {seg.speaker for seg in transcript.segments if seg.speaker and seg.speaker not in known}
    labels += sorted(extra, key=_natural_key)
    known |= extra
    silent = {turn.speaker for turn in transcript.turns if turn.speaker not in known}
    return labels + sorted(silent, key=_natural_key)


def speaker_display_names(transcript: Transcript, speaker_names: Sequence[str] = ()) -> dict[str, str]:
    """Label -> the name to show; labels without a (non-blank) name map to themselves.
    ``LABEL=Name`` entries name a label, others go by position (`sanyu.output.speakers`)."""
    by_label, by_position = split_names(speaker_names)
    names: dict[str, str] = {}
    for index, label in enumerate(speaker_order(transcript)):
        name = by_position[index] if index < len(by_position) else ""
        name = one_line(by_label.get(label, name))
        names[label] = name or label
    return names


def paragraphs(segments: Sequence[Segment]) -> list[list[Segment]]:
    """`segments` grouped into the paragraphs of the minutes (see the module doc)."""
    grouped: list[list[Segment]] = []
    for segment in segments:
        last = grouped[-1] if grouped else None
        if last is not None and segment.speaker == last[-1].speaker:
            if segment.speaker:  # a speaker's turn is one paragraph however long
                last.append(segment)
                continue
            pause = clean_span(segment.start, segment.end)[0] - clean_span(last[-1].start, last[-1].end)[1]
            if pause <= PARAGRAPH_PAUSE and len(last) < PARAGRAPH_SEGMENTS:
                last.append(segment)
                continue
        grouped.append([segment])
    return grouped
