"""Model registry and cache: `resolve_whisper` turns what a user typed into a loadable model."""

from __future__ import annotations

from pathlib import Path

from sanyu.errors import ModelError
from sanyu.models.cache import CacheStatus, cached_path, check, fetch, models_dir, sanyu_home
from sanyu.models.registry import DEFAULT_WHISPER, REGISTRY, ModelSpec

__all__ = [
    "DEFAULT_WHISPER",
    "REGISTRY",
    "CacheStatus",
    "ModelSpec",
    "cached_path",
    "check",
    "fetch",
    "models_dir",
    "resolve_whisper",
    "sanyu_home",
]


def resolve_whisper(model: str) -> str:
    """Return what faster-whisper should load for `model`.

    In order: a local CTranslate2 directory; a registered name, fetched into the checksum-verified
    cache if needed; a hub id ("org/name") or faster-whisper size name ("large-v3") that the user
    asked for explicitly, handed to faster-whisper as is (it needs network access).
    """
    path = Path(model).expanduser()
    if path.is_dir():
        if not (path / "model.bin").is_file():
            raise ModelError(f"{model}: not a CTranslate2 model directory (no model.bin)")
        return str(path)
    spec = REGISTRY.get(model)
    if spec is not None:
        if spec.kind != "whisper":
            raise ModelError(f"{model} is a {spec.kind} model, not a Whisper model")
        return str(fetch(model))
    if "/" in model and not model.startswith((".", "/", "~")):
        return model  # a hub id
    from faster_whisper.utils import available_models  # CTranslate2 and more: seconds to import

    if model in available_models():
        return model
    raise ModelError(
        f"{model!r} is neither a local model directory, a registered model "
        f"({', '.join(n for n, s in REGISTRY.items() if s.kind == 'whisper')}) nor a hub id"
    )
