"""Scoring speaker diarization: DER (pyannote.metrics) and cpWER against per-speaker transcripts.

DER follows ../shared/eval/README.md: a 0.25 s collar around reference boundaries, overlapped
speech scored; `sanyu eval` and the benchmarks also give it without a collar (`COLLARS`), split
into missed speech, false alarm and speaker confusion (`DerScore`). Without a UEM the scored
region is the union of the reference's and hypothesis's extents (what pyannote.metrics does,
without its warning). Pooled over files, the components are summed (`pool_scores`).

Word-speaker accuracy (`word_speaker_accuracy`): of the transcript's words whose middle lies in
exactly one reference speaker's turn, the share whose speaker is that reference speaker, the
transcript's labels mapped one-to-one onto the reference's so that most words agree.

cpWER (concatenated minimum-permutation word error rate, as in CHiME-6): each speaker's words are
concatenated in time order on both sides; reference and hypothesis speakers are paired by
`scipy.optimize.linear_sum_assignment` so that the summed edit errors (counted by jiwer) are least;
speakers left unpaired count all their words as deletions or insertions. Text goes through the
project's normaliser (`sanyu.evaluation.text.normalize`); Chinese is counted in characters.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import jiwer
import numpy as np
from scipy.optimize import linear_sum_assignment

from sanyu import runtime

runtime.set_defaults(runtime.TELEMETRY_OFF)  # pyannote reads it when it is imported

from pyannote.core import Annotation, Segment, Timeline  # noqa: E402
from pyannote.metrics.diarization import DiarizationErrorRate  # noqa: E402

from sanyu.evaluation.text import normalize as normalize_text  # noqa: E402
from sanyu.output import parse_rttm  # noqa: E402
from sanyu.schema import SpeakerTurn, Transcript, join_texts  # noqa: E402

PathLike = str | os.PathLike


# --- reading references -------------------------------------------------------------------------


def read_rttm(path: PathLike) -> list[SpeakerTurn]:
    """The SPEAKER lines of an RTTM file as turns (every file id in it; time order)."""
    try:
        turns = parse_rttm(Path(path).read_text(encoding="utf-8"))
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from None
    return sorted(turns, key=lambda t: (t.start, t.end, t.speaker))


def read_uem(path: PathLike) -> list[tuple[float, float]]:
    """Scored regions of a UEM file: `<uri> <channel> <start> <end>` per line."""
    regions = []
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            fields = line.split()
            if not fields or fields[0].startswith(";"):
                continue
            if len(fields) < 4:
                raise ValueError(f"{path}:{number}: a UEM line needs 4 fields")
            regions.append((float(fields[2]), float(fields[3])))
    return regions


@dataclass(frozen=True)
class Utterance:
    start: float
    end: float
    speaker: str
    text: str


def read_stm(path: PathLike) -> list[Utterance]:
    """An STM file: `<uri> <channel> <speaker> <start> <end> [<label>] <text>` per line."""
    utterances = []
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip() or line.startswith(";;"):
                continue
            fields = line.split(maxsplit=5)
            if len(fields) < 5:
                raise ValueError(f"{path}:{number}: an STM line needs 5+ fields")
            text = fields[5] if len(fields) > 5 else ""
            if text.startswith("<") and ">" in text:  # optional <label> field
                text = text.split(">", 1)[1]
            utterances.append(
                Utterance(float(fields[3]), float(fields[4]), fields[2], text.strip())
            )
    return sorted(utterances, key=lambda u: (u.start, u.end))


# --- DER ----------------------------------------------------------------------------------------


def _annotation(turns: Iterable[SpeakerTurn], uri: str) -> Annotation:
    annotation = Annotation(uri=uri)
    for i, turn in enumerate(turns):
        if turn.end > turn.start:
            annotation[Segment(turn.start, turn.end), i] = turn.speaker
    return annotation


def _uem(regions: Sequence[tuple[float, float]], uri: str) -> Timeline:
    return Timeline([Segment(s, e) for s, e in regions if e > s], uri=uri)


def der_components(
    reference: PathLike | Sequence[SpeakerTurn],
    hypothesis_turns: Sequence[SpeakerTurn],
    uem_path: PathLike | None = None,
    collar: float = 0.25,
) -> dict[str, float]:
    """pyannote.metrics' DER components (total, confusion, missed detection, false alarm,
    correct, and "diarization error rate"), to report or pool over files."""
    uri = "file"
    ref_turns = read_rttm(reference) if isinstance(reference, (str, os.PathLike)) else reference
    ref = _annotation(ref_turns, uri)
    hyp = _annotation(hypothesis_turns, uri)
    if uem_path is not None:
        uem = _uem(read_uem(uem_path), uri)
    else:
        spans = [(t.start, t.end) for t in [*ref_turns, *hypothesis_turns] if t.end > t.start]
        extent = [(min(s for s, _ in spans), max(e for _, e in spans))] if spans else []
        uem = _uem(extent, uri)
    metric = DiarizationErrorRate(collar=collar, skip_overlap=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        components = metric(ref, hyp, uem=uem, detailed=True)
    return {name: float(value) for name, value in components.items()}


def der(
    reference_rttm_path: PathLike,
    hypothesis_turns: Sequence[SpeakerTurn],
    uem_path: PathLike | None = None,
    collar: float = 0.25,
) -> float:
    """Diarization error rate of `hypothesis_turns` against an RTTM file (0.25 s collar)."""
    return der_components(reference_rttm_path, hypothesis_turns, uem_path, collar)[
        "diarization error rate"
    ]


def pooled_der(components: Iterable[Mapping[str, float]]) -> float:
    """DER over several files: summed errors over summed reference speech."""
    total = errors = 0.0
    for c in components:
        total += c["total"]
        errors += c["confusion"] + c["missed detection"] + c["false alarm"]
    return errors / total if total else 0.0


COLLARS = (0.25, 0.0)


@dataclass(frozen=True)
class DerScore:
    """DER components in seconds (reference speech counts once per speaker when people overlap)."""

    total: float = 0.0
    missed: float = 0.0
    false_alarm: float = 0.0
    confusion: float = 0.0

    @classmethod
    def from_components(cls, components: Mapping[str, float]) -> DerScore:
        return cls(
            components["total"], components["missed detection"], components["false alarm"],
            components["confusion"],
        )

    def __add__(self, other: DerScore) -> DerScore:
        return DerScore(
            self.total + other.total, self.missed + other.missed,
            self.false_alarm + other.false_alarm, self.confusion + other.confusion,
        )

    def _share(self, seconds: float) -> float:
        return seconds / self.total if self.total else 0.0

    @property
    def rate(self) -> float:
        return self._share(self.missed + self.false_alarm + self.confusion)

    @property
    def missed_share(self) -> float:
        return self._share(self.missed)

    @property
    def false_alarm_share(self) -> float:
        return self._share(self.false_alarm)

    @property
    def confusion_share(self) -> float:
        return self._share(self.confusion)


def der_scores(
    reference: PathLike | Sequence[SpeakerTurn],
    hypothesis_turns: Sequence[SpeakerTurn],
    uem_path: PathLike | None = None,
    collars: Sequence[float] = COLLARS,
) -> dict[float, DerScore]:
    """DER of `hypothesis_turns` at each collar."""
    return {
        collar: DerScore.from_components(der_components(reference, hypothesis_turns, uem_path, collar))
        for collar in collars
    }


def pool_scores(scores: Iterable[DerScore]) -> DerScore:
    """DER over several files: summed components (each file weighs by its reference speech)."""
    return sum(scores, DerScore())


def word_speaker_accuracy(
    reference: Sequence[SpeakerTurn], transcript: Transcript
) -> tuple[int, int]:
    """(words whose speaker is right, words scored); see the module doc."""
    pairs = []
    for segment in transcript.segments:
        for word in segment.words:
            middle = (word.start + word.end) / 2
            speakers = {t.speaker for t in reference if t.start <= middle < t.end}
            if len(speakers) == 1:
                pairs.append((speakers.pop(), str(word.speaker or segment.speaker)))
    if not pairs:
        return 0, 0
    refs = sorted({r for r, _ in pairs})
    hyps = sorted({h for _, h in pairs})
    counts = np.zeros((len(refs), len(hyps)), dtype=np.int64)
    for r, h in pairs:
        counts[refs.index(r), hyps.index(h)] += 1
    rows, cols = linear_sum_assignment(counts, maximize=True)
    return int(counts[rows, cols].sum()), len(pairs)


def turns_from_transcript(transcript: Transcript) -> list[SpeakerTurn]:
    """Speaker turns as a diarized transcript holds them: one per segment with a speaker."""
    return [
        SpeakerTurn(s.start, s.end, s.speaker)
        for s in transcript.segments
        if s.speaker is not None and s.end > s.start
    ]


# --- cpWER --------------------------------------------------------------------------------------


@dataclass
class CpWER:
    errors: int
    reference_length: int
    # reference speaker -> hypothesis speaker (None: no hypothesis speaker was paired with it)
    mapping: dict[str, str | None]

    @property
    def rate(self) -> float:
        return self.errors / self.reference_length if self.reference_length else 0.0


def speaker_texts_from_stm(path: PathLike) -> dict[str, str]:
    """Each STM speaker's utterances joined in time order."""
    texts: dict[str, list[str]] = {}
    for utterance in read_stm(path):
        texts.setdefault(utterance.speaker, []).append(utterance.text)
    return {speaker: join_texts(parts) for speaker, parts in texts.items()}


