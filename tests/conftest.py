"""Shared fixtures: the real evaluation clips, generated audio, and one loaded Transcriber."""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from sanyu.runtime import set_offline_local_defaults

set_offline_local_defaults()  # before any test module imports Ray or pyannote

REPO = Path(__file__).resolve().parents[1]
SHARED_EVAL = REPO.parent / "shared" / "eval"
# bench/abuse_cases.py (the abuse cases and their files), after everything else: bench/profile.py
# must not shadow the standard library's profile.
sys.path.append(str(REPO / "bench"))


def pytest_collection_modifyitems(items):
    """Tests on the session's Serve app run last, each file in its own order: once started, its
    replicas hold part of the local Ray's CPUs for the rest of the session."""
    items.sort(key=lambda item: "server" in getattr(item, "fixturenames", ()))


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


# ---- processes and sockets -------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# ---- one Sanyu server for the session (tests/test_serve.py, tests/test_abuse.py) --------------

API_KEY = "test-key-0123456789"
AUTH = {"Authorization": f"Bearer {API_KEY}"}
MAX_UPLOAD_MB = 16


@dataclass
class Server:
    url: str
    port: int
    spool: Path
    output: Path
    inputs: Path
    config: object  # its ServeConfig
    own_ray: bool  # this session started the Ray it runs on

    def leftovers(self, wait_s: float = 5.0) -> list[str]:
        """Whatever is still in the spool folder (it must empty once requests end)."""
        deadline = time.time() + wait_s
        while True:
            left = sorted(p.name for p in self.spool.iterdir())
            if not left or time.time() > deadline:
                return left
            time.sleep(0.1)


@pytest.fixture(scope="session")
def server(tmp_path_factory):
    """Serve on a free loopback port, with small admission bounds the abuse tests can reach
    (4 jobs, 64 MB of uploads, 5 s for a job's upload, 15 min of audio per job), pieces of 60 s
    (the 2-minute job goes in pieces) and room for the load test (80 requests at once)."""
    pytest.importorskip("ray.serve")
    if not SHARED_EVAL.is_dir():
        pytest.skip(f"needs the shared evaluation clips at {SHARED_EVAL} (absent in this checkout)")
    import ray
    import requests
    from ray import serve

    from sanyu.serve import ServeConfig
    from sanyu.serve.server import APP_NAME, start

    spool = tmp_path_factory.mktemp("spool")
    output = tmp_path_factory.mktemp("jobs-out")
    inputs = tmp_path_factory.mktemp("inputs")
    config = ServeConfig(
        model="base",
        api_key=API_KEY,
        max_upload_mb=MAX_UPLOAD_MB,
        request_timeout_s=240,
        spool_dir=str(spool),
        output=str(output),
        input_roots=(str(inputs),),
        replica_cpus=0.5,
        max_batch_size=8,
        batch_wait_timeout_s=0.1,
        piece_seconds=60,
        max_pending_requests=80,
        max_queued_jobs=4,
        max_spool_mb=64,
        upload_timeout_s=5,
        max_audio_s=900,
    )
    started_ray = not ray.is_initialized()
    port = free_port()
    url = start(config, port=port)
    deadline = time.time() + 300
    while True:
        response = requests.get(f"{url}/readyz", timeout=30)
        if response.status_code == 200:
            break
        assert response.status_code == 503, response.text
        assert response.json()["status"] == "loading", response.text
        if time.time() > deadline:
            pytest.fail(f"models not ready in time: {response.text}")
        time.sleep(0.5)
    yield Server(url, port, spool, output, inputs, config, started_ray)
    serve.delete(APP_NAME)
    serve.shutdown()
    if started_ray:
        ray.shutdown()


@pytest.fixture(scope="session")
def client(server):
    from openai import OpenAI

    return OpenAI(base_url=f"{server.url}/v1", api_key=API_KEY, max_retries=0, timeout=240)
