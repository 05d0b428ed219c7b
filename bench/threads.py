"""CPU threads against worker processes: how `sanyu batch` should spend a machine's cores.

    .venv/bin/python bench/threads.py              # one copy of the meetings (~4.6 min of audio)
    .venv/bin/python bench/threads.py --cores 4    # on a bigger machine

The same recordings as bench/batch.py (one "meeting" per language joined from ../shared/eval),
the same model. Each configuration runs in fresh processes, one configuration after another:

    faster-whisper  WhisperModel.transcribe per file, sequentially, with N CTranslate2 threads
    engine          Sanyu's WhisperEngine.transcribe_many on all files, N threads, one process
    engine × P      P such processes at once, 1 thread each, each transcribing all the files

Throughput is audio seconds per wall second (for P processes: P × the audio over the wall time
of the slowest); ratios are against one engine process with every core. Model load and imports
are not timed.
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
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))


def worker(system: str, threads: int, folder: Path) -> None:
    """Run one configuration's work in this process; print its timing as JSON."""
    from sanyu.runtime import set_offline_local_defaults

    set_offline_local_defaults()
    from sanyu.audio import decode_audio
    from sanyu.options import ModelOptions, TranscribeOptions
    from sanyu.transcribe.engine import WhisperEngine

    audios = [decode_audio(path) for path in sorted(folder.glob("*.wav"))]
    engine = WhisperEngine(ModelOptions(cpu_threads=threads))
    started = time.perf_counter()
    if system == "engine":
        engine.transcribe_many(audios, TranscribeOptions())
    else:
        for audio in audios:
            segments, _ = engine.model.transcribe(audio.samples, beam_size=5)
            list(segments)
    seconds = time.perf_counter() - started
    print(json.dumps({"seconds": seconds, "audio_s": sum(a.duration for a in audios)}))


def measure(system: str, threads: int, processes: int, folder: Path) -> dict:
    command = [sys.executable, __file__, "--worker", system, "--threads", str(threads),
               "--folder", str(folder)]
    running = [subprocess.Popen(command, stdout=subprocess.PIPE, text=True) for _ in range(processes)]
    results = []
    for process in running:
        out, _ = process.communicate()
        if process.returncode:
            raise SystemExit(f"{system} with {threads} thread(s) failed (exit {process.returncode})")
        results.append(json.loads(out.strip().splitlines()[-1]))
    wall = max(r["seconds"] for r in results)
    audio = sum(r["audio_s"] for r in results)
    return {"wall_s": wall, "throughput": audio / wall}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--cores", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--eval-dir", type=Path, default=REPO.parent / "shared" / "eval")
    parser.add_argument("--worker", choices=("engine", "faster-whisper"), help=argparse.SUPPRESS)
    parser.add_argument("--threads", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--folder", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.worker, args.threads, args.folder)
        return
    if not args.eval_dir.is_dir():
        raise SystemExit(f"no eval clips at {args.eval_dir}")
    from batch import build_corpus

    from sanyu.runtime import set_offline_local_defaults

    set_offline_local_defaults()
    cores = args.cores
    configurations = [
        (f"faster-whisper, 1 process × {cores} threads", "faster-whisper", cores, 1),
        ("faster-whisper, 1 process × 1 thread", "faster-whisper", 1, 1),
        (f"Sanyu engine, 1 process × {cores} threads", "engine", cores, 1),
        ("Sanyu engine, 1 process × 1 thread", "engine", 1, 1),
        (f"Sanyu engine, {cores} processes × 1 thread", "engine", 1, cores),
    ]
    with tempfile.TemporaryDirectory(prefix="sanyu-threads-") as tmp:
        build_corpus(args.eval_dir, Path(tmp), copies=1, seed=0)
        rows = {}
        for name, system, threads, processes in configurations:
            rows[name] = measure(system, threads, processes, Path(tmp))
            print(f"{name}: {rows[name]['wall_s']:.1f} s", flush=True)
    base = rows[configurations[2][0]]["throughput"]
    print(f"\n{cores} cores, {os.cpu_count()} CPUs seen; Whisper base int8, beam 5\n")
    print("| configuration | wall s | audio s / wall s | ÷ engine with every core in one process |")
    print("|---|---:|---:|---:|")
    for name, row in rows.items():
        print(f"| {name} | {row['wall_s']:.1f} | {row['throughput']:.2f} | {row['throughput'] / base:.2f}× |")


if __name__ == "__main__":
    main()
