"""Speaker diarization: pyannote segmentation-3.0 + CAM++ embeddings + agglomerative clustering.

Everything loads from the checksum-verified local model cache (`sanyu.models.fetch`); no hub is
contacted. pyannote's usage telemetry is switched off unless the user set it explicitly.
"""

from __future__ import annotations

import contextlib
import sys
import threading
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from sanyu import runtime

runtime.set_defaults(runtime.TELEMETRY_OFF)  # pyannote reads it when it is imported

import torch  # noqa: E402
from pyannote.audio import Model  # noqa: E402
from pyannote.core import Segment  # noqa: E402

from sanyu.adapters.pyannote import (  # noqa: E402
    identity_plda,
    segmentation_chunk_seconds,
    set_min_embedding_samples,
)
from sanyu.audio import SAMPLE_RATE, Audio  # noqa: E402
from sanyu.diarize.campplus import CAMPPlusEmbedding  # noqa: E402
from sanyu.diarize.merge import Diarization  # noqa: E402
from sanyu.diarize.windowed import CentredClustering, WindowedSpeakerDiarization  # noqa: E402
from sanyu.errors import ModelError  # noqa: E402
from sanyu.models import fetch  # noqa: E402
from sanyu.schema import SpeakerTurn  # noqa: E402


# Chosen by bench/diarization_folds.py: every clustering and window setting was picked on one fold
# of ../shared/eval (FOLDS.tsv) and scored on the other, both ways (docs/diarization.md).
# `window`: seconds of a local speaker's activity embedded at a time (None: the whole 10 s chunk,
# pyannote's own way); `window_active_ratio`: share of a window that must be one voice alone for
# its embedding to shape the clusters. `centre`: cluster embeddings centred on the recording's
# mean; `merge_threshold`: clusters whose uncentred centroids are closer (cosine) are joined
# (sanyu.diarize.windowed explains both). Clustering is agglomerative (`method` linkage) on
# unit-normalised CAM++ embeddings with a Euclidean `threshold`; `min_cluster_size` is small because
# a short recording gives few embeddings and pyannote's default of 12 folds a speaker who talks
# little into another. `select_frames`: each window's frames go through CAM++ on their own.
# `num_threads`: torch intra-op threads while diarizing (0: leave torch's setting); on a CPU shared
# with other busy processes one thread is far faster than torch's default (bench/RESULTS.md).
DEFAULT_PARAMS: dict[str, Any] = {
    "window": 3.0,
    "window_active_ratio": 0.5,
    "centre": True,
    "threshold": 0.95,
    "merge_threshold": 0.4,
    "method": "centroid",
    "min_cluster_size": 3,
    "min_duration_on": 0.1,
    "min_duration_off": 0.0,
    "segmentation_step": 0.1,
    "embedding_exclude_overlap": True,
    "select_frames": True,
    "num_threads": 1,
    "segmentation_batch_size": 32,
    "embedding_batch_size": 24,  # a multiple of the 3 local speakers a chunk has
}
# The settings before the windowed, centred clustering (pyannote's chunk-level embeddings), kept
# to measure against in the same run (bench/diarization.py).
CHUNK_PARAMS: dict[str, Any] = {
    **DEFAULT_PARAMS,
    "window": None,
    "window_active_ratio": 0.2,
    "centre": False,
    "threshold": 0.85,
    "merge_threshold": 0.0,
}
_PIPELINE_ARGS = (
    "segmentation_step",
    "embedding_exclude_overlap",
    "segmentation_batch_size",
    "embedding_batch_size",
)
# What `Diarizer.configure` may change on a loaded pipeline (the others shape the models).
TUNABLE = (
    "window", "window_active_ratio", "centre", "threshold", "merge_threshold", "method",
    "min_cluster_size", "min_duration_on", "min_duration_off",
)
# Shorter inputs carry no speaker turn worth finding (and pyannote needs a few frames).
MIN_DURATION_S = 0.1


