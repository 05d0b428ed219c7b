"""Two-fold selection of the diarization settings: choose on one fold, score on the other.

    .venv/bin/python bench/diarization_folds.py [--eval-dir DIR] [--singles]

../shared/eval/FOLDS.tsv puts each clip in fold A or B. For each fold this searches GRID (embedding
window, centring, linkage, thresholds) and keeps the setting with the lowest pooled DER (0.25 s
collar, overlap scored) over that fold's tuning set: its multi-speaker clips (multi/) and one
synthetic meeting joined from that fold's single-speaker clips (JOINED; each clip one speaker,
pauses inside a clip counted as speech). Ties go to the lower DER without a collar, then to the
first setting in GRID order. The chosen setting is then scored on the other fold's multi-speaker
clips, which it never saw; each clip's cross-validated figure is the one from the setting chosen
on the other fold. For comparison, in the same run: the settings before this search
(`CHUNK_PARAMS`) and the shipped defaults (`DEFAULT_PARAMS`, in-sample on every clip).
`--singles` also counts the single-speaker clips of each fold that a setting splits into several
speakers (they are not in the tuning objective: their one-speaker labels are the manifest's, not
checked turn by turn).

The segmentation and the embeddings of each window length are computed once per recording
(`Diarizer.diarize(reuse=...)`); only clustering and reconstruction run per setting.
"""

from __future__ import annotations

import argparse
import itertools
import sys
import time
import warnings
from dataclasses import dataclass, field
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
from sanyu.evaluation.diarization import COLLARS, DerScore, der_scores, pool_scores, read_rttm  # noqa: E402
from sanyu.evaluation.folds import read_folds  # noqa: E402
from sanyu.schema import SpeakerTurn  # noqa: E402

# Single-speaker clips joined into one meeting per fold: different sources, so different people.
JOINED = {
    "A": (
        "zh/zh_aishell_BAC009S0724W0121.wav", "yue/yue_sherpa_yue-8.wav",
        "en/en_earnings22_4483589_261_321.wav", "zh/zh_qwen3asr_fast1.wav",
        "yue/yue_wsyue_gd0049244_775890_782910.wav", "zh/zh_soulx_male_mandarin.wav",
    ),
    "B": (
        "en/en_librispeech_2412-153948-0000.flac", "zh/zh_funasr_asr_example.wav",
        "yue/yue_sherpa_yue-7.wav", "en/en_jfk_whisper.flac", "yue/yue_funasrnano_dia_yue.wav",
        "zh/zh_sparktts_prompt_audio.wav",
    ),
}
GAP_S = 0.5

GRID = {
    "window": (None, 3.0, 2.0),
    "window_active_ratio": (0.2, 0.5),
    "centre": (False, True),
    "method": ("centroid", "average"),
    "threshold": tuple(round(x, 2) for x in np.arange(0.6, 1.201, 0.05)),
    "merge_threshold": (0.0, 0.3, 0.4, 0.5, 0.6),
}


@dataclass
class Recording:
    name: str
    fold: str
    kind: str  # multi | joined | single
    audio: Audio
    reference: list[SpeakerTurn]
    uem: Path | None = None
    reuse: dict = field(default_factory=dict)


def load_recordings(eval_dir: Path, singles: bool) -> list[Recording]:
    if not (eval_dir / "FOLDS.tsv").is_file():
        raise SystemExit(f"no FOLDS.tsv under {eval_dir}")
    folds = read_folds(eval_dir / "FOLDS.tsv")
    recordings = []
    for relative, fold in folds.items():
        path = eval_dir / relative
        if relative.startswith("multi/") and path.with_suffix(".rttm").exists():
            uem = path.with_suffix(".uem")
            recordings.append(Recording(
                path.stem, fold, "multi", decode_audio(path), read_rttm(path.with_suffix(".rttm")),
                uem if uem.exists() else None,
            ))
    for fold, parts in JOINED.items():
        pieces, reference, t = [], [], 0.0
        for i, relative in enumerate(parts):
            if folds.get(relative) != fold:
                raise SystemExit(f"{relative} is not in fold {fold} of FOLDS.tsv")
            samples = decode_audio(eval_dir / relative).samples
            reference.append(SpeakerTurn(t, t + len(samples) / SAMPLE_RATE, f"spk{i}"))
            pieces += [samples, np.zeros(int(GAP_S * SAMPLE_RATE), dtype=np.float32)]
            t += len(samples) / SAMPLE_RATE + GAP_S
        audio = Audio(np.concatenate(pieces), f"joined_{fold}")
        recordings.append(Recording(f"joined_{fold}", fold, "joined", audio, reference))
    if singles:
        for relative, fold in folds.items():
            if not relative.startswith("multi/"):
                audio = decode_audio(eval_dir / relative)
                whole = [SpeakerTurn(0.0, audio.duration, "spk")]
                recordings.append(Recording(Path(relative).stem, fold, "single", audio, whole))
    return recordings


def settings(grid: dict) -> list[dict]:
    names = list(grid)
    out = []
    for values in itertools.product(*(grid[name] for name in names)):
        setting = dict(zip(names, values))
        if setting["window"] is None and setting["window_active_ratio"] != 0.2:
            continue  # pyannote's own 2 s of a 10 s chunk
        out.append(setting)
    return out


