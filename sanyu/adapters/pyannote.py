"""pyannote.audio internals (tested with pyannote.audio 4.0.7).

* `identity_plda`: pyannote 4's SpeakerDiarization pipeline builds a PLDA (from
  ``pyannote.audio.core.plda``) even for agglomerative clustering, which never uses it; an
  identity stands in, so no PLDA weights are needed.
* `set_min_embedding_samples`: the pipeline finds the shortest input its embedding model accepts
  by trial and error on first use (seconds on CPU), and keeps it on its private ``_embedding``;
  Sanyu knows it (one fbank window for CAM++) and sets it.
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
