"""The embedding windows and the cluster merging of sanyu.diarize.windowed (fast: no models)."""

from __future__ import annotations

import numpy as np
from pyannote.core import SlidingWindow, SlidingWindowFeature

from sanyu.diarize.windowed import merge_close_clusters, split_windows


def test_split_windows_partitions_each_local_speaker_in_time():
    rng = np.random.default_rng(0)
    data = (rng.random((4, 10, 3)) > 0.5).astype(np.float32)
    segmentations = SlidingWindowFeature(data, SlidingWindow(start=0.0, duration=10.0, step=1.0))
    out = split_windows(segmentations, 4)
    assert out.data.shape == (4, 10, 9)  # 3 speakers x ceil(10 / 4) windows
    assert out.sliding_window is segmentations.sliding_window
    columns = out.data.reshape(4, 10, 3, 3)
    assert np.array_equal(columns.sum(axis=3), data)  # nothing lost, nothing doubled
    assert not columns[:, 4:, :, 0].any() and not columns[:, :4, :, 1].any()  # window k: its frames
    # The frame speaker count, and so overlap, is unchanged.
    assert np.array_equal(out.data.sum(axis=2), data.sum(axis=2))
    assert split_windows(segmentations, None) is segmentations
    assert split_windows(segmentations, 10) is segmentations


def test_close_clusters_are_merged_and_renumbered():
    a, b, c = np.eye(3)
    near_a = np.array([0.95, 0.3, 0.0])
    embeddings = np.array([[a, b], [near_a, c], [a, np.full(3, np.nan)]])
    hard = np.array([[0, 1], [3, 2], [0, -2]])
    merged = merge_close_clusters(hard, embeddings, threshold=0.2)
    assert merged.tolist() == [[0, 1], [0, 2], [0, -2]]  # 3 joined 0; inactive stays -2
    assert merge_close_clusters(hard, embeddings, threshold=0.01).tolist() == [[0, 1], [3, 2], [0, -2]]
    # Never below min_clusters; everything joins when all are close enough.
    assert len(np.unique(merge_close_clusters(hard, embeddings, 1.5, min_clusters=2)[hard >= 0])) == 2
    assert set(merge_close_clusters(hard, embeddings, 1.5).ravel()) == {0, -2}
