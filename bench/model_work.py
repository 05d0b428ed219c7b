"""Model work per audio second: encoder windows, decode passes and decoding steps, counted.

    .venv/bin/python bench/model_work.py                          # this checkout's engine
    .venv/bin/python bench/model_work.py --before /tmp/old-sanyu  # and another checkout's, beside it

The same recordings as bench/batch.py (one copy: a "meeting" per language joined from
../shared/eval). Each system runs in a fresh process with one CTranslate2 thread, and its
CTranslate2 Whisper model is wrapped in a counter, so every system is counted the same way:

    windows        encoder inputs (30 s windows) encoded
    detections     language detections (one decoder step each)
    decode passes  rows decoded by `generate` (a window decoded again counts again)
    steps          decoder steps: for each `generate` call, its longest row's new tokens
    tokens         new tokens written, over all rows (beam search writes more in its beams)
    alignments     rows aligned for word timestamps (one decoder pass each)

Systems: plain faster-whisper (`WhisperModel.transcribe`, beam 5), its
`BatchedInferencePipeline` (batch 8), and Sanyu's engine (`WhisperEngine.transcribe_many`,
default options) from this checkout and, with --before, from another.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
COUNTS = ("windows", "detections", "decode passes", "steps", "tokens", "alignments")


class CountingWhisper:
    """A ctranslate2.models.Whisper that counts the work asked of it."""

    def __init__(self, model):
        self._model = model
        self.counts = dict.fromkeys(COUNTS, 0)

    def __getattr__(self, name):
        return getattr(self._model, name)

    def encode(self, features, *args, **kwargs):
        self.counts["windows"] += features.shape[0]
        return self._model.encode(features, *args, **kwargs)

    def detect_language(self, features, *args, **kwargs):
        results = self._model.detect_language(features, *args, **kwargs)
        self.counts["detections"] += len(results)
        return results

    def generate(self, features, prompts, *args, **kwargs):
        results = self._model.generate(features, prompts, *args, **kwargs)
        lengths = [len(r.sequences_ids[0]) for r in results]
        self.counts["decode passes"] += len(results)
        self.counts["steps"] += max(lengths, default=0)
        self.counts["tokens"] += sum(len(ids) for r in results for ids in r.sequences_ids)
        return results

    def align(self, features, start, tokens, *args, **kwargs):
        self.counts["alignments"] += len(tokens)
        return self._model.align(features, start, tokens, *args, **kwargs)


def worker(system: str, folder: Path) -> None:
    """Run one system in this process (its `sanyu` is whatever PYTHONPATH finds first)."""
    from sanyu.audio import decode_audio
    from sanyu.options import ModelOptions, TranscribeOptions
    from sanyu.runtime import set_offline_local_defaults
    from sanyu.transcribe.engine import WhisperEngine

    set_offline_local_defaults()
    audios = [decode_audio(path) for path in sorted(folder.glob("*.wav"))]
    engine = WhisperEngine(ModelOptions(cpu_threads=1))
    counter = CountingWhisper(engine.model.model)
    engine.model.model = counter  # the WhisperModel every path of the engine goes through
    started = time.perf_counter()
    if system == "sanyu":
        engine.transcribe_many(audios, TranscribeOptions())
    else:
        from faster_whisper import BatchedInferencePipeline

        pipeline = BatchedInferencePipeline(engine.model)
        for audio in audios:
            if system == "batched":
                segments, _ = pipeline.transcribe(audio.samples, beam_size=5, batch_size=8)
            else:
                segments, _ = engine.model.transcribe(audio.samples, beam_size=5)
            list(segments)
    seconds = time.perf_counter() - started
    audio_s = sum(a.duration for a in audios)
    print(json.dumps({"seconds": seconds, "audio_s": audio_s, **counter.counts}))


def measure(system: str, source: Path, folder: Path) -> dict:
    environment = {**os.environ, "PYTHONPATH": str(source)}
    command = [sys.executable, __file__, "--worker", system, "--folder", str(folder)]
    done = subprocess.run(command, stdout=subprocess.PIPE, text=True, env=environment, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--eval-dir", type=Path, default=REPO.parent / "shared" / "eval")
    parser.add_argument("--before", type=Path, help="another checkout whose engine to count too")
    parser.add_argument("--worker", choices=("sanyu", "sequential", "batched"), help=argparse.SUPPRESS)
    parser.add_argument("--folder", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.worker, args.folder)
        return
    if not args.eval_dir.is_dir():
        raise SystemExit(f"no eval clips at {args.eval_dir}")
    sys.path.insert(0, str(REPO))
    sys.path.insert(0, str(REPO / "bench"))
    from batch import build_corpus

    systems = [
        ("faster-whisper, sequential", "sequential", REPO),
        ("faster-whisper, BatchedInferencePipeline", "batched", REPO),
        ("Sanyu engine (this checkout)", "sanyu", REPO),
    ]
    if args.before:
        systems.insert(2, (f"Sanyu engine ({args.before.name})", "sanyu", args.before))
    with tempfile.TemporaryDirectory(prefix="sanyu-profile-") as tmp:
        build_corpus(args.eval_dir, Path(tmp), copies=1, seed=0)
        rows = {}
        for name, system, source in systems:
            rows[name] = measure(system, source, Path(tmp))
            print(f"{name}: {rows[name]['seconds']:.1f} s", flush=True)
    audio_s = next(iter(rows.values()))["audio_s"]
    print(f"\n{audio_s:.0f} s of audio, Whisper base int8, 1 thread; counts per audio second:\n")
    print("| system | wall s | " + " | ".join(COUNTS) + " |")
    print("|---|---:|" + "---:|" * len(COUNTS))
    for name, row in rows.items():
        per_second = [f"{row[c] / audio_s:.3g}" for c in COUNTS]
        print(f"| {name} | {row['seconds']:.1f} | " + " | ".join(per_second) + " |")


if __name__ == "__main__":
    main()
