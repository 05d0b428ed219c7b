"""The rows that flow between the batch job's stages.

Each row of the dataset is one input, or one piece of a long input; it carries the input's
identity, its status and, between stages, its audio (``pcm``) or its transcript.
"""

from __future__ import annotations

import pyarrow as pa

from sanyu.results import FAILED

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
        ("pcm", pa.large_binary()),  # float32 samples of a piece
        ("transcript", pa.large_string()),  # a piece's transcript, JSON
    ]
)
_EMPTY = {
    "index": -1, "uri": b"", "path": "", "stem": "", "key": "", "options": "{}", "status": "",
    "stage": "", "reason": "", "piece": 0, "last": True, "offset": 0.0, "duration": 0.0,
    "seconds": 0.0, "node": "", "pcm": b"", "transcript": "",
}


def table(rows: list[dict]) -> pa.Table:
    return pa.Table.from_pylist(rows, schema=SCHEMA)


def row(**values) -> dict:
    return {**_EMPTY, **values}


def failed(values: dict, stage: str, reason: str, key: str = "") -> dict:
    """``values`` as a failed row: the stage it failed at and why (its audio dropped)."""
    return row(**{**values, "status": FAILED, "stage": stage, "reason": reason, "key": key, "pcm": b""})