def run(diarizer: Diarizer, recordings: list[Recording], setting: dict):
    """{name: ({collar: DerScore}, speakers found)} for `recordings` under `setting`."""
    diarizer.configure(**setting)
    results = {}
    for recording in recordings:
        turns = diarizer.diarize(recording.audio, reuse=recording.reuse).turns
        scores = der_scores(recording.reference, turns, recording.uem)
        results[recording.name] = (scores, len({t.speaker for t in turns}))
    return results


def pooled(results: dict, names, collar: float = 0.25) -> DerScore:
    return pool_scores(results[name][0][collar] for name in names)


def select(table, names: list[str], fold: str) -> dict:
    """The setting of `table` with the lowest pooled DER over `names` (ties: see the module doc)."""
    def key(item):
        index, (_, results) = item
        return (round(pooled(results, names).rate, 6), round(pooled(results, names, 0.0).rate, 6), index)

    ranked = sorted(enumerate(table), key=key)
    best = ranked[0]
    ties = [item for item in ranked if key(item)[:2] == key(best)[:2]]
    level = [item for item in ranked if key(item)[0] == key(best)[0]]
    print(f"\nchosen on fold {fold} ({', '.join(names)}): {describe(best[1][0])}")
    print(f"  tuning DER {pooled(best[1][1], names).rate:.1%}; {len(level)} settings reach it, "
          f"{len(ties)} also tie without a collar")
    return best[1][0]


def describe(setting: dict) -> str:
    return ", ".join(f"{k}={setting[k]}" for k in ("window", "window_active_ratio", "centre",
                                                      "method", "threshold", "merge_threshold"))


def clip_line(name: str, scores: dict[float, DerScore], speakers: int | None = None) -> str:
    a, b = scores[0.25], scores[0.0]
    extra = f"  speakers {speakers}" if speakers is not None else ""
    return (
        f"  {name:<38} DER {a.rate:6.1%} (collar 0.25)  {b.rate:6.1%} (no collar)  "
        f"miss {a.missed_share:5.1%}  FA {a.false_alarm_share:5.1%}  conf {a.confusion_share:5.1%}"
        f"{extra}"
    )


def pooled_line(label: str, scores: list[dict[float, DerScore]]) -> str:
    return clip_line(label, {c: pool_scores(s[c] for s in scores) for c in COLLARS})


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--eval-dir", type=Path, default=ROOT.parent / "shared" / "eval")
    parser.add_argument("--singles", action="store_true", help="count split single-speaker clips")
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    started = time.perf_counter()
    recordings = load_recordings(args.eval_dir, args.singles)
    diarizer = Diarizer(device="cpu")
    grid = settings(GRID)
    print(f"{len(recordings)} recordings, {len(grid)} settings")
    tuning = [r for r in recordings if r.kind in ("multi", "joined")]
    table = []
    for index, setting in enumerate(grid):
        table.append((setting, run(diarizer, tuning, setting)))
        if index % 100 == 0:
            print(f"  {index}/{len(grid)} settings, {time.perf_counter() - started:.0f}s", flush=True)

    multi = {r.name: r for r in recordings if r.kind == "multi"}
    chosen: dict[str, dict] = {}
    for fold in ("A", "B", "A+B"):
        names = [r.name for r in tuning if r.fold in fold.split("+")]
        chosen[fold] = select(table, names, fold)

    cross: dict[str, tuple[dict, int]] = {}
    for fold, other in (("A", "B"), ("B", "A")):
        results = run(diarizer, list(multi.values()), chosen[fold])
        print(f"\nsetting chosen on fold {fold}, scored on fold {other}'s multi-speaker clips:")
        for name, recording in multi.items():
            if recording.fold == other:
                cross[name] = results[name]
                print(clip_line(name, *results[name]))
        print(pooled_line(f"POOLED fold {other}", [results[n][0] for n in multi if multi[n].fold == other]))
    print("\ncross-validated (each clip scored with the setting chosen on the other fold):")
    for name in multi:
        print(clip_line(name, *cross[name]))
    print(pooled_line("POOLED (all multi clips)", [cross[n][0] for n in multi]))

    both = chosen["A+B"]
    shipped = {k: DEFAULT_PARAMS[k] for k in GRID}
    print(f"\nDEFAULT_PARAMS {'are' if shipped == both else 'are NOT'} the setting chosen on both folds")
    for label, params in (("before (CHUNK_PARAMS)", CHUNK_PARAMS), ("shipped (DEFAULT_PARAMS)", DEFAULT_PARAMS)):
        setting = {k: params[k] for k in TUNABLE}
        results = run(diarizer, recordings, setting)
        print(f"\n{label}: {describe(setting)}")
        for name in multi:
            print(clip_line(name, *results[name]))
        print(pooled_line("POOLED (all multi clips)", [results[n][0] for n in multi]))
        for fold in ("A", "B"):
            print(pooled_line(f"POOLED fold {fold}", [results[n][0] for n in multi if multi[n].fold == fold]))
        for recording in recordings:
            if recording.kind == "joined":
                print(clip_line(recording.name, *results[recording.name]))
        singles = [r for r in recordings if r.kind == "single"]
        if singles:
            split = [r.name for r in singles if results[r.name][1] > 1]
            print(f"  single-speaker clips given more than one speaker: {len(split)}/{len(singles)} {split}")
    for fold in ("A", "B", "A+B"):
        if args.singles:
            results = run(diarizer, [r for r in recordings if r.kind == "single"], chosen[fold])
            split = [n for n, (_, k) in results.items() if k > 1]
            print(f"setting chosen on fold {fold}: single-speaker clips split: {len(split)} {split}")
    print(f"\n{time.perf_counter() - started:.0f}s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
