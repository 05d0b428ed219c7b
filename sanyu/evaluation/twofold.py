"""`sanyu eval --folds`: every fold scored with settings fit on the other fold, never its own."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from sanyu.api import Transcriber
from sanyu.evaluation.dataset import load_clips
from sanyu.evaluation.dialect_training import train
from sanyu.evaluation.folds import read_folds, split
from sanyu.evaluation.runner import (
    ClipResult,
    LanguageIdResult,
    evaluate_clips,
    evaluate_joined,
    evaluate_language_id,
)
from sanyu.options import TranscribeOptions

PROBE_LANGUAGES = ("yue", "zh")


@dataclass
class FoldResult:
    """One fold's clips scored with settings chosen on the other fold."""

    fold: str
    trained_on: str  # the fold the dialect probe was fit on ("" when none was fit)
    results: list[ClipResult]
    language_id: LanguageIdResult | None
    joined: list[ClipResult] = field(default_factory=list)  # each language's clips as one recording


def evaluate_folds(
    root: str | Path,
    folds_path: str | Path,
    transcriber: Transcriber,
    options: TranscribeOptions,
    baseline: bool = True,
    language_id: bool = True,
    languages: tuple[str, ...] = ("en", "zh", "yue"),
    progress=None,
    joined: bool = True,
) -> list[FoldResult]:
    """Each fold scored with the dialect probe fit on the other fold's clips (never on its own),
    side by side with plain faster-whisper; its language ID on a join of its own clips; and
    (``joined``) each language's clips of the fold joined into one long recording."""
    engine = transcriber.engine
    shipped = engine.dialect_probe
    folds = read_folds(folds_path)
    by_fold = split([c for c in load_clips(root, languages) if c.reference], folds)
    # The probe learns from both Chinese languages whichever are scored.
    probe_clips = split(load_clips(root, PROBE_LANGUAGES), folds)
    out = []
    try:
        for fold, mine in by_fold.items():
            others = [c for f, fold_clips in probe_clips.items() if f != fold for c in fold_clips]
            trained_on = ""
            if shipped is not None:  # a model the probe applies to: refit without this fold
                engine.dialect_probe = train(engine, others)
                trained_on = ",".join(f for f in by_fold if f != fold)
            results = evaluate_clips(mine, transcriber, options, baseline, progress)
            language_ids = (
                evaluate_language_id(root, transcriber, options, clips=mine, alone=False)
                if language_id else None
            )
            long_form = evaluate_joined(mine, transcriber, options, baseline) if joined else []
            out.append(FoldResult(fold, trained_on, results, language_ids, long_form))
    finally:
        engine.dialect_probe = shipped
    return out
