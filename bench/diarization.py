"""Diarization benchmark: DER per clip of ../shared/eval/multi and pooled, and real-time factor,
for the shipped settings and the settings before them (`CHUNK_PARAMS`), side by side in one run.

    .venv/bin/python bench/diarization.py [--eval-dir DIR] [--device cpu] [--threads N]
                                          [--joined] [--cpwer] [--words]

DER at a 0.25 s collar and without one, overlapped speech scored (pyannote.metrics), each clip's
UEM when it has one, with the missed / false alarm / confusion split and each clip's fold
(FOLDS.tsv; the settings were chosen by bench/diarization_folds.py, whose cross-fold figures
are the ones to quote). `--joined` adds a synthetic "meeting": single-speaker clips of different speakers (zh, yue,
en) played one after another, its reference built from their durations (so pauses inside a clip
count as speech: expect some missed speech there). `--cpwer` transcribes pyannote_sample.wav with
diarization through the library API and scores cpWER against its STM (needs the Whisper model).
`--words` transcribes every multi clip once and puts its words on speakers both ways, by the
exclusive turns and by the overlapping turns (`sanyu.diarize.merge.apply_diarization`):
word-speaker accuracy on every clip, cpWER where an STM exists.
The real-time factor is diarization wall time over audio duration, after one warm-up call.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# The repository, not bench/, whose profile.py would hide the standard library's (torch imports
# cProfile, which imports profile).
sys.path[:] = [str(ROOT), *(p for p in sys.path if Path(p or ".").resolve() != ROOT / "bench")]

from sanyu.runtime import set_offline_local_defaults  # noqa: E402

set_offline_local_defaults()  # before pyannote is imported

import numpy as np  # noqa: E402

from sanyu.audio import SAMPLE_RATE, Audio, decode_audio  # noqa: E402
from sanyu.diarize.pipeline import CHUNK_PARAMS, DEFAULT_PARAMS, TUNABLE, Diarizer  # noqa: E402
from sanyu.evaluation.diarization import (  # noqa: E402
    COLLARS,
    DerScore,
    cpwer,
    der_scores,
    pool_scores,
    read_rttm,
    speaker_texts_from_stm,
    speaker_texts_from_transcript,
    word_speaker_accuracy,
)
from sanyu.evaluation.folds import read_folds  # noqa: E402
from sanyu.schema import SpeakerTurn  # noqa: E402

JOINED_PARTS = (
    "zh/zh_aishell_BAC009S0724W0121.wav",
    "yue/yue_sherpa_yue-8.wav",
    "en/en_librispeech_2412-153948-0000.flac",
    "zh/zh_funasr_asr_example.wav",
    "yue/yue_sherpa_yue-7.wav",
    "en/en_jfk_whisper.flac",
)


def multi_clips(eval_dir: Path) -> list[tuple[Path, Path, Path | None]]:
    """(audio, rttm, uem) for each clip in multi/ with an RTTM; a `_mono` downmix of a stereo
    file already listed is skipped (decoding downmixes the stereo file the same way)."""
    clips = []
    for audio in sorted((eval_dir / "multi").glob("*.wav")):
        stem = audio.stem
        if stem.endswith("_mono") and audio.with_name(stem[: -len("_mono")] + ".wav").exists():
            continue
        rttm = audio.with_suffix(".rttm")
        if not rttm.exists():
            continue
        uem = audio.with_suffix(".uem")
        clips.append((audio, rttm, uem if uem.exists() else None))
    return clips


def joined_meeting(eval_dir: Path, gap_s: float = 0.5) -> tuple[Audio, list[SpeakerTurn]]:
    pieces, reference, t = [], [], 0.0
    for i, relative in enumerate(JOINED_PARTS):
        samples = decode_audio(eval_dir / relative).samples
        duration = len(samples) / SAMPLE_RATE
        reference.append(SpeakerTurn(t, t + duration, f"spk{i}"))
        pieces += [samples, np.zeros(int(gap_s * SAMPLE_RATE), dtype=np.float32)]
        t += duration + gap_s
    return Audio(np.concatenate(pieces), "joined_meeting"), reference


def timed(diarizer: Diarizer, audio: Audio):
    wall, cpu = time.perf_counter(), time.process_time()
    turns = diarizer(audio)
    return turns, time.perf_counter() - wall, time.process_time() - cpu


def row(name, duration, scores: dict[float, DerScore], speakers, ref_speakers, wall, cpu) -> str:
    main, exact = scores[0.25], scores[0.0]
    return (
        f"{name:<38} {duration:6.1f}s  DER {main.rate:6.1%} (0.25 s) {exact.rate:6.1%} (0 s)  "
        f"miss {main.missed_share:5.1%}  FA {main.false_alarm_share:5.1%}  "
        f"conf {main.confusion_share:5.1%}  speakers {speakers}/{ref_speakers}  "
        f"{wall:5.1f}s wall  {cpu:5.1f}s cpu"
    )


def pooled_row(name, scores: list[dict[float, DerScore]]) -> str:
    pooled = {c: pool_scores(s[c] for s in scores) for c in COLLARS}
    return (
        f"{name:<46} DER {pooled[0.25].rate:6.1%} (0.25 s) {pooled[0.0].rate:6.1%} (0 s)  "
        f"miss {pooled[0.25].missed_share:5.1%}  FA {pooled[0.25].false_alarm_share:5.1%}  "
        f"conf {pooled[0.25].confusion_share:5.1%}"
    )


def score_settings(diarizer: Diarizer, label: str, params: dict, clips, folds, joined) -> float:
    """Print every clip's scores under `params`; return the diarization wall seconds."""
    diarizer.configure(**{k: params[k] for k in TUNABLE})
    print(f"\n{label}: " + ", ".join(f"{k}={params[k]}" for k in TUNABLE))
    scores, by_fold, total_wall, total_cpu, total_audio = [], {}, 0.0, 0.0, 0.0
    for audio_path, rttm, uem in clips:
        audio = decode_audio(audio_path)
        turns, wall, cpu = timed(diarizer, audio)
        clip_scores = der_scores(rttm, turns, uem_path=uem)
        scores.append(clip_scores)
        fold = folds.get(f"multi/{audio_path.name}", "?")
        by_fold.setdefault(fold, []).append(clip_scores)
        total_wall, total_cpu, total_audio = total_wall + wall, total_cpu + cpu, total_audio + audio.duration
        ref_speakers = len({t.speaker for t in read_rttm(rttm)})
        speakers = len({t.speaker for t in turns})
        name = f"{audio_path.stem} [{fold}]"
        print(row(name, audio.duration, clip_scores, speakers, ref_speakers, wall, cpu))
    print(pooled_row("POOLED (multi)", scores))
    for fold in sorted(by_fold):
        print(pooled_row(f"POOLED fold {fold}", by_fold[fold]))
    if joined is not None:
        audio, reference = joined
        turns, wall, cpu = timed(diarizer, audio)
        total_wall, total_cpu, total_audio = total_wall + wall, total_cpu + cpu, total_audio + audio.duration
        speakers = len({t.speaker for t in turns})
        clip_scores = der_scores(reference, turns)
        print(row("joined_meeting (synthetic)", audio.duration, clip_scores, speakers, len(reference), wall, cpu))
    print(
        f"RTF (diarization): {total_wall / total_audio:.3f} wall, {total_cpu / total_audio:.3f} cpu "
        f"over {total_audio:.0f}s of audio"
    )
    return total_wall


