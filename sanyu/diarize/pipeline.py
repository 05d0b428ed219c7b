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
from pyannote.audio.pipelines import SpeakerDiarization  # noqa: E402

from sanyu.adapters.pyannote import identity_plda, set_min_embedding_samples  # noqa: E402
from sanyu.audio import SAMPLE_RATE, Audio  # noqa: E402
from sanyu.diarize.campplus import CAMPPlusEmbedding  # noqa: E402
from sanyu.errors import ModelError  # noqa: E402
from sanyu.models import fetch  # noqa: E402
from sanyu.schema import SpeakerTurn  # noqa: E402


# Chosen on ../shared/eval/multi and on single-speaker and joined clips of ../shared/eval (see
# bench/diarization.py). Clustering is centroid linkage on unit-normalised CAM++ embeddings, so
# `threshold` is a Euclidean distance between centroids: 0.8-0.9 kept pyannote_sample at 2
# speakers, 1.0 merged them, 0.7 split an AMI speaker. `min_cluster_size` is small because a
# 30 s clip gives only ~60 (chunk, speaker) embeddings and pyannote's default of 12 folds a
# speaker who talks little into another. `select_frames`: each local speaker's frames go through
# CAM++ on their own (DER on AMI dev00 0.30 -> 0.22 against pooling over the whole chunk).
# `num_threads`: torch intra-op threads while diarizing (0: leave torch's setting). On the 2-core
# machine shared with other busy processes, 1 thread ran at RTF 0.15 and torch's default of 2
# threads at RTF 7.8 (threads spinning on each other); set it higher on a dedicated machine.
DEFAULT_PARAMS: dict[str, Any] = {
    "threshold": 0.85,
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
_PIPELINE_ARGS = (
    "segmentation_step",
    "embedding_exclude_overlap",
    "segmentation_batch_size",
    "embedding_batch_size",
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

    Keyword parameters override DEFAULT_PARAMS: threshold, method, min_cluster_size (clustering),
    min_duration_on, min_duration_off (turns), segmentation_step, embedding_exclude_overlap,
    select_frames (embeddings), num_threads, segmentation_batch_size, embedding_batch_size.
    """

    def __init__(self, device: str = "auto", model_dir: Path | None = None, **params: Any):
        unknown = set(params) - set(DEFAULT_PARAMS)
        if unknown:
            raise TypeError(f"unknown diarization parameter(s): {', '.join(sorted(unknown))}")
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
        pipeline = SpeakerDiarization(
            segmentation=segmentation,
            embedding=embedding,
            plda=identity_plda(embedding.dimension),
            clustering="AgglomerativeClustering",
            **{name: self.params[name] for name in _PIPELINE_ARGS},
        )
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
        pipeline.to(self.device)
        return pipeline

    def __call__(
        self,
        audio: Audio,
        num_speakers: int | None = None,
        min_speakers: int | None = None,
        max_speakers: int | None = None,
    ) -> list[SpeakerTurn]:
        """Speaker turns of `audio`, labelled SPEAKER_00, SPEAKER_01, … by first appearance."""
        if audio.sample_rate != SAMPLE_RATE:
            raise ValueError(f"diarization expects {SAMPLE_RATE} Hz audio, got {audio.sample_rate}")
        samples = np.asarray(audio.samples, dtype=np.float32)
        if samples.ndim != 1:
            raise ValueError("diarization expects mono samples (a 1-D array)")
        if len(samples) < MIN_DURATION_S * SAMPLE_RATE or not np.any(samples):
            return []
        file = {
            "waveform": torch.from_numpy(samples)[None],
            "sample_rate": SAMPLE_RATE,
            "uri": Path(audio.source).stem or "audio",
        }
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
            try:
                output = self._pipeline(
                    file,
                    num_speakers=num_speakers,
                    min_speakers=min_speakers,
                    max_speakers=max_speakers,
                )
            finally:
                if threads:
                    torch.set_num_threads(previous)
        return to_turns(output.speaker_diarization, self.params["min_duration_on"])


def to_turns(annotation, min_duration_on: float = 0.0) -> list[SpeakerTurn]:
    """A pyannote Annotation as time-ordered turns, speakers renamed by first appearance.

    Turns shorter than `min_duration_on` are dropped: frame-long flickers where pyannote's
    reconstruction hesitates between two speakers at a turn's edge.
    """
    raw = sorted(
        (float(segment.start), float(segment.end), str(label))
        for segment, _, label in annotation.itertracks(yield_label=True)
        if segment.end - segment.start >= max(min_duration_on, 1e-9)
    )
    names: dict[str, str] = {}
    turns = []
    for start, end, label in raw:
        name = names.setdefault(label, f"SPEAKER_{len(names):02d}")
        turns.append(SpeakerTurn(round(start, 3), round(end, 3), name))
    return turns
