"""Evaluation clips laid out like ../shared/eval: `<language>/<name>.<audio>` with references beside."""

from __future__ import annotations

import csv
import wave
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sanyu.audio import SAMPLE_RATE, decode_audio

AUDIO_SUFFIXES = (".wav", ".flac", ".mp3", ".m4a", ".ogg", ".opus")
LANGUAGE_FOLDERS = ("en", "zh", "yue", "multi")


@dataclass
class Clip:
    path: Path
    language: str
    reference: str | None = None  # the transcript, if one exists
    rttm: Path | None = None
    uem: Path | None = None
    stm: Path | None = None

    @property
    def name(self) -> str:
        return self.path.stem


def _manifest_languages(root: Path) -> dict[str, str]:
    manifest = root / "MANIFEST.tsv"
    if not manifest.is_file():
        return {}
    with open(manifest, newline="", encoding="utf-8") as handle:
        return {row["file"]: row["language"] for row in csv.DictReader(handle, delimiter="\t")}


def read_folds(root: str | Path) -> dict[str, str]:
    """FOLDS.tsv of an evaluation folder: clip path (relative to it) -> fold (A or B)."""
    path = Path(root) / "FOLDS.tsv"
    if not path.is_file():
        return {}
    with open(path, newline="", encoding="utf-8") as handle:
        return {row["file"]: row["fold"] for row in csv.DictReader(handle, delimiter="\t")}


def _beside(audio: Path, suffix: str) -> Path | None:
    path = audio.with_suffix(suffix)
    return path if path.is_file() else None


def load_clips(root: str | Path, folders: tuple[str, ...] = LANGUAGE_FOLDERS) -> list[Clip]:
    """Every audio file under the language folders, with whatever references lie beside it."""
    root = Path(root)
    languages = _manifest_languages(root)
    clips = []
    for folder in folders:
        for audio in sorted((root / folder).glob("*")):
            if audio.suffix.lower() not in AUDIO_SUFFIXES:
                continue
            if audio.stem.endswith("_mono") and audio.with_name(
                audio.stem[: -len("_mono")] + audio.suffix
            ).exists():
                continue  # a downmix of a clip already listed
            relative = audio.relative_to(root).as_posix()
            text = _beside(audio, ".txt")
            clips.append(
                Clip(
                    path=audio,
                    language=languages.get(relative, folder if folder != "multi" else "en"),
                    reference=text.read_text(encoding="utf-8").strip() if text else None,
                    rttm=_beside(audio, ".rttm"),
                    uem=_beside(audio, ".uem"),
                    stm=_beside(audio, ".stm"),
                )
            )
    return clips


@dataclass
class JoinedPart:
    start: float
    end: float
    language: str
    reference: str
    source: str


def write_wav(path: str | Path, samples: np.ndarray, sample_rate: int = SAMPLE_RATE) -> None:
    pcm = (np.clip(samples, -1.0, 1.0) * 32767).astype("<i2")
    with wave.open(str(path), "wb") as handle:
        handle.setnchannels(1)
        handle.setsampwidth(2)
        handle.setframerate(sample_rate)
        handle.writeframes(pcm.tobytes())


def join_clips(clips: list[Clip], out_path: str | Path, gap_s: float = 1.0) -> list[JoinedPart]:
    """Concatenate clips (with `gap_s` of silence between) into one 16 kHz WAV; return its parts."""
    gap = np.zeros(int(gap_s * SAMPLE_RATE), dtype=np.float32)
    pieces, parts, offset = [], [], 0.0
    for clip in clips:
        samples = decode_audio(clip.path).samples
        parts.append(
            JoinedPart(
                offset, offset + len(samples) / SAMPLE_RATE, clip.language, clip.reference or "",
                clip.name,
            )
        )
        pieces += [samples, gap]
        offset += (len(samples) + len(gap)) / SAMPLE_RATE
    write_wav(out_path, np.concatenate(pieces) if pieces else gap)
    return parts
