"""What a model *is*, for result keys: a hash of its content, not of its name.

A stored transcript may be reused only when the same model produced it, so the result keys of
the batch job and the HTTP jobs carry `content_id` of the Whisper model (and of the diarization
model when speakers are asked for):

* a registered model: its pinned sha256s (the cache is checked against them when it loads);
* a local CTranslate2 directory: the sha256 of every file in it, remembered per file by
  (path, size, mtime, inode) in ``$SANYU_HOME/fingerprints.json`` so a large model is read once;
* a hub id or a faster-whisper size name: the name itself (the hub decides what it loads; pin a
  revision by downloading it to a local directory).
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import threading
from pathlib import Path

from sanyu.models.cache import sanyu_home, sha256_file
from sanyu.models.registry import REGISTRY

_lock = threading.Lock()
_memory: dict[str, str] = {}


def content_id(model: str) -> str:
    """A short hash of what ``model`` loads (see the module doc)."""
    path = Path(model).expanduser()
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.is_file())
        parts = [f"{p.name}:{_file_hash(p)}" for p in files]
        return "dir:" + _digest(parts)
    spec = REGISTRY.get(model)
    if spec is not None:
        return "registered:" + _digest([f"{f.name}:{f.sha256}" for f in spec.files])
    return "name:" + model


def _digest(parts: list[str]) -> str:
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:24]


def _file_hash(path: Path) -> str:
    info = path.stat()
    key = f"{path.resolve()}|{info.st_size}|{info.st_mtime_ns}|{info.st_ino}"
    with _lock:
        if key in _memory:
            return _memory[key]
        stored = _load()
        if key in stored:
            _memory[key] = stored[key]
            return stored[key]
    digest = sha256_file(path)
    with _lock:
        _memory[key] = digest
        stored = _load()
        stored[key] = digest
        _save(stored)
    return digest


def _store() -> Path:
    return sanyu_home() / "fingerprints.json"


def _load() -> dict[str, str]:
    try:
        value = json.loads(_store().read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


def _save(values: dict[str, str]) -> None:
    """Best effort: a cache that cannot be written is only read again next time."""
    store = _store()
    try:
        store.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=store.parent, prefix=".fingerprints.", suffix=".tmp")
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(values, handle)
        os.replace(tmp, store)
    except OSError:
        pass


def result_fingerprint(model: str, compute_type: str, piece_seconds: float) -> dict[str, str | float]:
    """What changes a transcript besides the options asked for, and is known only where the
    models run: the models' content, the compute type they run in (``auto`` resolved), and the
    length of the pieces a long recording is cut into. Part of every result key
    (`sanyu.options.settings_key`)."""
    return {
        "model_content": content_id(model),
        "diarizer_content": content_id("diarization"),
        "compute_type": compute_type,
        "piece_seconds": round(float(piece_seconds), 3),
    }
