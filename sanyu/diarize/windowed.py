"""pyannote's speaker diarization with short embedding windows and recording-centred clustering.

Two changes to pyannote.audio 4's `SpeakerDiarization` (everything else, from segmentation-3.0's
powerset output with its overlaps to the reconstruction, is pyannote's own):

* **Embedding windows.** pyannote embeds each (10 s chunk, local speaker) pair once. When
  segmentation-3.0 gives two people one local label inside a chunk (it does on AMI's far-field
  turn-taking), that embedding is a blend of two voices and no clustering can undo it. Here each
  local speaker's activity is cut into windows of ``window`` seconds (`split_windows`); every window
  is embedded and clustered on its own, and the reconstruction takes, frame by frame, the cluster
  of the window holding that frame. The windows of one local speaker never overlap, so the frame
  speaker count, the overlap handling and the exclusive diarization are unchanged.
* **Centred clustering** (`CentredClustering`). Windows of a few seconds give noisier embeddings
  than whole chunks, and two voices on one channel (a phone call) sit close together in CAM++'s
  space while one far-field voice spreads wide: no single distance threshold fits both. Centring
  the embeddings on the recording's own mean removes what every voice of the recording shares
  (channel, room, language), so the threshold becomes a distance relative to the recording.
  Centring would split a one-speaker recording into noise, so clusters whose uncentred centroids
  lie closer than ``merge_threshold`` are then joined again.

The settings were chosen by `bench/diarization_folds.py` on one fold of ../shared/eval and scored
on the other (docs/diarization.md).
"""

from __future__ import annotations

import math

import numpy as np
from pyannote.audio.pipelines import SpeakerDiarization
from pyannote.audio.pipelines.clustering import AgglomerativeClustering
from pyannote.core import SlidingWindowFeature
from scipy.spatial.distance import cdist

from sanyu.adapters.pyannote import segmentation_chunk_seconds


def split_windows(segmentations: SlidingWindowFeature, frames: int | None) -> SlidingWindowFeature:
    """Each local speaker's activity cut into windows of ``frames`` frames, one column each.

    (chunks, frames, speakers) -> (chunks, frames, speakers × windows); column ``s * n + k`` holds
    local speaker ``s`` during window ``k`` and is zero elsewhere. ``frames`` None (or at least
    the chunk's length) keeps the segmentation as it is.
    """
    data = segmentations.data
    chunks, num_frames, speakers = data.shape
    if not frames or frames >= num_frames:
        return segmentations
    count = math.ceil(num_frames / frames)
    out = np.zeros((chunks, num_frames, speakers, count), dtype=data.dtype)
    for k in range(count):
        span = slice(k * frames, (k + 1) * frames)
        out[:, span, :, k] = data[:, span, :]
    return SlidingWindowFeature(
        out.reshape(chunks, num_frames, speakers * count), segmentations.sliding_window
    )


def _unit(vectors: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return vectors / np.linalg.norm(vectors, axis=-1, keepdims=True)


class CentredClustering(AgglomerativeClustering):
    """pyannote's agglomerative clustering on embeddings centred on the recording's mean, then
    clusters whose uncentred centroids are closer than ``merge_threshold`` (cosine) joined.

    ``min_active_ratio``: share of a chunk a window must hold alone (no overlap) for its embedding
    to shape the clusters (every window is still assigned to the nearest cluster afterwards).
    """

    def __init__(self, centre: bool = True, merge_threshold: float = 0.0, min_active_ratio: float = 0.2):
        super().__init__(metric="cosine")
        self.centre = centre
        self.merge_threshold = merge_threshold
        self.min_active_ratio = min_active_ratio

    def filter_embeddings(self, embeddings, segmentations=None, min_active_ratio=None):
        return super().filter_embeddings(
            embeddings, segmentations=segmentations, min_active_ratio=self.min_active_ratio
        )

    def __call__(self, embeddings, segmentations=None, num_clusters=None, min_clusters=None,
                 max_clusters=None, **kwargs):
        raw = _unit(embeddings)
        if self.centre:
            train, _, _ = self.filter_embeddings(embeddings, segmentations=segmentations)
            if len(train) >= 2:
                embeddings = _unit(raw - _unit(train).mean(axis=0))
        hard, soft, centroids = super().__call__(
            embeddings, segmentations=segmentations, num_clusters=num_clusters,
            min_clusters=min_clusters, max_clusters=max_clusters, **kwargs,
        )
        if self.merge_threshold > 0 and num_clusters is None:
            hard = merge_close_clusters(hard, raw, self.merge_threshold, min_clusters or 1)
            kept = [k for k in range(int(hard.max()) + 1)]
            centroids = np.vstack([np.nanmean(raw[hard == k], axis=0) for k in kept])
        return hard, soft, centroids


def merge_close_clusters(
    hard: np.ndarray, embeddings: np.ndarray, threshold: float, min_clusters: int = 1
) -> np.ndarray:
    """``hard`` (chunks, speakers) cluster indices with the two clusters whose mean
    ``embeddings`` (chunks, speakers, dimension) are closest (cosine) joined, repeatedly, while
    closer than ``threshold`` and more than ``min_clusters`` remain; renumbered 0, 1, …
    Negative indices (inactive speakers) are kept."""
    hard = hard.copy()
    while True:
        labels = [k for k in np.unique(hard) if k >= 0]
        if len(labels) <= max(1, min_clusters):
            break
        centroids = np.vstack([np.nanmean(embeddings[hard == k], axis=0) for k in labels])
        if np.isnan(centroids).any():
            break
        distance = cdist(centroids, centroids, metric="cosine")
        np.fill_diagonal(distance, np.inf)
        i, j = np.unravel_index(np.argmin(distance), distance.shape)
        if distance[i, j] >= threshold:
            break
        hard[hard == labels[j]] = labels[i]
    labels = [k for k in np.unique(hard) if k >= 0]
    renumbered = hard.copy()
    for new, old in enumerate(labels):
        renumbered[hard == old] = new
    return renumbered


class WindowedSpeakerDiarization(SpeakerDiarization):
    """pyannote's `SpeakerDiarization` whose local speakers are cut into embedding windows of
    ``window`` seconds (None: whole chunks, pyannote's own behaviour), and whose output drops
    turns shorter than ``min_duration_on`` (pyannote's pipeline keeps every frame-long one)."""

    window: float | None = None
    min_duration_on: float = 0.0

    def to_annotation(self, discrete_diarization, min_duration_on=0.0, min_duration_off=0.0):
        return super().to_annotation(
            discrete_diarization, max(min_duration_on, self.min_duration_on), min_duration_off
        )

    def window_frames(self, num_frames: int) -> int | None:
        if not self.window:
            return None
        chunk = segmentation_chunk_seconds(self)
        return max(1, int(round(num_frames * self.window / chunk)))

    def get_segmentations(self, file, hook=None) -> SlidingWindowFeature:
        segmentations = super().get_segmentations(file, hook=hook)
        return split_windows(segmentations, self.window_frames(segmentations.data.shape[1]))
