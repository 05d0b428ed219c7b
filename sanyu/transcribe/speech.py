"""Where the speech is, and what the model will be fed: the work that needs no model.

`plan_speech` finds a recording's speech regions (Silero VAD) and, given a feature extractor,
the log-mel features of the windows they pack into. The engine does this itself when it is
not handed a plan; the batch job does it in its CPU tasks, so that a model actor (on a GPU
above all) spends its time on the model.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from sanyu.adapters.faster_whisper import speech_timestamps
from sanyu.audio import Audio
from sanyu.transcribe import guards
from sanyu.transcribe.windows import WINDOW_SECONDS, Utterance, Window, recording_windows

# Silero VAD: speech above this probability; a pause of 0.5 s ends an utterance; 0.2 s kept
# around speech.
VAD_THRESHOLD = 0.5
VAD_MIN_SILENCE_MS = 500
VAD_PAD_MS = 200
# Recordings whose speech level is under QUIET_DBFS (whispering, a distant or low-gain microphone)
# are raised to SPEECH_DBFS, the usual active speech level, for VAD only: Silero misses quiet
# speech that Whisper itself hears well.
QUIET_DBFS = -40.0
SPEECH_DBFS = -26.0

Features = Callable[[np.ndarray], np.ndarray]


@dataclass
class SpeechPlan:
    """A recording's speech regions, and the features of the windows they pack into (in
    `windows_of` order) when they were computed ahead."""

    regions: list[tuple[float, float]]
    features: list[np.ndarray] | None = None


def speech_regions(audio: Audio, vad: bool = True) -> list[tuple[float, float]]:
    """Speech regions in seconds: VAD's, or (``vad=False``) fixed stretches that are not
    digital silence (Whisper invents text on silence)."""
    if audio.duration == 0:
        return []
    if not vad:
        step = WINDOW_SECONDS - 1
        regions = [
            (float(s), min(float(s) + step, audio.duration)) for s in np.arange(0, audio.duration, step)
        ]
        return [r for r in regions if not guards.is_digital_silence(audio.slice(*r))]
    return speech_timestamps(
        _audible(audio.samples), VAD_THRESHOLD, VAD_MIN_SILENCE_MS, VAD_PAD_MS, WINDOW_SECONDS - 1
    )


def windows_of(audio: Audio, regions: list[tuple[float, float]], item: int = 0) -> list[Window]:
    """The decoding windows a recording's speech regions pack into."""
    return recording_windows([Utterance(item, start, end) for start, end in regions], audio.duration)


def window_samples(audio: Audio, window: Window) -> np.ndarray:
    return np.concatenate([audio.slice(start, end) for start, end in window.spans])


def plan_speech(audio: Audio, vad: bool = True, features: Features | None = None) -> SpeechPlan:
    regions = speech_regions(audio, vad)
    if features is None:
        return SpeechPlan(regions)
    return SpeechPlan(regions, [features(window_samples(audio, w)) for w in windows_of(audio, regions)])


def _audible(samples: np.ndarray) -> np.ndarray:
    """The samples, raised to SPEECH_DBFS when their speech level is under QUIET_DBFS. The level
    is the 95th percentile of 100 ms RMS: loud enough to be speech, robust to a click."""
    blocks = samples[: len(samples) // 1600 * 1600].reshape(-1, 1600)
    if not len(blocks):
        return samples
    level = float(np.percentile(np.sqrt(np.mean(np.square(blocks, dtype=np.float64), axis=1)), 95))
    if level <= 0 or 20 * np.log10(level) >= QUIET_DBFS:
        return samples
    gain = 10 ** (SPEECH_DBFS / 20) / level
    return np.clip(samples * gain, -1.0, 1.0).astype(np.float32)
