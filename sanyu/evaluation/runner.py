"""`sanyu eval`: Sanyu side by side with plain faster-whisper on the same clips and model.

Each transcription starts from a fresh sampler (temperature fallback samples): a clip's figure
never depends on which clips, or which system, went before it."""

from __future__ import annotations

import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from sanyu.api import Transcriber
from sanyu.audio import decode_audio
from sanyu.evaluation import diarization
from sanyu.evaluation.dataset import Clip, JoinedPart, join_clips, load_clips
from sanyu.evaluation.text import Score, pooled, score
from sanyu.options import TranscribeOptions
from sanyu.schema import Transcript, join_texts


@dataclass
class ClipResult:
    clip: Clip
    system: str
    hypothesis: str
    score: Score | None
    seconds: float  # wall time of the transcription
    languages: list[str] = field(default_factory=list)
    audio_seconds: float | None = None
    der: dict | None = None  # collar -> DerScore, where the clip has a reference RTTM
    cpwer: diarization.CpWER | None = None  # where the clip has per-speaker references (STM)


def plain_faster_whisper(transcriber: Transcriber, path: str | Path, beam_size: int = 5) -> str:
    """The baseline: `WhisperModel.transcribe` with its defaults on the engine's model, from a
    fresh sampler as each of Sanyu's transcriptions here."""
    engine = transcriber.engine
    engine.fresh_sampler()
    return engine.backend.transcribe_plain(decode_audio(path).samples, beam_size)


def evaluate_clips(
    clips: list[Clip],
    transcriber: Transcriber,
    options: TranscribeOptions,
    baseline: bool = True,
    progress=None,
) -> list[ClipResult]:
    results = []
    for clip in clips:
        transcriber.engine.fresh_sampler()
        started = time.perf_counter()
        transcript = transcriber.transcribe_file(clip.path, options)
        elapsed = time.perf_counter() - started
        result = ClipResult(
            clip,
            "sanyu",
            transcript.text,
            score(clip.reference, transcript.text, clip.language) if clip.reference else None,
            elapsed,
            transcript.languages,
            transcript.duration,
        )
        if options.diarize:
            _score_speakers(result, transcript)
        results.append(result)
        if baseline and clip.reference:
            started = time.perf_counter()
            text = plain_faster_whisper(transcriber, clip.path, options.beam_size)
            results.append(
                ClipResult(
                    clip, "faster-whisper", text, score(clip.reference, text, clip.language),
                    time.perf_counter() - started, audio_seconds=transcript.duration,
                )
            )
        if progress:
            progress(clip)
    return results


def evaluate_joined(
    clips: list[Clip],
    transcriber: Transcriber,
    options: TranscribeOptions,
    baseline: bool = True,
    gap_s: float = 1.0,
) -> list[ClipResult]:
    """Each language's clips joined in name order (``gap_s`` apart, so one source's clips sit
    together) into one long recording, scored as a clip: the packed windows of a long
    recording against plain faster-whisper's sequential ones, where a clip of 30 s or less is
    one window for both."""
    by_language: dict[str, list[Clip]] = defaultdict(list)
    for clip in sorted(clips, key=lambda c: c.name):
        if clip.reference:
            by_language[clip.language].append(clip)
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for language, members in by_language.items():
            path = Path(tmp) / f"{language}_joined_{len(members)}_clips.wav"
            parts = join_clips(members, path, gap_s)
            reference = join_texts([part.reference for part in parts])
            results += evaluate_clips([Clip(path, language, reference)], transcriber, options, baseline)
    return results


def _score_speakers(result: ClipResult, transcript: Transcript) -> None:
    """DER (both collars) of the diarizer's turns where a reference RTTM exists; cpWER where a
    per-speaker transcript (STM) exists."""
    clip = result.clip
    if clip.rttm is not None:
        turns = transcript.turns or diarization.turns_from_transcript(transcript)
        result.der = diarization.der_scores(clip.rttm, turns, uem_path=clip.uem)
    if clip.stm is not None:
        result.cpwer = diarization.cpwer(
            diarization.speaker_texts_from_stm(clip.stm),
            diarization.speaker_texts_from_transcript(transcript),
            clip.language,
        )


def pooled_by_language(results: list[ClipResult]) -> dict[tuple[str, str], float]:
    groups: dict[tuple[str, str], list[Score]] = defaultdict(list)
    for result in results:
        if result.score is not None:
            groups[(result.system, result.clip.language)].append(result.score)
    return {key: pooled(scores) for key, scores in groups.items()}


@dataclass
class LanguageIdResult:
    accuracy: float
    segments: int
    confusions: dict[tuple[str, str], int]
    pooled: dict[str, float]  # per language, the joined file's error rate
    pooled_parts: dict[str, float]  # per language, the parts transcribed one by one
    transcript: Transcript


def _part_of(parts: list[JoinedPart], start: float, end: float) -> JoinedPart:
    return max(parts, key=lambda p: min(end, p.end) - max(start, p.start))


def evaluate_language_id(
    root: str | Path,
    transcriber: Transcriber,
    options: TranscribeOptions,
    per_language: int = 4,
    gap_s: float = 1.0,
    exclude: tuple[str, ...] = (),
    clips: list[Clip] | None = None,
    alone: bool = True,
) -> LanguageIdResult:
    """Join the `per_language` longest yue, zh and en clips (interleaved, `gap_s` apart) into one
    file, like turns of a meeting; score per-segment language tags and error rates.

    ``clips``: choose among these instead of every clip under ``root``; ``alone``: also transcribe
    each part on its own, for `pooled_parts`.
    Accuracy counts each output segment against the language of the part it overlaps most.
    """
    by_language = defaultdict(list)
    for clip in clips if clips is not None else load_clips(root, ("yue", "zh", "en")):
        if clip.reference and clip.name not in exclude:
            by_language[clip.language].append(clip)
    for language, clips in by_language.items():
        clips.sort(key=lambda c: decode_audio(c.path).duration, reverse=True)
        del clips[per_language:]
    order = []
    for i in range(per_language):
        for language in ("yue", "zh", "en"):
            if i < len(by_language[language]):
                order.append(by_language[language][i])
    with tempfile.TemporaryDirectory() as tmp:
        joined = Path(tmp) / "joined.wav"
        parts = join_clips(order, joined, gap_s)
        transcriber.engine.fresh_sampler()
        transcript = transcriber.transcribe_file(joined, options)
    confusions: dict[tuple[str, str], int] = defaultdict(int)
    texts: dict[int, list[str]] = defaultdict(list)
    for segment in transcript.segments:
        part = _part_of(parts, segment.start, segment.end)
        confusions[(part.language, segment.language)] += 1
        texts[parts.index(part)].append(segment.text)
    correct = sum(n for (truth, said), n in confusions.items() if truth == said)
    total = sum(confusions.values())
    joined_scores, part_scores = defaultdict(list), defaultdict(list)
    for index, (part, clip) in enumerate(zip(parts, order)):
        joined_text = join_texts(texts[index])
        joined_scores[part.language].append(score(part.reference, joined_text, part.language))
        if alone:
            transcriber.engine.fresh_sampler()
            text = transcriber.transcribe_file(clip.path, options).text
            part_scores[part.language].append(score(part.reference, text, part.language))
    return LanguageIdResult(
        accuracy=correct / total if total else 0.0,
        segments=total,
        confusions=dict(confusions),
        pooled={lang: pooled(s) for lang, s in joined_scores.items()},
        pooled_parts={lang: pooled(s) for lang, s in part_scores.items()},
        transcript=transcript,
    )
