"""The transcript: typed dataclasses shared by every entry point, and their JSON form."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

# 2: `turns` (the diarizer's own speaker turns) added; version-1 JSON still loads (no turns).
SCHEMA_VERSION = 2


@dataclass
class Word:
    start: float
    end: float
    text: str
    probability: float = 1.0
    # Set when a word's language differs from its segment's (English inside Cantonese).
    language: str | None = None
    speaker: str | None = None


@dataclass
class Segment:
    start: float
    end: float
    text: str
    language: str
    words: list[Word] = field(default_factory=list)
    speaker: str | None = None
    avg_logprob: float | None = None
    no_speech_prob: float | None = None

    @property
    def duration(self) -> float:
        return max(0.0, self.end - self.start)


@dataclass(frozen=True)
class SpeakerTurn:
    """A stretch of time one speaker holds, as diarization finds it."""

    start: float
    end: float
    speaker: str


@dataclass(frozen=True)
class Dropped:
    """An utterance VAD found that ended without text, and the guard that dropped it:
    ``no-speech`` (Whisper's no-speech rule), ``prompt-echo`` (the text only repeated the
    prompt) or ``empty`` (the decoder wrote nothing, even for the utterance alone)."""

    start: float
    end: float
    reason: str

    @property
    def duration(self) -> float:
        return max(0.0, self.end - self.start)


@dataclass
class Transcript:
    source: str
    duration: float
    segments: list[Segment] = field(default_factory=list)
    model: str | None = None
    # Languages in order of the share of speech time they hold.
    languages: list[str] = field(default_factory=list)
    speakers: list[str] = field(default_factory=list)
    options: dict[str, Any] = field(default_factory=dict)
    dropped: list[Dropped] = field(default_factory=list)
    # Who spoke when as the diarizer found it, overlapped speech included (two people at once
    # give two turns): what RTTM is written from. Empty when not diarized.
    turns: list[SpeakerTurn] = field(default_factory=list)

    @property
    def text(self) -> str:
        return join_texts(segment.text for segment in self.segments)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["schema_version"] = SCHEMA_VERSION
        data["text"] = self.text
        data["dropped_count"] = len(self.dropped)
        data["dropped_seconds"] = round(sum(d.duration for d in self.dropped), 3)
        return data

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), ensure_ascii=False, indent=indent)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Transcript:
        segments = [
            Segment(
                **{
                    **{k: v for k, v in seg.items() if k != "words"},
                    "words": [Word(**word) for word in seg.get("words", [])],
                }
            )
            for seg in data.get("segments", [])
        ]
        turns = [SpeakerTurn(**turn) for turn in data.get("turns") or []]
        known = {"source", "duration", "model", "languages", "speakers", "options"}
        dropped = [Dropped(**d) for d in data.get("dropped", [])]
        return cls(
            segments=segments, dropped=dropped, turns=turns, **{k: v for k, v in data.items() if k in known}
        )

    @classmethod
    def from_json(cls, text: str) -> Transcript:
        return cls.from_dict(json.loads(text))


def is_cjk(char: str) -> bool:
    code = ord(char)
    return (
        0x3400 <= code <= 0x9FFF
        or 0xF900 <= code <= 0xFAFF
        or 0x20000 <= code <= 0x2FFFF
        or 0x3000 <= code <= 0x303F  # CJK punctuation
        or 0xFF00 <= code <= 0xFFEF  # full-width forms
    )


def join_texts(parts) -> str:
    """Join text pieces with a space only where one side is not CJK (Chinese needs none)."""
    out = ""
    for part in parts:
        part = part.strip()
        if not part:
            continue
        if out and not (is_cjk(out[-1]) and is_cjk(part[0])):
            out += " "
        out += part
    return out
