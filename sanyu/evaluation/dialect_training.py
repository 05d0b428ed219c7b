"""Training the Cantonese/Mandarin probe (sanyu.transcribe.dialect) on labelled clips.

    python -m sanyu.evaluation.dialect_training ../shared/eval --out probe.json [--fold A]

Every utterance of a `yue` or `zh` clip that the detector calls Chinese is one example,
labelled by its clip's language; `--fold` keeps only the clips of one fold of FOLDS.tsv (the
other fold is then fit to report on).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from sanyu.audio import decode_audio
from sanyu.evaluation.dataset import Clip, load_clips
from sanyu.evaluation.folds import read_folds
from sanyu.evaluation.groups import group_of
from sanyu.models.cache import sha256_file
from sanyu.options import ModelOptions
from sanyu.transcribe.dialect import DialectProbe, fit, held_out_probabilities
from sanyu.transcribe.engine import WhisperEngine


def examples(engine: WhisperEngine, clips: list[Clip]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(embeddings, is-Cantonese, source) of every Chinese utterance of ``clips``; the source
    (the clip's group, `sanyu.evaluation.groups`) is what the threshold holds out."""
    x, y, groups = [], [], []
    for clip in clips:
        if clip.language not in ("yue", "zh"):
            continue
        for _, embedding in engine.chinese_embeddings(decode_audio(clip.path)):
            x.append(embedding)
            y.append(clip.language == "yue")
            groups.append(group_of(clip.name))
    return np.array(x), np.array(y), np.array(groups)


def train(engine: WhisperEngine, clips: list[Clip]) -> DialectProbe:
    """A probe for ``engine``'s model, fit on ``clips``."""
    x, y, groups = examples(engine, clips)
    return fit(x, y, groups, _model_files(engine))


def _model_files(engine: WhisperEngine) -> tuple[tuple[str, int], ...]:
    """The (sha256, size) of the model weights a probe is trained for."""
    weights = Path(engine.model_path) / "model.bin"
    return ((sha256_file(weights), weights.stat().st_size),) if weights.is_file() else ()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", help="clips laid out like ../shared/eval")
    parser.add_argument("--out", required=True)
    parser.add_argument("--model", default="base")
    parser.add_argument("--fold", help="train on this fold of FOLDS.tsv only")
    parser.add_argument("--same-weights", action="append", default=[], metavar="SHA256:BYTES",
                        help="another copy of the model's weights the probe holds for (repeatable)")
    args = parser.parse_args(argv)
    clips = load_clips(args.root, ("zh", "yue"))
    if args.fold:
        folds = read_folds(Path(args.root) / "FOLDS.tsv")
        clips = [c for c in clips if folds.get(c.relative) == args.fold]
    engine = WhisperEngine(ModelOptions(model=args.model))
    x, y, groups = examples(engine, clips)
    copies = tuple((sha, int(size)) for sha, size in (c.split(":") for c in args.same_weights))
    probe = fit(x, y, groups, _model_files(engine) + copies)
    Path(args.out).write_text(probe.to_json() + "\n")
    held_out = held_out_probabilities(x, y, groups)
    calls = held_out > probe.threshold
    print(
        f"{args.out}: {len(clips)} clips, {len(y)} utterances, threshold {probe.threshold:.3f}; "
        f"each source held out in turn: {np.mean(calls == y):.1%} right, "
        f"{int(np.sum(calls & ~y))} Mandarin called Cantonese, {int(np.sum(~calls & y))} Cantonese "
        f"called Mandarin"
    )


if __name__ == "__main__":
    main()
