"""Shared fixtures: the real evaluation clips, generated audio, and one loaded Transcriber."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from sanyu.runtime import set_offline_local_defaults

set_offline_local_defaults()  # before any test module imports Ray or pyannote

REPO = Path(__file__).resolve().parents[1]
SHARED_EVAL = REPO.parent / "shared" / "eval"


def eval_clip(relative: str) -> Path:
    """A clip from ../shared/eval, or a skip that says why."""
    path = SHARED_EVAL / relative
    if not path.exists():
        pytest.skip(f"needs the shared evaluation clips at {SHARED_EVAL} (absent in this checkout)")
    return path


@pytest.fixture(scope="session")
def shared_eval() -> Path:
    if not SHARED_EVAL.is_dir():
        pytest.skip(f"needs the shared evaluation clips at {SHARED_EVAL} (absent in this checkout)")
    return SHARED_EVAL


@pytest.fixture(scope="session")
def transcriber():
    from sanyu import ModelOptions, Transcriber

    return Transcriber(ModelOptions(model="base"))


@pytest.fixture(scope="session")
def tiny_large_v3(tmp_path_factory) -> Path:
    """A tiny random Whisper in large-v3's shape (128 mel bins, `<|yue|>`), see tiny_whisper.py."""
    from tiny_whisper import build_tiny_large_v3

    return build_tiny_large_v3(tmp_path_factory.mktemp("tiny-large-v3"))


def write_wav(path: Path, samples: np.ndarray, sample_rate: int = 16000) -> Path:
    from sanyu.evaluation.dataset import write_wav as _write

    _write(path, samples, sample_rate)
    return path


def espeak(text: str, path: Path, voice: str = "en") -> Path:
    """Synthesised speech for cheap cases (accuracy is measured on the real clips)."""
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed")
    subprocess.run(["espeak-ng", "-v", voice, "-w", str(path), text], check=True, capture_output=True)
    return path


# ---- reading a run's dataset-level files (sanyu.storage's layout) --------------------------


def read_index(storage):
    """index.parquet of a Storage as a pyarrow Table (None when absent)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    data = storage.get("index.parquet")
    return pq.read_table(pa.BufferReader(data)) if data is not None else None


def read_errors(storage) -> list[dict]:
    """errors.jsonl of a Storage, one dict per failed input."""
    import json

    data = storage.get("errors.jsonl") or b""
    return [json.loads(line) for line in data.decode("utf-8").splitlines() if line.strip()]


def read_summary(storage) -> dict | None:
    return storage.get_json("summary.json")