def _resolve_device(device: str):
    if device in (None, "", "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    resolved = torch.device(device)
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ModelError(f"device {device!r} was asked for but CUDA is not available")
    return resolved


class Diarizer:
    """Finds who speaks when. Loads the models once; call it on any number of `Audio`s.

    Keyword parameters override DEFAULT_PARAMS: window, window_active_ratio, select_frames,
    segmentation_step, embedding_exclude_overlap (embeddings), centre, threshold, merge_threshold,
    method, min_cluster_size (clustering), min_duration_on, min_duration_off (turns),
    num_threads, segmentation_batch_size, embedding_batch_size.
    """

    def __init__(self, device: str = "auto", model_dir: Path | None = None, **params: Any):
        _check_names(params, DEFAULT_PARAMS)
        self.params = {**DEFAULT_PARAMS, **params}
        self.device = _resolve_device(device)
        if model_dir is None:
            model_dir = fetch("diarization")
        self.model_dir = Path(model_dir)
        self._lock = threading.Lock()
        self._pipeline = self._build()

    def _build(self):
        segmentation_path = self.model_dir / "segmentation" / "pytorch_model.bin"
        if not segmentation_path.is_file():
            raise ModelError(f"{self.model_dir}: no segmentation/pytorch_model.bin")
        if not (self.model_dir / "campplus").is_dir():
            raise ModelError(f"{self.model_dir}: no campplus/ directory")
        segmentation = Model.from_pretrained(str(segmentation_path))
        segmentation.eval()
        embedding = CAMPPlusEmbedding.from_directory(
            self.model_dir / "campplus", select_frames=self.params["select_frames"]
        )
        pipeline = WindowedSpeakerDiarization(
            segmentation=segmentation,
            embedding=embedding,
            plda=identity_plda(embedding.dimension),
            clustering="AgglomerativeClustering",
            **{name: self.params[name] for name in _PIPELINE_ARGS},
        )
        pipeline.clustering = CentredClustering()
        set_min_embedding_samples(pipeline, embedding.min_num_samples)
        pipeline.instantiate(
            {
                "segmentation": {"min_duration_off": self.params["min_duration_off"]},
                "clustering": {
                    "method": self.params["method"],
                    "min_cluster_size": self.params["min_cluster_size"],
                    "threshold": self.params["threshold"],
                },
            }
        )
        self._apply(pipeline)
        pipeline.to(self.device)
        return pipeline

    def _apply(self, pipeline) -> None:
        """Put the TUNABLE settings of `self.params` on the pyannote pipeline."""
        params = self.params
        chunk = segmentation_chunk_seconds(pipeline)
        pipeline.window = params["window"]
        pipeline.min_duration_on = params["min_duration_on"]
        pipeline.segmentation.min_duration_off = params["min_duration_off"]
        clustering = pipeline.clustering
        clustering.method = params["method"]
        clustering.min_cluster_size = params["min_cluster_size"]
        clustering.threshold = params["threshold"]
        clustering.centre = params["centre"]
        clustering.merge_threshold = params["merge_threshold"]
        share = min(1.0, (params["window"] or chunk) / chunk)
        clustering.min_active_ratio = params["window_active_ratio"] * share

    def configure(self, **params: Any) -> None:
        """Change TUNABLE settings of the loaded pipeline (no model is loaded again)."""
        _check_names(params, TUNABLE)
        with self._lock:
            self.params.update(params)
            self._apply(self._pipeline)

    def __call__(self, audio: Audio, **speakers: int | None) -> list[SpeakerTurn]:
        """Speaker turns of `audio` (overlaps included), labelled SPEAKER_00, SPEAKER_01, … by
        first appearance; `speakers`: num_speakers, min_speakers, max_speakers (see diarize)."""
        return self.diarize(audio, **speakers).turns

    def diarize(
        self,
        audio: Audio,
        num_speakers: int | None = None,
        min_speakers: int | None = None,
        max_speakers: int | None = None,
        reuse: dict | None = None,
    ) -> Diarization:
        """Who speaks when in `audio`: the turns with overlaps, and the exclusive turns. The
        speaker counts bound what clustering may find (num_speakers fixes it).

        `reuse`: a dict kept by the caller between calls on the same `audio`; the segmentation
        and the embeddings of each window length are kept in it, so that calls which only change
        clustering settings (`configure`) skip the models (bench/diarization_folds.py).
        """
        if audio.sample_rate != SAMPLE_RATE:
            raise ValueError(f"diarization expects {SAMPLE_RATE} Hz audio, got {audio.sample_rate}")
        samples = np.asarray(audio.samples, dtype=np.float32)
        if samples.ndim != 1:
            raise ValueError("diarization expects mono samples (a 1-D array)")
        if len(samples) < MIN_DURATION_S * SAMPLE_RATE or not np.any(samples):
            return Diarization([], [])
        file = {
            "waveform": torch.from_numpy(samples)[None],
            "sample_rate": SAMPLE_RATE,
            "uri": Path(audio.source).stem or "audio",
        }
        if reuse is not None:
            file = _reused_file(reuse, file, self.params["window"])
        threads = self.params["num_threads"]
        with (
            self._lock,
            warnings.catch_warnings(),
            # pyannote's clustering print()s when it cannot reach the number of speakers asked
            # for; keep stdout clean for the CLI's output.
            contextlib.redirect_stdout(sys.stderr),
        ):
            # pyannote warns when a short clip holds fewer speakers than min_speakers asked for;
            # the caller sees the number of speakers found in the result.
            warnings.simplefilter("ignore")
            previous = torch.get_num_threads()
            if threads:
                torch.set_num_threads(threads)
            # pyannote keeps segmentations and embeddings in the file dict in training mode.
            self._pipeline.training = reuse is not None
            try:
                output = self._pipeline(
                    file,
                    num_speakers=num_speakers,
                    min_speakers=min_speakers,
                    max_speakers=max_speakers,
                )
            finally:
                self._pipeline.training = False
                if threads:
                    torch.set_num_threads(previous)
        # pyannote pads the last chunk: nothing is said after the recording ends.
        extent = Segment(0.0, len(samples) / SAMPLE_RATE)
        annotation = output.speaker_diarization.crop(extent)
        names: dict[str, str] = {}
        turns = to_turns(annotation, names=names)
        exclusive = to_turns(output.exclusive_speaker_diarization.crop(extent), names=names)
        return Diarization(turns, exclusive, annotation.rename_labels(names))


def _check_names(params: dict, allowed) -> None:
    unknown = set(params) - set(allowed)
    if unknown:
        raise TypeError(f"unknown diarization parameter(s): {', '.join(sorted(unknown))}")


_SEGMENTATION_CACHE = "training_cache/segmentation"


def _reused_file(reuse: dict, file: dict, window) -> dict:
    """The pyannote file dict kept in `reuse` for this window length; the segmentation (which
    does not depend on the window) is shared between them."""
    kept = reuse.setdefault(("file", window), file)
    for other in reuse.values():
        if _SEGMENTATION_CACHE in other and _SEGMENTATION_CACHE not in kept:
            kept[_SEGMENTATION_CACHE] = other[_SEGMENTATION_CACHE]
    return kept


def to_turns(
    annotation, min_duration_on: float = 0.0, names: dict[str, str] | None = None
) -> list[SpeakerTurn]:
    """A pyannote Annotation as time-ordered turns, speakers renamed by first appearance.

    Turns shorter than `min_duration_on` are dropped (the Diarizer has pyannote drop them:
    frame-long flickers where the reconstruction hesitates between two speakers). `names`
    (pyannote label -> SPEAKER_xx) is filled as labels appear; pass the same dict to name a
    second annotation of the same recording alike.
    """
    raw = sorted(
        (float(segment.start), float(segment.end), str(label))
        for segment, _, label in annotation.itertracks(yield_label=True)
        if segment.end - segment.start >= max(min_duration_on, 1e-9)
    )
    names = {} if names is None else names
    turns = []
    for start, end, label in raw:
        name = names.setdefault(label, f"SPEAKER_{len(names):02d}")
        turns.append(SpeakerTurn(round(start, 3), round(end, 3), name))
    return turns
