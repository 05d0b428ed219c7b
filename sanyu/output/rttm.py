"""RTTM: speaker turns for scoring tools (labels, never display names), from the diarizer's
turns stored in the transcript."""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence

from sanyu.output.clean import clean_span, one_line, to_ms
from sanyu.paths import base_name
from sanyu.schema import Segment, SpeakerTurn, Transcript

RTTM_MERGE_GAP = 0.5  # same-speaker segments closer than this become one RTTM turn


def rttm_file_id(source: str) -> str:
    """The RTTM file id of a transcript's source: its file name less the extension."""
    name = base_name(source or "")
    stem = name.rsplit(".", 1)[0] if "." in name.lstrip(".") else name
    stem = re.sub(r"\s+", "_", stem.strip())
    return stem or "audio"


def _rttm_token(text: str) -> str:
    return re.sub(r"\s+", "_", text.strip()) or "NA"


def render_rttm_turns(turns: Iterable[SpeakerTurn], file_id: str) -> str:
    """One ``SPEAKER`` line per turn of positive length, in order of start."""
    file_id = _rttm_token(file_id)
    lines = []
    for turn in sorted(turns, key=lambda t: clean_span(t.start, t.end)):
        start, end = clean_span(turn.start, turn.end)
        duration = to_ms(end) - to_ms(start)
        if duration <= 0:
            continue
        lines.append(
            f"SPEAKER {file_id} 1 {to_ms(start) / 1000:.3f} {duration / 1000:.3f} "
            f"<NA> <NA> {_rttm_token(turn.speaker)} <NA> <NA>"
        )
    return "".join(line + "\n" for line in lines)


def transcript_turns(transcript: Transcript) -> list[SpeakerTurn]:
    """Speaker turns of the labelled segments; adjacent ones of one speaker merged."""
    turns: list[SpeakerTurn] = []
    previous: Segment | None = None
    for seg in transcript.segments:
        if not one_line(seg.text):
            continue
        start, end = clean_span(seg.start, seg.end)
        if seg.speaker:
            last = turns[-1] if turns else None
            if (
                last is not None
                and previous is not None
                and previous.speaker == seg.speaker
                and start - last.end <= RTTM_MERGE_GAP
            ):
                turns[-1] = SpeakerTurn(last.start, max(last.end, end), seg.speaker)
            else:
                turns.append(SpeakerTurn(start, end, seg.speaker))
        previous = seg
    return turns


def render_rttm(transcript: Transcript, speaker_names: Sequence[str] = ()) -> str:
    """The diarizer's own turns (overlaps included) when the transcript holds them; for a
    transcript stored before it did (schema version 1), turns rebuilt from its segments."""
    turns = transcript.turns or transcript_turns(transcript)
    return render_rttm_turns(turns, rttm_file_id(transcript.source))


def parse_rttm(text: str, file_id: str | None = None) -> list[SpeakerTurn]:
    """The ``SPEAKER`` turns of an RTTM text (only those of ``file_id`` when given)."""
    turns = []
    for number, line in enumerate(text.splitlines(), start=1):
        fields = line.split()
        if not fields or fields[0].startswith("#") or fields[0] != "SPEAKER":
            continue
        if len(fields) < 8:
            raise ValueError(f"RTTM line {number}: expected at least 8 fields: {line!r}")
        if file_id is not None and fields[1] != file_id:
            continue
        try:
            start, duration = float(fields[3]), float(fields[4])
        except ValueError:
            raise ValueError(f"RTTM line {number}: bad start or duration: {line!r}") from None
        if not (math.isfinite(start) and math.isfinite(duration)) or start < 0 or duration < 0:
            raise ValueError(f"RTTM line {number}: bad start or duration: {line!r}")
        turns.append(SpeakerTurn(start, round(start + duration, 6), fields[7]))
    return turns
