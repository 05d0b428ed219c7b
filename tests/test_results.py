"""Which speech a window's decode left without text, and so is decoded again (no model)."""

from __future__ import annotations

from sanyu.schema import Segment
from sanyu.transcribe.results import RESCUE_SECONDS, RESUME_SECONDS, Result, loops, uncovered
from sanyu.transcribe.windows import Utterance, pack


def _result(utterances, segments, resume_at=None) -> Result:
    [window] = pack(utterances, duration=60.0)
    return Result(window, [Segment(s, e, "text", "en") for s, e in segments], resume_at=resume_at)


def _stretches(result: Result) -> list[tuple[float, float]]:
    return [(round(start, 3), round(end, 3)) for _, start, end in uncovered(result)]


def test_a_short_stretch_after_the_last_segment_is_left_when_the_decode_claimed_the_window():
    # The decode closed its last segment and ended: it says nothing more was spoken.
    u = Utterance(0, 0.0, 10.0)
    assert _stretches(_result([u], [(0.0, 8.8)])) == []
    assert _stretches(_result([u], [(0.0, 10.0 - RESCUE_SECONDS)])) == [(8.0, 10.0)]


def test_what_follows_where_the_decode_left_its_window_unfinished_is_decoded_again():
    # faster-whisper drops a segment the decode opened and did not close, and seeks to its start;
    # Sanyu decodes from there again, however short the rest, from the point itself (the last
    # segment's end may sit a little before it, moved by word alignment).
    u = Utterance(0, 0.0, 10.0)
    assert _stretches(_result([u], [(0.0, 8.78)], resume_at=8.8)) == [(8.8, 10.0)]
    # ... but not a stretch too short to hold a word past VAD's padding
    assert _stretches(_result([u], [(0.0, 9.6)], resume_at=10.0 - RESUME_SECONDS / 2)) == []


def test_before_that_point_only_long_skipped_stretches_count_and_whole_utterances_after_it_do():
    first, second = Utterance(0, 0.0, 10.0), Utterance(0, 10.5, 12.0)
    result = _result([first, second], [(0.0, 3.0), (4.0, 7.0)], resume_at=7.0)
    # 3.0-4.0 is a short gap inside the decode: left; after 7.0 the rest of the first utterance,
    # and the second one whole
    assert _stretches(result) == [(7.0, 10.0), (10.5, 12.0)]


def test_a_window_dropped_after_an_unfinished_decode_is_still_decoded_on_from_where_it_stopped():
    # Its only closed segment echoed the prompt, and the decode stopped at 6 s of 25: the rest
    # is speech no decode has looked at yet.
    u = Utterance(0, 0.0, 25.0)
    [window] = pack([u], duration=60.0)
    assert _stretches(Result.drop(window, "prompt-echo", resume_at=6.0)) == [(6.0, 25.0)]
    assert _stretches(Result.drop(window, "prompt-echo")) == []


def test_a_loop_over_two_utterances_is_decoded_again_over_both():
    # The looped segment replaced by the decode of its stretch holds the text of both
    # utterances: the stretch must cover both, or the first one's words would go with it.
    first, second = Utterance(0, 40.0, 45.0), Utterance(0, 45.5, 52.0)
    result = _result([first, second], [(40.0, 42.0), (42.0, 50.0)])
    result.looped.append(result.segments[1])
    [(utterance, start, end, segment)] = loops(result)
    assert (start, end) == (42.0, 50.0) and utterance is second and segment is result.segments[1]
