"""Guards against Whisper's hallucinations: text on silence, runaway repetition, prompt echoes."""

from __future__ import annotations

import re
import unicodedata
from difflib import SequenceMatcher

import numpy as np

# Whisper's own thresholds (openai/whisper transcribe.py).
NO_SPEECH_THRESHOLD = 0.6
LOGPROB_THRESHOLD = -1.0
COMPRESSION_RATIO_THRESHOLD = 2.4

# One character repeated at least 4 times in a row ("謝謝謝謝"), or a unit of 2-20 characters
# at least 3 times ("嘅話嘅嘅話嘅嘅話嘅", "ha ha ha").
_REPEAT = re.compile(r"(.)(?:\s*\1){3,}|(.{2,20}?)(?:\s*\2){2,}", re.DOTALL)
# RMS below this (-70 dBFS) is digital silence, not quiet speech.
SILENCE_RMS = 10 ** (-70 / 20)


def is_silence(no_speech_prob: float | None, avg_logprob: float | None) -> bool:
    """Whisper's rule: the model thinks there is no speech and is not confident in its text."""
    if no_speech_prob is None or avg_logprob is None:
        return False
    return no_speech_prob > NO_SPEECH_THRESHOLD and avg_logprob < LOGPROB_THRESHOLD


def collapse_repetitions(text: str) -> str:
    """Reduce a runaway repetition of one unit to a single occurrence. A unit without a letter
    is left alone: runs of digits and punctuation are numbers ("10000", "$1,000,000,000",
    "555-5555") and ellipses, not a decoder looping on a word."""

    def collapse(match: re.Match) -> str:
        unit = match.group(1) or match.group(2)
        return unit if any(c.isalpha() for c in unit) else match.group(0)

    return _REPEAT.sub(collapse, text)


def is_digital_silence(samples) -> bool:
    """True for audio with no signal at all (zeros or near-zeros)."""
    return samples.size == 0 or float(np.sqrt(np.mean(np.square(samples, dtype=np.float64)))) < SILENCE_RMS


def _comparable(text: str) -> str:
    text = unicodedata.normalize("NFKC", text).lower()
    return "".join(c for c in text if c.isalnum())


def echoes_prompt(text: str, prompts: list[str]) -> bool:
    """True for a segment that merely repeats (part of) the prompt it was decoded with."""
    mine = _comparable(text)
    if len(mine) < 4:
        return False
    for prompt in prompts:
        theirs = _comparable(prompt)
        if not theirs:
            continue
        if mine in theirs:
            return True
        matcher = SequenceMatcher(None, mine, theirs, autojunk=False)
        matched = sum(block.size for block in matcher.get_matching_blocks())
        if matched / len(mine) >= 0.8:
            return True
    return False
