"""Diarization benchmark: DER per clip of ../shared/eval/multi and pooled, and real-time factor.

    .venv/bin/python bench/diarization.py [--eval-dir DIR] [--device cpu] [--threads N]
                                          [--joined] [--cpwer]

DER uses a 0.25 s collar with overlapped speech scored (pyannote.metrics), each clip's UEM when it
has one. `--joined` adds a synthetic "meeting": single-speaker clips of different speakers (zh, yue,
en) played one after another, its reference built from their durations (so pauses inside a clip
count as speech: expect some missed speech there). `--cpwer` transcribes pyannote_sample.wav with
diarization through the library API and scores cpWER against its STM (needs the Whisper model).
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
sys.path.insert(0, str(ROOT))

from sanyu.runtime import set_offline_local_defaults  # noqa: E402

set_offline_local_defaults()  # before pyannote is imported

import numpy as np  # noqa: E402

from sanyu.audio import SAMPLE_RATE, Audio, decode_audio  # noqa: E402
from sanyu.diarize.pipeline import Diarizer  # noqa: E402
from sanyu.evaluation.diarization import (  # noqa: E402
    cpwer,
    der_components,
    pooled_der,
    read_rttm,
    speaker_texts_from_stm,
    speaker_texts_from_transcript,
)
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


def row(name, duration, comp, speakers, ref_speakers, wall, cpu) -> str:
    return (
        f"{name:<40} {duration:6.1f}s  DER {comp['diarization error rate']:6.1%}  "
        f"(miss {comp['missed detection']:5.2f}s  FA {comp['false alarm']:5.2f}s  "
        f"conf {comp['confusion']:5.2f}s)  speakers {speakers}/{ref_speakers}  "
        f"{wall:5.1f}s wall  {cpu:5.1f}s cpu  RTF {wall / duration:.3f}"
    )


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
    print("params", {k: v for k, v in diarizer.params.items() if "batch" not in k})

    clips = multi_clips(args.eval_dir)
    warm_audio = decode_audio(clips[0][0])
    _, warm_s, _ = timed(diarizer, warm_audio)
    print(f"warm-up call ({clips[0][0].name}): {warm_s:.1f}s")

    components, total_wall, total_cpu, total_audio = [], 0.0, 0.0, 0.0
    for audio_path, rttm, uem in clips:
        audio = decode_audio(audio_path)
        turns, wall, cpu = timed(diarizer, audio)
        comp = der_components(rttm, turns, uem_path=uem, collar=0.25)
        components.append(comp)
        total_wall, total_cpu = total_wall + wall, total_cpu + cpu
        total_audio += audio.duration
        ref_speakers = len({t.speaker for t in read_rttm(rttm)})
        speakers = len({t.speaker for t in turns})
        print(row(audio_path.stem, audio.duration, comp, speakers, ref_speakers, wall, cpu))
    print(f"{'POOLED (multi)':<40} {total_audio:6.1f}s  DER {pooled_der(components):6.1%}")

    if args.joined:
        audio, reference = joined_meeting(args.eval_dir)
        turns, wall, cpu = timed(diarizer, audio)
        comp = der_components(reference, turns, collar=0.25)
        total_wall, total_cpu = total_wall + wall, total_cpu + cpu
        total_audio += audio.duration
        speakers = len({t.speaker for t in turns})
        name = "joined_meeting (synthetic)"
        print(row(name, audio.duration, comp, speakers, len(reference), wall, cpu))

    print(
        f"RTF (diarization, {diarizer.device}, {threads} torch thread(s)): "
        f"{total_wall / total_audio:.3f} wall, {total_cpu / total_audio:.3f} cpu "
        f"over {total_audio:.0f}s of audio"
    )

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
