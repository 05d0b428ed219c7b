"""pyannote.audio internals (tested with pyannote.audio 4.0.7).

* `identity_plda`: pyannote 4's SpeakerDiarization pipeline builds a PLDA (from
  ``pyannote.audio.core.plda``) even for agglomerative clustering, which never uses it; an
  identity stands in, so no PLDA weights are needed.
* `set_min_embedding_samples`: the pipeline finds the shortest input its embedding model accepts
  by trial and error on first use (seconds on CPU), and keeps it on its private ``_embedding``;
  Sanyu knows it (one fbank window for CAM++) and sets it.
* `segmentation_chunk_seconds`: the length of the segmentation model's chunks, which the
  pipeline keeps on its private ``_segmentation`` inferencer; the windowed diarization
  (`sanyu.diarize.windowed`) cuts chunks into embedding windows by it.
"""

from __future__ import annotations

import numpy as np
from pyannote.audio.core.plda import PLDA


class IdentityPLDA(PLDA):
    def __init__(self, dimension: int = 192):
        self.lda_dimension = dimension

    @property
    def phi(self):
        return np.ones(self.lda_dimension)

    def __call__(self, embeddings: np.ndarray) -> np.ndarray:
        return embeddings


def identity_plda(dimension: int = 192) -> PLDA:
    return IdentityPLDA(dimension)


def set_min_embedding_samples(pipeline, samples: int) -> None:
    """Tell a SpeakerDiarization pipeline the shortest input its embedding model accepts."""
    embedding = pipeline._embedding
    if not hasattr(embedding, "min_num_samples"):
        raise AttributeError(
            "pyannote.audio's SpeakerDiarization._embedding has no min_num_samples: "
            "this pyannote.audio is not the version Sanyu was tested with"
        )
    embedding.min_num_samples = samples


def segmentation_chunk_seconds(pipeline) -> float:
    """Seconds in each chunk a SpeakerDiarization pipeline segments (10 s for segmentation-3.0)."""
    inference = getattr(pipeline, "_segmentation", None)
    if inference is None or not hasattr(inference, "duration"):
        raise AttributeError(
            "pyannote.audio's SpeakerDiarization._segmentation has no duration: "
            "this pyannote.audio is not the version Sanyu was tested with"
        )
    return float(inference.duration)
