"""On a GPU: `sanyu batch` against faster-whisper's BatchedInferencePipeline and sequential
faster-whisper, on the same GPU and files, in one script that stays under 8 minutes.

    .venv/bin/python bench/gpu.py                  # 2 copies of the meetings (~13 min of audio)
    .venv/bin/python bench/gpu.py --copies 4       # more audio, steadier figures

The recordings are bench/batch.py's "meetings" joined from ../shared/eval. Side by side, one
after the other, same model (base by default) in float16 on CUDA:

    (1) sequential  WhisperModel.transcribe per file, beam 5
    (2) batched     BatchedInferencePipeline.transcribe per file, beam 5, batch_size 32
    (3) sanyu       run_batch (what `sanyu batch` runs) with one Whisper worker per GPU, then
                    with two (`--workers-per-gpu`): batch size 32, VAD and log-mel features in
                    the job's CPU tasks, encoder output kept on the GPU

Printed per system: wall seconds, audio seconds per wall second, the ratio of sanyu's best to
it, the error rates (bench/batch.py's scoring), and the GPU's mean and peak utilisation
sampled by nvidia-smi every 200 ms while the system ran. On a machine without CUDA it says so
and stops: CI never has a GPU; run it where the `device` tool lends one (see
../shared/gpu/README.md for installing CTranslate2 there).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from batch import build_corpus, run_faster_whisper, run_sanyu, scores  # noqa: E402

from sanyu.audio import decode_audio  # noqa: E402
from sanyu.options import ModelOptions, TranscribeOptions  # noqa: E402
from sanyu.runtime import set_offline_local_defaults  # noqa: E402

GPU_BATCH = 32


class Utilisation:
    """GPU utilisation samples from nvidia-smi while the block runs."""

    def __init__(self, interval_ms: int = 200):
        self.command = ["nvidia-smi", "--query-gpu=utilization.gpu", "--format=csv,noheader,nounits",
                        f"-lms={interval_ms}"]
        self.samples: list[float] = []

    def __enter__(self):
        self.process = subprocess.Popen(self.command, stdout=subprocess.PIPE, text=True)
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()
        return self

    def _read(self) -> None:
        for line in self.process.stdout:
            try:
                self.samples.append(float(line.split(",")[0]))
            except ValueError:
                continue

    def __exit__(self, *exc) -> None:
        self.process.terminate()
        self.process.wait()
        self.reader.join(timeout=2)

    def summary(self) -> str:
        if not self.samples:
            return "-"
        return f"{sum(self.samples) / len(self.samples):.0f}% mean, {max(self.samples):.0f}% peak"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--eval-dir", type=Path, default=REPO.parent / "shared" / "eval")
    parser.add_argument("--copies", type=int, default=2)
    parser.add_argument("--model", default="base")
    parser.add_argument("--workers-per-gpu", default="1,2", help="sanyu batch runs to compare")
    args = parser.parse_args()
    set_offline_local_defaults()
    import ctranslate2

    gpus = ctranslate2.get_cuda_device_count()
    if not gpus:
        raise SystemExit("no CUDA device: this benchmark needs a GPU (CI never has one)")
    from sanyu.api import Transcriber

    rows = {}
    with tempfile.TemporaryDirectory(prefix="sanyu-gpu-") as tmp:
        folder = Path(tmp)
        (folder / "in").mkdir()
        corpus = build_corpus(args.eval_dir, folder / "in", args.copies, seed=0)
        audio_s = sum(decode_audio(p).duration for p in corpus)
        print(f"{len(corpus)} files, {audio_s / 60:.1f} min; {gpus} GPU(s); model {args.model}", flush=True)
        model = Transcriber(ModelOptions(model=args.model, device="cuda")).engine.model
        run_faster_whisper(model, dict(list(corpus.items())[:1]), True, batch_size=GPU_BATCH)  # warm-up
        for name, batched in (("sequential faster-whisper", False), ("BatchedInferencePipeline (32)", True)):
            with Utilisation() as gpu:
                outputs, seconds = run_faster_whisper(model, corpus, batched, batch_size=GPU_BATCH)
            rows[name] = {"wall_s": seconds, "gpu": gpu.summary(), **scores(corpus, outputs)}
            print(f"{name}: {seconds:.1f} s", flush=True)
        del model
        for per_gpu in (int(n) for n in args.workers_per_gpu.split(",")):
            name = f"sanyu batch, {per_gpu} worker(s) per GPU"
            with Utilisation() as gpu:
                outputs, seconds = run_sanyu(
                    corpus, folder, ModelOptions(model=args.model, device="cuda"), False,
                    workers=per_gpu * gpus, options=TranscribeOptions(batch_size=GPU_BATCH),
                    output_name=f"out-{per_gpu}",
                )
            rows[name] = {"wall_s": seconds, "gpu": gpu.summary(), **scores(corpus, outputs)}
            print(f"{name}: {seconds:.1f} s", flush=True)
    best = max(audio_s / row["wall_s"] for name, row in rows.items() if name.startswith("sanyu"))
    print(f"\n{len(corpus)} files, {audio_s / 60:.1f} min of audio, {args.model}, float16, {gpus} GPU(s)\n")
    print("| system | wall s | audio s / wall s | best sanyu ÷ this | GPU utilisation | yue CER | zh CER | en WER |")
    print("|---|---:|---:|---:|---|---:|---:|---:|")
    for name, row in rows.items():
        throughput = audio_s / row["wall_s"]
        print(f"| {name} | {row['wall_s']:.1f} | {throughput:.1f} | {best / throughput:.2f}× | {row['gpu']} "
              f"| {row['yue']:.1%} | {row['zh']:.1%} | {row['en']:.1%} |")


if __name__ == "__main__":
    main()
