"""What batching buys on this machine: Whisper's encoder and decoder, batch size by batch size.

    .venv/bin/python bench/decode_batching.py                  # batch sizes 1, 2, 8, 16, 32
    .venv/bin/python bench/decode_batching.py --batch-sizes 1,8

One real clip (a shared eval clip, padded to Whisper's 30 s window like every Sanyu chunk) is
repeated to fill each batch, and CTranslate2 is called directly on the model Sanyu loads (int8 on
CPU), so only the batch size changes between rows:

- encoder: seconds per 30 s window;
- decoder (beam search, beam 5 by default): the cost of one more decoding step, from two decodes
  of the same batch that stop after different numbers of tokens, and the first step's extra cost
  (cross-attention keys and values over the 1500 encoder frames, the prompt).

Each row's per-chunk cost is printed as a ratio against batch size 1, the baseline run in the
same process. Not a test: figures depend on the machine and on what else runs there.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from sanyu.runtime import set_offline_local_defaults  # noqa: E402

set_offline_local_defaults()

import ctranslate2  # noqa: E402
import numpy as np  # noqa: E402
from faster_whisper.audio import pad_or_trim  # noqa: E402

from sanyu.audio import decode_audio  # noqa: E402
from sanyu.options import ModelOptions  # noqa: E402

CLIP = "zh/zh_funasr_asr_example.wav"


def best_of(runs: int, call) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        call()
        times.append(time.perf_counter() - started)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--eval-dir", type=Path, default=REPO.parent / "shared" / "eval")
    parser.add_argument("--model", default="base")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--beam-size", type=int, default=5)
    parser.add_argument("--batch-sizes", default="1,2,8,16,32")
    parser.add_argument("--runs", type=int, default=2, help="timed runs per figure; the fastest counts")
    args = parser.parse_args()
    clip = args.eval_dir / CLIP
    if not clip.is_file():
        raise SystemExit(f"no eval clip at {clip}")

    from sanyu.transcribe.engine import WhisperEngine

    engine = WhisperEngine(ModelOptions(model=args.model, cpu_threads=args.threads))
    model = engine.model
    features = pad_or_trim(model.feature_extractor(decode_audio(clip).samples)[..., :-1])
    tokens = model.hf_tokenizer
    prompt = [tokens.token_to_id(t) for t in ("<|startoftranscript|>", "<|zh|>", "<|transcribe|>")]

    rows = []
    for size in [int(s) for s in args.batch_sizes.split(",")]:
        batch = ctranslate2.StorageView.from_array(np.stack([features] * size))
        encoder_s = best_of(args.runs, lambda: model.model.encode(batch))
        encoded = model.model.encode(batch)

        def decode(max_length: int) -> int:
            result = model.model.generate(
                encoded, [prompt] * size, beam_size=args.beam_size, max_length=max_length
            )
            return len(result[0].sequences_ids[0])

        short_n, long_n = decode(10), decode(448)
        if long_n <= short_n:
            raise SystemExit(f"{CLIP} decoded to {long_n} tokens: too short to time steps")
        short_s = best_of(args.runs, lambda: decode(10))
        long_s = best_of(args.runs, lambda: decode(448))
        step_s = (long_s - short_s) / (long_n - short_n)
        first_s = short_s - step_s * short_n
        rows.append((size, encoder_s / size, step_s, step_s / size, first_s / size))
        print(f"batch {size}: done", flush=True)

    base = rows[0]
    print(f"\n### {args.model}, beam {args.beam_size}, {args.threads} threads, "
          f"{platform.machine()} {os.cpu_count()} CPUs; baseline: batch size {base[0]}\n")
    print("| batch size | encoder s per window | ÷ baseline | decoding ms per step | ms per step per chunk "
          "| ÷ baseline | first step ms per chunk |")
    print("|---:|---:|---:|---:|---:|---:|---:|")
    for size, encoder, step, step_per_chunk, first in rows:
        print(f"| {size} | {encoder:.2f} | {encoder / base[1]:.2f}× | {step * 1000:.0f} "
              f"| {step_per_chunk * 1000:.1f} | {step_per_chunk / base[3]:.2f}× | {first * 1000:.0f} |")


if __name__ == "__main__":
    main()
