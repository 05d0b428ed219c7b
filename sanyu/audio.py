"""Decode any file ffmpeg reads into 16 kHz mono float32, with clear errors for bad input."""

from __future__ import annotations

import os
import re
import stat
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import ffmpeg
import numpy as np

from sanyu.errors import AudioError
from sanyu.paths import display_path

SAMPLE_RATE = 16000
# Longer inputs are refused rather than decoded into many GB of memory.
DEFAULT_MAX_DURATION_S = 12 * 3600.0
STREAM_BLOCK_SECONDS = 30.0  # what the streaming decoder reads at a time
# ffmpeg warnings that mean the data ends early or is damaged (e.g. a WAV cut mid-copy).
_CORRUPTION = re.compile(r"corrupt|truncat|invalid data|error while decoding|partial file", re.I)


@dataclass
class Audio:
    """Decoded audio: mono float32 samples at SAMPLE_RATE, and where they came from."""

    samples: np.ndarray
    source: str
    sample_rate: int = SAMPLE_RATE

    @property
    def duration(self) -> float:
        return len(self.samples) / self.sample_rate

    def slice(self, start: float, end: float) -> np.ndarray:
        return self.samples[int(start * self.sample_rate) : int(end * self.sample_rate)]


def _ffmpeg_message(error: ffmpeg.Error) -> str:
    lines = [line.strip() for line in (error.stderr or b"").decode("utf-8", "replace").splitlines()]
    lines = [line for line in lines if line]
    return lines[-1] if lines else "ffmpeg failed"


def _local_file(path: str | os.PathLike) -> Path:
    """Check the path names a readable local regular file; ffmpeg only ever sees `file:` URLs."""
    path = Path(path)
    try:
        info = path.stat()
    except FileNotFoundError:
        raise AudioError(str(path), "file not found") from None
    except PermissionError:
        raise AudioError(str(path), "permission denied") from None
    except OSError as exc:
        raise AudioError(str(path), f"cannot read: {exc.strerror or exc}") from None
    if not stat.S_ISREG(info.st_mode):
        raise AudioError(str(path), "not a regular file")
    if info.st_size == 0:
        raise AudioError(str(path), "empty file (0 bytes)")
    if not os.access(path, os.R_OK):
        raise AudioError(str(path), "permission denied")
    return path.resolve()


def probe_duration(path: str | os.PathLike) -> float | None:
    """Duration in seconds that the container declares for its first audio stream, if any."""
    local = _local_file(path)
    try:
        info = ffmpeg.probe(f"file:{local}", protocol_whitelist="file")
    except ffmpeg.Error as exc:
        raise AudioError(str(path), f"not a readable media file ({_ffmpeg_message(exc)})") from None
    streams = [s for s in info.get("streams", []) if s.get("codec_type") == "audio"]
    if not streams:
        raise AudioError(str(path), "no audio stream (not an audio or video file with sound)")
    for source in (streams[0], info.get("format", {})):
        try:
            return float(source["duration"])
        except (KeyError, TypeError, ValueError):
            continue
    return None


def decode_audio(
    path: str | os.PathLike, max_duration: float = DEFAULT_MAX_DURATION_S
) -> Audio:
    """Decode the first audio stream of a local file to 16 kHz mono float32."""
    declared = probe_duration(path)
    if declared is not None and declared > max_duration:
        raise AudioError(
            str(path), f"too long: {declared / 3600:.1f} h exceeds the {max_duration / 3600:.1f} h limit"
        )
    local = _local_file(path)
    try:
        out, err = (
            ffmpeg.input(f"file:{local}", protocol_whitelist="file")
            .output("pipe:", format="f32le", acodec="pcm_f32le", ac=1, ar=SAMPLE_RATE, map="0:a:0")
            .global_args("-nostdin", "-hide_banner", "-loglevel", "warning")
            .run(capture_stdout=True, capture_stderr=True)
        )
    except ffmpeg.Error as exc:
        raise AudioError(str(path), f"cannot decode audio ({_ffmpeg_message(exc)})") from None
    damage = [
        line.strip() for line in err.decode("utf-8", "replace").splitlines() if _CORRUPTION.search(line)
    ]
    if damage:
        raise AudioError(str(path), f"truncated or corrupt audio data (ffmpeg: {damage[0]})")
    samples = np.frombuffer(out, dtype=np.float32).copy()
    if samples.size == 0:
        raise AudioError(str(path), "no audio samples (zero-length recording)")
    decoded = samples.size / SAMPLE_RATE
    if declared is not None and declared - decoded > 1.0 and decoded < 0.5 * declared:
        raise AudioError(
            str(path),
            f"truncated: the file declares {declared:.1f} s but only {decoded:.1f} s can be decoded",
        )
    return Audio(samples=samples, source=str(path))


def stream_decode(
    path: str | os.PathLike, declared: float | None, block_seconds: float = STREAM_BLOCK_SECONDS
) -> Iterator[np.ndarray]:
    """float32 blocks of about ``block_seconds`` of a local file decoded by ffmpeg through a pipe
    (for recordings too long to hold whole), with decode_audio's checks; ``declared`` is the
    duration the container declares (`probe_duration`)."""
    local = _local_file(path)
    process = (
        ffmpeg.input(f"file:{local}", protocol_whitelist="file")
        .output("pipe:", format="f32le", acodec="pcm_f32le", ac=1, ar=SAMPLE_RATE, map="0:a:0")
        .global_args("-nostdin", "-hide_banner", "-loglevel", "warning")
        .run_async(pipe_stdout=True, pipe_stderr=True)
    )
    errors: list[str] = []
    reader = threading.Thread(
        target=lambda: errors.extend(process.stderr.read().decode("utf-8", "replace").splitlines()),
        daemon=True,
    )
    reader.start()
    block_bytes = int(block_seconds * SAMPLE_RATE) * 4
    decoded = 0
    finished = False
    try:
        while True:
            data = process.stdout.read(block_bytes)
            if not data:
                break
            usable = len(data) // 4 * 4
            if usable:
                decoded += usable // 4
                yield np.frombuffer(data[:usable], dtype=np.float32).copy()
        process.wait()
        reader.join()
        finished = True
    finally:
        if not finished:
            process.kill()
            process.wait()
    shown = display_path(path)
    lines = [line.strip() for line in errors if line.strip()]
    if process.returncode != 0:
        raise AudioError(shown, f"cannot decode audio ({lines[-1] if lines else 'ffmpeg failed'})")
    damage = [line for line in lines if _CORRUPTION.search(line)]
    if damage:
        raise AudioError(shown, f"truncated or corrupt audio data (ffmpeg: {damage[0]})")
    if decoded == 0:
        raise AudioError(shown, "no audio samples (zero-length recording)")
    seconds = decoded / SAMPLE_RATE
    if declared is not None and declared - seconds > 1.0 and seconds < 0.5 * declared:
        raise AudioError(
            shown, f"truncated: the file declares {declared:.1f} s but only {seconds:.1f} s can be decoded"
        )
