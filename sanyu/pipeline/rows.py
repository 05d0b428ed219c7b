"""The rows that flow between the batch job's stages.

Each row of the dataset is one input, or one piece of a long input; it carries the input's
identity, its status and, between stages, its audio (``pcm``) or its transcript.
"""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa

from sanyu.results import FAILED
from sanyu.transcribe.speech import SpeechPlan

WINDOW_FRAMES = 3000  # log-mel frames of a 30 s window

# Statuses of rows in flight (the final ones are sanyu.results' ok, reused, skipped, failed).
AUDIO, TRANSCRIBED, REUSE, PARTIAL = "audio", "transcribed", "reuse", "partial"

SCHEMA = pa.schema(
    [
        ("index", pa.int64()),  # the input's position in the listing
        ("uri", pa.large_binary()),  # the input as listed (bytes: file names need not be UTF-8)
        ("path", pa.string()),  # the same, printable
        ("stem", pa.string()),
        ("key", pa.string()),
        ("options", pa.string()),  # TranscribeOptions of this input, JSON
        ("status", pa.string()),
        ("stage", pa.string()),
        ("reason", pa.string()),
        ("piece", pa.int32()),
        ("last", pa.bool_()),
        ("offset", pa.float64()),
        ("duration", pa.float64()),
        ("seconds", pa.float64()),
        ("node", pa.string()),  # the Ray node that transcribed this piece
        ("worker", pa.string()),  # the Whisper actor that did, and when its call ended (epoch s)
        ("finished", pa.float64()),
        ("pcm", pa.large_binary()),  # float32 samples of a piece
        ("speech", pa.string()),  # its speech regions, JSON [[start, end], ...]
        ("features", pa.large_binary()),  # float32 log-mel features of its windows, stacked
        ("mel_bins", pa.int32()),  # the features' bins (0: none computed ahead)
        ("transcript", pa.large_string()),  # a piece's transcript, JSON
    ]
)
_EMPTY = {
    "index": -1, "uri": b"", "path": "", "stem": "", "key": "", "options": "{}", "status": "",
    "stage": "", "reason": "", "piece": 0, "last": True, "offset": 0.0, "duration": 0.0,
    "seconds": 0.0, "node": "", "worker": "", "finished": 0.0, "pcm": b"", "speech": "", "features": b"", "mel_bins": 0,
    "transcript": "",
}


def table(rows: list[dict]) -> pa.Table:
    return pa.Table.from_pylist(rows, schema=SCHEMA)


def row(**values) -> dict:
    return {**_EMPTY, **values}


def failed(values: dict, stage: str, reason: str, key: str = "") -> dict:
    """``values`` as a failed row: the stage it failed at and why (its audio dropped)."""
    return row(**{**values, "status": FAILED, "stage": stage, "reason": reason, "key": key, **NO_AUDIO})


# A row's audio and what was worked out from it, dropped once transcribed.
NO_AUDIO = {"pcm": b"", "speech": "", "features": b"", "mel_bins": 0}


def speech_plan(values: dict):
    """The SpeechPlan a prepared row carries (see `sanyu.transcribe.speech`)."""
    regions = [tuple(r) for r in json.loads(values["speech"])] if values["speech"] else None
    if regions is None:
        return None
    features = None
    if values["mel_bins"]:
        stacked = np.frombuffer(values["features"], dtype=np.float32)
        features = list(stacked.reshape(-1, values["mel_bins"], WINDOW_FRAMES))
    return SpeechPlan(regions, features)


def with_speech_plan(values: dict, plan) -> dict:
    """``values`` carrying ``plan``."""
    stacked = np.stack(plan.features) if plan.features else np.zeros((0, 0, 0), np.float32)
    return {
        **values,
        "speech": json.dumps([[round(s, 3), round(e, 3)] for s, e in plan.regions]),
        "features": stacked.astype(np.float32).tobytes(),
        "mel_bins": int(stacked.shape[1]) if plan.features else 0,
    }
