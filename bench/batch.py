"""Batch throughput: `sanyu batch` against plain faster-whisper on the same recordings and model.

    .venv/bin/python bench/batch.py                 # ~20 min of audio, transcription only
    .venv/bin/python bench/batch.py --diarize       # the same, each system followed by diarization
    .venv/bin/python bench/batch.py --copies 1      # a quick ~4 min run

The recordings are "meetings" joined from the shared eval clips (../shared/eval/{yue,zh,en}):
for each language, `--copies` files, each holding every clip of that language in a different
(seeded) order, 1 s apart; 5 copies give about 20.5 minutes. One language per file keeps the
baselines fair: plain faster-whisper detects one language per file, and would lose on mixed
files for that reason alone.

Side by side in this one script, on the same files, one after the other (never concurrently),
with the same model (base by default, int8 on CPU) on the same CPU cores:

    (1) sequential  WhisperModel.transcribe per file, beam 5 (faster-whisper's defaults), with
                    --threads CTranslate2 threads and again with 1 (on 2 cores, 1 thread is the
                    faster of the two: bench/threads.py)
    (2) batched     BatchedInferencePipeline.transcribe per file, beam 5, batch_size 8
    (3) sanyu       run_batch (what `sanyu batch` runs): local Ray, Ray Data, default options
                    (beam 5, VAD, word timestamps, per-chunk language) and its own plan of
                    workers and threads for the machine's cores; its wall time includes starting
                    Ray and loading the model in the workers

With `--diarize`, (1) and (2) run the same Diarizer Sanyu uses after each file's transcription,
and (3) runs with diarization on. Throughput is audio seconds per wall second (decoding audio
included for every system). Accuracy: each file's text against its clips' references, with
Sanyu's normalisation (CER for yue and zh, WER for en), pooled per language.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from sanyu.runtime import set_offline_local_defaults  # noqa: E402

set_offline_local_defaults()

from sanyu.audio import decode_audio  # noqa: E402
from sanyu.evaluation.dataset import JoinedPart, join_clips, load_clips  # noqa: E402
from sanyu.evaluation.text import pooled, score  # noqa: E402
from sanyu.options import ModelOptions, TranscribeOptions  # noqa: E402
from sanyu.schema import join_texts  # noqa: E402

LANGUAGES = ("yue", "zh", "en")
Segments = list[tuple[float, float, str]]


def build_corpus(eval_dir: Path, folder: Path, copies: int, seed: int) -> dict[str, list[JoinedPart]]:
    by_language = defaultdict(list)
    for clip in load_clips(eval_dir, LANGUAGES):
        if clip.reference:
            by_language[clip.language].append(clip)
    rng = random.Random(seed)
    corpus = {}
    for language in LANGUAGES:
        for copy in range(copies):
            clips = sorted(by_language[language], key=lambda c: c.name)
            rng.shuffle(clips)
            path = folder / f"{language}-meeting-{copy + 1:02d}.wav"
            corpus[str(path)] = join_clips(clips, path, gap_s=1.0)
    return corpus


def scores(corpus: dict[str, list[JoinedPart]], outputs: dict[str, Segments]) -> dict[str, float]:
    """Pooled error rate per language. Each file holds one language, so its whole text is scored
    against its clips' references in order (segment times are not used: the batched pipeline
    gives one segment per 30 s window, across clip boundaries)."""
    per_language = defaultdict(list)
    for path, parts in corpus.items():
        language = parts[0].language
        reference = join_texts([part.reference for part in parts])
        hypothesis = join_texts([text for _, _, text in outputs.get(path, [])])
        per_language[language].append(score(reference, hypothesis, language))
    return {language: pooled(found) for language, found in per_language.items()}


def run_faster_whisper(
    model, corpus, batched: bool, diarizer=None, batch_size: int = 8
) -> tuple[dict[str, Segments], float]:
    from faster_whisper import BatchedInferencePipeline

    pipeline = BatchedInferencePipeline(model) if batched else None
    outputs = {}
    started = time.perf_counter()
    for path in corpus:
        audio = decode_audio(path)
        if pipeline is not None:
            segments, _ = pipeline.transcribe(audio.samples, beam_size=5, batch_size=batch_size)
        else:
            segments, _ = model.transcribe(audio.samples, beam_size=5)
        outputs[path] = [(s.start, s.end, s.text) for s in segments]
        if diarizer is not None:
            diarizer(audio)  # turns are not scored here: the cost is what is compared
    return outputs, time.perf_counter() - started


def run_sanyu(
    corpus, folder: Path, model_options: ModelOptions, diarize: bool, workers: int | None = None,
    options: TranscribeOptions | None = None, output_name: str | None = None,
):
    from sanyu.pipeline.driver import run_batch
    from sanyu.pipeline.settings import BatchSettings
    from sanyu.storage import Storage

    out = folder / (output_name or ("out-diarized" if diarize else "out"))
    started = time.perf_counter()
    settings = BatchSettings(
        output=str(out), model=model_options,
        options=(options or TranscribeOptions()).with_(diarize=diarize), formats=("json",),
        progress=False, workers=workers,
    )
    summary = run_batch(str(folder / "in"), settings)
    elapsed = time.perf_counter() - started
    if summary.failed:
        raise SystemExit(f"sanyu batch failed on {summary.failed} file(s): {summary.to_dict()['failures']}")
    storage = Storage(str(out))
    outputs = {}
    for f in summary.files:
        transcript = storage.read_transcript(stem=f.stem)
        path = str(folder / "in" / Path(f.path).name)
        outputs[path] = [(s.start, s.end, s.text) for s in transcript.segments]
    return outputs, elapsed


def run_other_checkout(corpus, folder: Path, checkout: Path, diarize: bool):
    """`sanyu batch` of another checkout (an earlier commit), through its own command line."""
    out = folder / f"out-{checkout.name}"
    command = [sys.executable, "-m", "sanyu.cli", "batch", str(folder / "in"), "-o", str(out),
               "-f", "json", "--no-progress"] + (["--diarize"] if diarize else [])
    started = time.perf_counter()
    # Run from the checkout: `python -m` puts the working directory first on the path, ahead
    # of PYTHONPATH, and Ray's workers start from the driver's directory too.
    subprocess.run(command, env={**os.environ, "PYTHONPATH": str(checkout)}, cwd=checkout, check=True,
                   stdout=subprocess.DEVNULL)
    elapsed = time.perf_counter() - started
    outputs = {}
    for path in out.glob("*.json"):
        data = json.loads(path.read_text(encoding="utf-8"))
        if isinstance(data, dict) and "segments" in data:
            source = str(folder / "in" / Path(data["source"]).name)
            outputs[source] = [(s["start"], s["end"], s["text"]) for s in data["segments"]]
    return outputs, elapsed


def run_baselines(corpus: list[Path], audio_s: float, args: argparse.Namespace) -> dict[str, dict]:
    """Plain faster-whisper with the same model Sanyu loads (int8 on CPU), sequential at the
    benchmark's threads and at one thread, and `BatchedInferencePipeline`; their models are
    freed on return, before Sanyu's workers load theirs."""
    from sanyu.api import Transcriber

    def model_at(threads: int):
        return Transcriber(ModelOptions(model=args.model, cpu_threads=threads)).engine.model

    diarizer = None
    if args.diarize:
        from sanyu.diarize.pipeline import Diarizer

        diarizer = Diarizer(device=ModelOptions().device, num_threads=args.threads)
    model = model_at(args.threads)
    baselines = [("sequential faster-whisper", model, False), ("BatchedInferencePipeline", model, True)]
    if args.threads != 1:  # else the first row already is the 1-thread run
        baselines.insert(1, ("sequential faster-whisper, 1 thread", model_at(1), False))
    rows = {}
    for name, whisper, batched in baselines:
        outputs, seconds = run_faster_whisper(whisper, corpus, batched, diarizer)
        rows[name] = {"wall_s": seconds, "throughput": audio_s / seconds, **scores(corpus, outputs)}
        print(f"{name}: {seconds:.1f} s", flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--eval-dir", type=Path, default=REPO.parent / "shared" / "eval")
    parser.add_argument("--copies", type=int, default=5, help="files per language (5: ~20 min)")
    parser.add_argument("--model", default="base")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--diarize", action="store_true")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("--before", type=Path,
                        help="also run `sanyu batch` of this other checkout (an earlier commit)")
    args = parser.parse_args()
    if not args.eval_dir.is_dir():
        raise SystemExit(f"no eval clips at {args.eval_dir}")

    with tempfile.TemporaryDirectory(prefix="sanyu-bench-") as tmp:
        folder = Path(tmp)
        (folder / "in").mkdir()
        corpus = build_corpus(args.eval_dir, folder / "in", args.copies, args.seed)
        audio_s = sum(decode_audio(p).duration for p in corpus)
        print(f"{len(corpus)} files, {audio_s / 60:.1f} min of audio; model {args.model}, "
              f"{args.threads} threads, diarize={args.diarize}", flush=True)

        rows = run_baselines(corpus, audio_s, args)
        if args.before:
            outputs, seconds = run_other_checkout(corpus, folder, args.before, args.diarize)
            name = f"sanyu batch ({args.before.name})"
            rows[name] = {"wall_s": seconds, "throughput": audio_s / seconds, **scores(corpus, outputs)}
            print(f"{name}: {seconds:.1f} s", flush=True)
        outputs, seconds = run_sanyu(corpus, folder, ModelOptions(model=args.model), args.diarize)
        rows["sanyu batch"] = {"wall_s": seconds, "throughput": audio_s / seconds, **scores(corpus, outputs)}
        print(f"sanyu batch: {seconds:.1f} s", flush=True)

    sanyu = rows["sanyu batch"]["throughput"]
    title = "with diarization" if args.diarize else "transcription only"
    print(f"\n### {title}: {len(corpus)} files, {audio_s / 60:.1f} min, {args.model}, "
          f"{platform.machine()} {os.cpu_count()} CPUs\n")
    print("| system | wall s | audio s / wall s | sanyu ÷ this | yue CER | zh CER | en WER |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, row in rows.items():
        print(f"| {name} | {row['wall_s']:.1f} | {row['throughput']:.2f} | {sanyu / row['throughput']:.2f}× "
              f"| {row['yue']:.1%} | {row['zh']:.1%} | {row['en']:.1%} |")
    if args.json:
        args.json.write_text(json.dumps(
            {"files": len(corpus), "audio_s": audio_s, "model": args.model, "threads": args.threads,
             "diarize": args.diarize, "cpus": os.cpu_count(), "systems": rows}, indent=1))


if __name__ == "__main__":
    main()