def compare_word_assignment(diarizer: Diarizer, clips, device: str) -> None:
    """Words put on speakers by the exclusive turns and by the overlapping turns, scored."""
    from sanyu.api import Transcriber
    from sanyu.diarize.merge import apply_diarization
    from sanyu.options import ModelOptions, TranscribeOptions

    transcriber = Transcriber(ModelOptions(device=device))
    options = TranscribeOptions(language="en")
    totals = {"exclusive": [0, 0], "overlapping": [0, 0]}
    print("\nwords on speakers: exclusive turns vs overlapping turns (shipped settings)")
    for audio_path, rttm, _ in clips:
        audio = decode_audio(audio_path)
        transcript = transcriber.transcribe_audio(audio, options)
        diarization = diarizer.diarize(audio)
        reference = read_rttm(rttm)
        stm = audio_path.with_suffix(".stm")
        line = f"  {audio_path.stem:<38}"
        for way in ("exclusive", "overlapping"):
            result = apply_diarization(transcript, diarization, word_turns=way)
            right, scored = word_speaker_accuracy(reference, result)
            totals[way][0] += right
            totals[way][1] += scored
            line += f"  {way}: {right}/{scored} words right ({right / max(scored, 1):.1%})"
            if stm.exists():
                score = cpwer(speaker_texts_from_stm(stm), speaker_texts_from_transcript(result))
                line += f", cpWER {score.rate:.1%}"
        print(line)
    print("  all clips: " + "  ".join(
        f"{way} {right}/{scored} ({right / max(scored, 1):.1%})" for way, (right, scored) in totals.items()
    ))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--eval-dir", type=Path, default=ROOT.parent / "shared" / "eval")
    parser.add_argument("--device", default="auto")
    parser.add_argument(
        "--threads", type=int, default=None,
        help="torch threads while diarizing (0: torch's default; default: the Diarizer's)",
    )
    parser.add_argument("--joined", action="store_true", help="add a synthetic joined meeting")
    parser.add_argument("--cpwer", action="store_true", help="cpWER of a full diarized transcript")
    parser.add_argument("--words", action="store_true", help="exclusive vs overlapping word assignment")
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    if not (args.eval_dir / "multi").is_dir():
        print(f"no evaluation data at {args.eval_dir}/multi", file=sys.stderr)
        return 2

    import torch

    started = time.perf_counter()
    extra = {} if args.threads is None else {"num_threads": args.threads}
    diarizer = Diarizer(device=args.device, **extra)
    load_s = time.perf_counter() - started
    threads = diarizer.params["num_threads"] or torch.get_num_threads()
    print(
        f"device {diarizer.device}, torch threads {threads}, CPU cores {os.cpu_count()}, "
        f"load {load_s:.1f}s"
    )
    clips = multi_clips(args.eval_dir)
    folds_path = Path(args.eval_dir) / "FOLDS.tsv"
    folds = read_folds(folds_path) if folds_path.is_file() else {}
    _, warm_s, _ = timed(diarizer, decode_audio(clips[0][0]))
    print(f"warm-up call ({clips[0][0].name}): {warm_s:.1f}s")
    joined = joined_meeting(args.eval_dir) if args.joined else None
    score_settings(diarizer, "before (CHUNK_PARAMS)", CHUNK_PARAMS, clips, folds, joined)
    score_settings(diarizer, "shipped (DEFAULT_PARAMS)", DEFAULT_PARAMS, clips, folds, joined)

    if args.words:
        compare_word_assignment(diarizer, clips, args.device)
    if args.cpwer:
        from sanyu.api import Transcriber
        from sanyu.options import ModelOptions, TranscribeOptions

        transcriber = Transcriber(ModelOptions(device=args.device))
        transcriber.__dict__["diarizer"] = diarizer  # reuse the loaded pipeline
        sample = args.eval_dir / "multi" / "pyannote_sample.wav"
        options = TranscribeOptions(language="en", diarize=True)
        transcript = transcriber.transcribe_file(sample, options)
        score = cpwer(
            speaker_texts_from_stm(sample.with_suffix(".stm")),
            speaker_texts_from_transcript(transcript),
        )
        print(
            f"cpWER pyannote_sample: {score.rate:.1%} ({score.errors}/{score.reference_length} "
            f"words), speakers {transcript.speakers}, mapping {score.mapping}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