def speaker_texts_from_transcript(transcript: Transcript) -> dict[str, str]:
    """Each speaker's segment texts joined in time order (segments without a speaker: "None")."""
    texts: dict[str, list[str]] = {}
    for segment in sorted(transcript.segments, key=lambda s: (s.start, s.end)):
        texts.setdefault(str(segment.speaker), []).append(segment.text)
    return {speaker: join_texts(parts) for speaker, parts in texts.items()}


CHARACTER_LANGUAGES = ("zh", "yue")  # scored per character


def _units(text: str, language: str, normalize: Callable[[str, str], str]) -> list[str]:
    normalized = normalize(text, language)
    if language in CHARACTER_LANGUAGES:
        return list(normalized.replace(" ", ""))
    return normalized.split()


def _errors(reference: list[str], hypothesis: list[str]) -> int:
    if not reference:
        return len(hypothesis)
    if not hypothesis:
        return len(reference)
    output = jiwer.process_words(" ".join(reference), " ".join(hypothesis))
    return output.substitutions + output.deletions + output.insertions


def cpwer(
    reference: Mapping[str, str],
    hypothesis: Mapping[str, str],
    language: str = "en",
    normalize: Callable[[str, str], str] | None = None,
) -> CpWER:
    """cpWER of per-speaker hypothesis texts against per-speaker reference texts.

    `normalize(text, language)` defaults to the project's scoring normaliser.
    """
    if normalize is None:
        normalize = normalize_text
    ref_names, hyp_names = list(reference), list(hypothesis)
    ref_units = [_units(reference[s], language, normalize) for s in ref_names]
    hyp_units = [_units(hypothesis[s], language, normalize) for s in hyp_names]
    size = max(len(ref_names), len(hyp_names))
    # Square cost matrix; the padding rows/columns stand for "no speaker" (empty text).
    cost = np.zeros((size, size), dtype=np.int64)
    for i in range(size):
        for j in range(size):
            ref = ref_units[i] if i < len(ref_units) else []
            hyp = hyp_units[j] if j < len(hyp_units) else []
            cost[i, j] = _errors(ref, hyp)
    rows, cols = linear_sum_assignment(cost)
    mapping: dict[str, str | None] = {}
    for i, j in zip(rows, cols):
        if i < len(ref_names):
            mapping[ref_names[i]] = hyp_names[j] if j < len(hyp_names) else None
    return CpWER(
        errors=int(cost[rows, cols].sum()),
        reference_length=sum(len(u) for u in ref_units),
        mapping=mapping,
    )
