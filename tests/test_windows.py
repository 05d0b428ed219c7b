"""Packing utterances into decoding windows, and mapping window time back (no model)."""

from __future__ import annotations

import pytest

from sanyu.transcribe.windows import (
    EDGE_PAD_S,
    KEPT_PAUSE_S,
    LONG_PAUSE_S,
    WINDOW_SECONDS,
    Utterance,
    differs_from_neighbours,
    on_its_own,
    pack,
    recording_windows,
    split_by,
    utterance_at,
)


def _utterances(*spans):
    return [Utterance(0, s, e) for s, e in spans]


def test_consecutive_utterances_share_a_window():
    [window] = pack(_utterances((41.0, 45.0), (45.4, 49.0), (49.5, 54.0)), duration=60.0)
    assert [(u.start, u.end) for u in window.utterances] == [(41.0, 45.0), (45.4, 49.0), (49.5, 54.0)]
    assert window.spans == [(41.0 - EDGE_PAD_S, 54.0 + EDGE_PAD_S)]


def test_a_recording_that_fits_one_window_is_decoded_whole():
    [window] = recording_windows(_utterances((1.0, 5.0), (9.5, 14.0)), duration=20.0)
    assert window.spans == [(0.0, 20.0)] and len(window.utterances) == 2


def test_speech_packed_again_is_never_the_whole_recording():
    # What a first decode skipped, packed for a second one: only that stretch, even in a recording
    # short enough to have been decoded whole (else the whole recording is written twice).
    [window] = pack(_utterances((9.5, 14.0)), duration=20.0)
    assert window.spans == [(9.5 - EDGE_PAD_S, 14.0 + EDGE_PAD_S)]
    longer = recording_windows(_utterances((1.0, 5.0), (39.0, 44.0)), duration=60.0)
    assert [w.spans for w in longer] == [w.spans for w in pack(_utterances((1.0, 5.0), (39.0, 44.0)), 60.0)]


def test_windows_never_outgrow_whisper_window():
    utterances = _utterances(*[(i * 10.0, i * 10.0 + 9.5) for i in range(10)])
    windows = pack(utterances, duration=100.0)
    assert len(windows) > 1
    assert all(w.duration <= WINDOW_SECONDS for w in windows)
    assert [u for w in windows for u in w.utterances] == utterances  # each once, in order


def test_a_long_pause_ends_a_window():
    windows = pack(_utterances((0.0, 3.0), (3.0 + LONG_PAUSE_S + 0.1, 12.0)), duration=40.0)
    assert len(windows) == 2


def test_pauses_inside_a_window_are_shortened_and_times_map_back():
    pause = KEPT_PAUSE_S + 3.0
    [window] = pack(_utterances((1.0, 4.0), (4.0 + pause, 9.0 + pause)), duration=40.0)
    assert len(window.spans) == 2
    assert window.duration == pytest.approx(3.0 + 5.0 + KEPT_PAUSE_S + 2 * EDGE_PAD_S)
    second = 4.0 + pause + 1.0  # a second into the second utterance
    assert window.to_source(window.to_window(second)) == pytest.approx(second)
    assert window.to_source(window.to_window(2.0)) == pytest.approx(2.0)
    # A time inside the dropped part of the pause maps to the cut.
    assert window.to_window(4.0 + pause / 2) == pytest.approx(window.to_window(4.0 + KEPT_PAUSE_S / 2))


def test_speech_packed_from_a_point_takes_no_audio_before_it():
    # The rest of a window a decode left unfinished starts where the decode stopped.
    [window] = pack(_utterances((8.8, 10.0)), duration=60.0, before=8.8)
    assert window.spans == [(8.8, 10.0 + EDGE_PAD_S)]


def test_edge_padding_stays_inside_the_recording():
    windows = pack(_utterances((0.05, 20.0), (20.5, 40.0)), duration=40.1)
    assert windows[0].spans[0][0] == 0.0 and windows[-1].spans[-1][1] == 40.1


def test_split_by_language_keeps_runs_and_bounds():
    utterances = _utterances((0.0, 2.0), (2.5, 4.0), (4.5, 6.0), (6.5, 8.0))
    for u, language in zip(utterances, ["yue", "yue", "en", "yue"]):
        u.language = language
    [window] = pack(utterances, duration=40.0)
    parts = split_by(window, lambda u: u.language, duration=40.0)
    assert [[u.language for u in p.utterances] for p in parts] == [["yue", "yue"], ["en"], ["yue"]]
    # Padding never reaches into a neighbouring run's speech.
    for left, right in zip(parts, parts[1:]):
        assert left.end <= right.utterances[0].start
        assert right.start >= left.utterances[-1].end
    assert split_by(parts[0], lambda u: u.language, duration=40.0) == [parts[0]]


def test_an_utterance_stands_alone_in_its_language_or_beside_a_change():
    languages = ["en", "zh", "en", "en", "yue"]
    utterances = [Utterance(0, 2.0 * i, 2.0 * i + 1.5, language) for i, language in enumerate(languages)]
    [window] = pack(utterances, duration=20.0)
    islands = [differs_from_neighbours(window, u, every=True) for u in utterances]
    changes = [differs_from_neighbours(window, u, every=False) for u in utterances]
    assert islands == [True, True, False, False, True]  # an end differs from its one neighbour
    assert changes == [True, True, True, True, True]
    [single] = pack(utterances[:1], duration=20.0)
    assert not differs_from_neighbours(single, utterances[0], every=True)
    assert not differs_from_neighbours(single, utterances[0], every=False)


def test_an_utterance_on_its_own_keeps_off_its_neighbours_speech():
    utterances = _utterances((1.0, 4.0), (4.1, 7.0), (7.5, 9.0))
    [window] = pack(utterances, duration=20.0)
    alone = on_its_own(window, utterances[1], duration=20.0)
    assert alone.utterances == [utterances[1]]
    assert alone.spans == [(4.0, 7.0 + EDGE_PAD_S)]  # padding stops at the neighbours' speech


def test_utterance_at_prefers_overlap_then_nearest():
    utterances = _utterances((0.0, 2.0), (3.0, 5.0))
    assert utterance_at(utterances, 1.5, 3.2) is utterances[0]
    assert utterance_at(utterances, 2.4, 2.9) is utterances[1]
