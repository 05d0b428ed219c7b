"""Each third-party internal Sanyu relies on (sanyu/adapters/), checked against the installed
library, so an upgrade that moves or changes one fails here, by name. The libraries are pinned
exactly in pyproject.toml; the installed versions must be those pins."""

from __future__ import annotations

import inspect
import logging
import re
import tomllib
from importlib import metadata
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _pins() -> dict[str, str]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    requirements = project["dependencies"] + [r for extra in project["optional-dependencies"].values() for r in extra]
    pins = {}
    for requirement in requirements:
        match = re.fullmatch(r"([A-Za-z0-9_.-]+)(\[[^\]]*\])?==([^;\s]+)", requirement.strip())
        if match:
            pins[match.group(1).lower().replace("_", "-").replace(".", "-")] = match.group(3)
    return pins


def test_libraries_behind_adapters_are_pinned_and_installed_at_their_pins():
    pins = _pins()
    for name in ("ray", "pyannote-audio", "faster-whisper", "ctranslate2"):
        assert name in pins, f"{name} must be pinned exactly (==) in pyproject.toml"
        assert metadata.version(name) == pins[name], (name, metadata.version(name), pins[name])


def test_ray_core_loopback_constant():
    from ray._private import ray_constants, services

    from sanyu.adapters.ray_core import keep_local_ray_on_loopback

    saved = ray_constants.ENABLE_RAY_CLUSTER
    try:
        keep_local_ray_on_loopback()
        assert ray_constants.ENABLE_RAY_CLUSTER is False
        assert services.get_node_ip_address() == "127.0.0.1"  # what the constant decides
    finally:
        ray_constants.ENABLE_RAY_CLUSTER = saved


def test_ray_serve_replica_grpc_port():
    from ray.serve._private import replica

    from sanyu.adapters.ray_serve import loopback_address

    assert list(inspect.signature(replica.add_port_to_grpc_server).parameters) == ["server", "address"]
    assert '"[::]:0"' in inspect.getsource(replica), "Serve replicas no longer open [::]:0"
    assert loopback_address("[::]:0") == "127.0.0.1:0"
    assert loopback_address("10.0.0.5:7000") == "10.0.0.5:7000"


def test_ray_data_context_and_progress_logger():
    from ray.data import DataContext

    from sanyu.adapters import ray_data

    context = DataContext.get_current()
    names = [d.__name__ for d in context.issue_detectors_config.detectors]
    assert ray_data.HIGH_MEMORY_DETECTOR in names
    progress = __import__(ray_data.PROGRESS_LOGGER, fromlist=["_"])
    assert ray_data.PROGRESS_NOTICE in inspect.getsource(progress)
    before = (context.enable_progress_bars, context.max_errored_blocks, context.target_max_block_size)
    with ray_data.job_context(2**20) as inside:
        assert inside is context and context.target_max_block_size == 2**20
        assert not context.enable_progress_bars and context.max_errored_blocks == -1
        assert ray_data.HIGH_MEMORY_DETECTOR not in [d.__name__ for d in context.issue_detectors_config.detectors]
        record = logging.LogRecord(ray_data.PROGRESS_LOGGER, logging.INFO, "", 0,
                                   ray_data.PROGRESS_NOTICE + ".", None, None)
        assert not logging.getLogger(ray_data.PROGRESS_LOGGER).filter(record)
    assert (context.enable_progress_bars, context.max_errored_blocks, context.target_max_block_size) == before
    assert ray_data.HIGH_MEMORY_DETECTOR in [d.__name__ for d in context.issue_detectors_config.detectors]


def test_pyannote_plda_and_embedding_minimum():
    from pyannote.audio.core.plda import PLDA
    from pyannote.audio.pipelines import SpeakerDiarization

    from sanyu.adapters.pyannote import identity_plda, set_min_embedding_samples

    plda = identity_plda(192)
    assert isinstance(plda, PLDA) and plda.phi.shape == (192,)
    assert "plda" in inspect.signature(SpeakerDiarization).parameters
    assert "self._embedding" in inspect.getsource(SpeakerDiarization.__init__)

    class Pipeline:
        class _embedding:  # noqa: N801 - pyannote's attribute name
            min_num_samples = 0

    set_min_embedding_samples(Pipeline, 400)
    assert Pipeline._embedding.min_num_samples == 400


def test_pyannote_segmentation_chunk_seconds():
    from pyannote.audio.pipelines import SpeakerDiarization

    from sanyu.adapters.pyannote import segmentation_chunk_seconds

    assert "self._segmentation = Inference(" in inspect.getsource(SpeakerDiarization.__init__)

    class Pipeline:
        class _segmentation:  # noqa: N801 - pyannote's attribute name
            duration = 10.0

    assert segmentation_chunk_seconds(Pipeline) == 10.0
    with pytest.raises(AttributeError, match="not the version Sanyu was tested with"):
        segmentation_chunk_seconds(object())


def test_faster_whisper_language_codes():
    from sanyu.adapters.faster_whisper import language_codes

    codes = language_codes()
    assert {"yue", "zh", "en"} <= codes and len(codes) >= 99


def test_loopback_patch_is_idempotent_off_loopback(monkeypatch):
    import ray
    from ray.serve._private import replica

    from sanyu.adapters.ray_serve import bind_replica_grpc_to_loopback

    original = replica.add_port_to_grpc_server
    monkeypatch.setattr(ray.util, "get_node_ip_address", lambda: "10.1.2.3")
    assert bind_replica_grpc_to_loopback() is False and replica.add_port_to_grpc_server is original
    monkeypatch.setattr(ray.util, "get_node_ip_address", lambda: "127.0.0.1")
    seen = []
    monkeypatch.setattr(replica, "add_port_to_grpc_server", lambda server, address: seen.append(address))
    assert bind_replica_grpc_to_loopback() and bind_replica_grpc_to_loopback()
    replica.add_port_to_grpc_server(None, "[::]:0")
    assert seen == ["127.0.0.1:0"]  # patched once, not twice
