"""Putting speakers on words and segments: pure functions on hand-made turns and words."""

from __future__ import annotations

import pytest

from sanyu.diarize.merge import TurnIndex, assign_speakers, speaker_for_span
from sanyu.schema import Segment, SpeakerTurn, Transcript, Word

A, B, C = "SPEAKER_00", "SPEAKER_01", "SPEAKER_02"


def turn(start, end, speaker):
    return SpeakerTurn(start, end, speaker)


def segment(words, language="en", text=None, **kwargs):
    words = [Word(s, e, t) for s, e, t in words]
    return Segment(
        start=words[0].start if words else kwargs.pop("start"),
        end=words[-1].end if words else kwargs.pop("end"),
        text=text if text is not None else "".join(w.text for w in words).strip(),
        language=language,
        words=words,
        **kwargs,
    )


def word_speakers(result):
    return [w.speaker for s in result.segments for w in s.words]


def transcript(*segments):
    return Transcript(source="test.wav", duration=60.0, segments=list(segments), languages=["en"])


def test_each_word_gets_the_speaker_whose_turn_holds_it():
    turns = [turn(0.0, 2.0, A), turn(2.0, 4.0, B)]
    result = assign_speakers(
        transcript(segment([(0.1, 0.5, " Hi"), (0.6, 1.0, " there.")])), turns
    )
    [seg] = result.segments
    assert seg.speaker == A
    assert [w.speaker for w in seg.words] == [A, A]
    assert seg.text == "Hi there."
    assert result.speakers == [A]


def test_segment_is_split_where_the_speaker_changes():
    turns = [turn(0.0, 2.0, A), turn(2.0, 5.0, B)]
    seg = segment(
        [(0.2, 0.6, " How"), (0.6, 0.9, " are"), (0.9, 1.3, " you?"), (2.3, 2.8, " Fine,"),
         (2.8, 3.2, " thanks.")],
        avg_logprob=-0.2,
        no_speech_prob=0.01,
    )
    result = assign_speakers(transcript(seg), turns)
    first, second = result.segments
    assert (first.speaker, first.text, first.start, first.end) == (A, "How are you?", 0.2, 1.3)
    assert (second.speaker, second.text, second.start, second.end) == (B, "Fine, thanks.", 2.3, 3.2)
    assert [w.speaker for w in first.words] == [A, A, A]
    assert [w.speaker for w in second.words] == [B, B]
    assert first.language == second.language == "en"
    assert first.avg_logprob == -0.2 and second.no_speech_prob == 0.01
    assert result.speakers == [A, B]


def test_split_rebuilds_chinese_text_without_spaces():
    turns = [turn(0.0, 1.0, A), turn(1.0, 2.0, B)]
    seg = segment(
        [(0.1, 0.4, "你好"), (0.4, 0.8, "嗎"), (1.1, 1.5, "好"), (1.5, 1.9, "呀")], "yue"
    )
    first, second = assign_speakers(transcript(seg), turns).segments
    assert (first.text, second.text) == ("你好嗎", "好呀")
    assert first.language == second.language == "yue"


def test_split_joins_english_inside_chinese_with_spaces():
    turns = [turn(0.0, 1.0, A), turn(1.0, 3.0, B)]
    seg = segment(
        [(0.1, 0.5, "喂"), (1.1, 1.4, "我"), (1.4, 1.8, " check"), (1.8, 2.1, "下")], "yue"
    )
    first, second = assign_speakers(transcript(seg), turns).segments
    assert first.text == "喂"
    assert second.text == "我 check 下"


def test_word_straddling_a_boundary_goes_to_the_turn_it_overlaps_most():
    turns = [turn(0.0, 1.0, A), turn(1.0, 3.0, B)]
    seg = segment([(0.5, 0.9, " one"), (0.9, 1.3, " two"), (1.6, 2.0, " three")])
    # "two": 0.1 s with A, 0.3 s with B -> B; "one" inside A.
    speakers = word_speakers(assign_speakers(transcript(seg), turns))
    assert speakers == [A, B, B]
    seg = segment([(0.5, 0.9, " one"), (0.7, 1.1, " two")])
    speakers = word_speakers(assign_speakers(transcript(seg), turns))
    assert speakers == [A, A]  # "two": 0.3 s with A, 0.1 s with B


def test_overlapped_speech_goes_to_the_dominant_speaker():
    # B talks over the end of A's long turn, then takes the floor.
    turns = [turn(0.0, 6.0, A), turn(4.0, 5.0, B), turn(6.0, 8.0, B)]
    index = TurnIndex(turns)
    # Fully inside both turns: equal overlap, A holds the longer turn.
    assert speaker_for_span(index, 4.2, 4.6) == A
    # More overlap with B (0.6 s) than with A (0.2 s).
    assert speaker_for_span(index, 5.8, 6.6) == B
    # A 1.1 s against B 0.1 + 0.5 s.
    assert speaker_for_span(index, 4.9, 6.5) == A
    seg = segment([(1.0, 1.5, " so"), (4.2, 4.6, " yeah"), (6.2, 6.8, " right")])
    result = assign_speakers(transcript(seg), turns)
    assert [(s.speaker, s.text) for s in result.segments] == [(A, "so yeah"), (B, "right")]


def test_overlap_is_summed_over_a_speakers_turns():
    turns = [turn(0.0, 2.0, A), turn(2.0, 2.2, B), turn(2.4, 2.6, B)]
    # A 0.3 s; B 0.2 s in each of two turns, 0.4 s together.
    assert speaker_for_span(TurnIndex(turns), 1.7, 2.6) == B


def test_words_in_gaps_go_to_the_nearest_turn():
    turns = [turn(1.0, 2.0, A), turn(5.0, 6.0, B)]
    seg = segment(
        [(0.2, 0.5, " early"), (2.3, 2.6, " after"), (4.5, 4.8, " before"), (7.0, 7.5, " late")]
    )
    result = assign_speakers(transcript(seg), turns)
    pieces = [(s.speaker, s.text) for s in result.segments]
    assert pieces == [(A, "early after"), (B, "before late")]


def test_nearest_turn_tie_goes_to_the_longer_turn():
    turns = [turn(0.0, 1.0, A), turn(3.0, 6.0, B)]
    assert speaker_for_span(TurnIndex(turns), 1.5, 2.5) == B


def test_nearest_turn_sees_a_long_turn_that_started_earlier():
    # The turn ending last before the word is not the one starting last.
    turns = [turn(0.0, 9.0, A), turn(1.0, 2.0, B)]
    assert speaker_for_span(TurnIndex(turns), 9.5, 9.8) == A


def test_zero_length_word_takes_the_turn_around_it():
    turns = [turn(0.0, 1.0, A), turn(1.0, 2.0, B)]
    assert speaker_for_span(TurnIndex(turns), 1.5, 1.5) == B
    assert speaker_for_span(TurnIndex(turns), 0.5, 0.5) == A


def test_segment_without_words_gets_the_speaker_with_most_overlap():
    turns = [turn(0.0, 3.0, A), turn(2.0, 10.0, B)]
    segments = [
        segment([], text="Hello there.", start=0.0, end=2.5),
        segment([], text="Long answer.", start=2.5, end=9.0),
        segment([], text="Echo.", start=11.0, end=12.0),
    ]
    result = assign_speakers(transcript(*segments), turns)
    assert [s.speaker for s in result.segments] == [A, B, B]
    assert [s.text for s in result.segments] == ["Hello there.", "Long answer.", "Echo."]
    assert result.speakers == [A, B]


def test_speakers_listed_in_order_of_first_appearance_in_the_transcript():
    turns = [turn(0.0, 1.0, B), turn(1.0, 2.0, A), turn(2.0, 3.0, C)]
    segs = [segment([(2.1, 2.5, " c")]), segment([(0.1, 0.5, " b")]), segment([(1.1, 1.5, " a")])]
    segs.sort(key=lambda s: s.start)
    result = assign_speakers(transcript(*segs), turns)
    assert result.speakers == [B, A, C]


def test_unknown_speaker_labels_are_kept_and_turn_order_does_not_matter():
    turns = [turn(2.0, 4.0, "bob"), turn(0.0, 2.0, "alice")]
    result = assign_speakers(transcript(segment([(0.5, 1.0, " hi"), (2.5, 3.0, " yo")])), turns)
    assert [(s.speaker, s.text) for s in result.segments] == [("alice", "hi"), ("bob", "yo")]


def test_input_transcript_is_not_changed():
    turns = [turn(0.0, 1.0, A), turn(1.0, 2.0, B)]
    original = transcript(segment([(0.1, 0.5, " one"), (1.1, 1.5, " two")]))
    before = original.to_dict()
    result = assign_speakers(original, turns)
    assert original.to_dict() == before
    assert original.segments[0].words[0].speaker is None
    assert result is not original and len(result.segments) == 2
    assert (result.source, result.duration, result.languages) == ("test.wav", 60.0, ["en"])


def test_empty_inputs():
    turns = [turn(0.0, 1.0, A)]
    empty = assign_speakers(transcript(), turns)
    assert empty.segments == [] and empty.speakers == []

    seg = segment([(0.1, 0.5, " alone")])
    no_turns = assign_speakers(transcript(seg), [])
    assert [s.speaker for s in no_turns.segments] == [None]
    assert [w.speaker for w in no_turns.segments[0].words] == [None]
    assert no_turns.speakers == []

    assert assign_speakers(transcript(), []).segments == []
    # Zero-length turns are no turns.
    assert assign_speakers(transcript(seg), [turn(1.0, 1.0, A)]).speakers == []


def test_turn_index_agrees_with_brute_force():
    import random

    rng = random.Random(7)
    turns = []
    for _ in range(200):
        start = rng.uniform(0, 100)
        turns.append(turn(start, start + rng.uniform(0.05, 8.0), rng.choice([A, B, C])))
    index = TurnIndex(turns)
    for _ in range(500):
        start = rng.uniform(-5, 110)
        end = start + rng.choice([0.0, rng.uniform(0.01, 1.0)])
        brute = {
            t for t in turns
            if (t.start < end and t.end > start) or (end == start and t.start <= start <= t.end)
        }
        assert set(index.overlapping(start, end)) == brute
        if not brute:
            nearest = index.nearest(start, end)
            best = min(max(t.start - end, start - t.end) for t in turns)
            assert max(nearest.start - end, start - nearest.end) == pytest.approx(best)


def test_apply_diarization_keeps_overlapping_turns_and_chooses_word_turns():
    from sanyu.diarize.merge import WORD_TURNS, Diarization, apply_diarization

    words = [Word(0.0, 1.0, " I"), Word(1.0, 2.0, " agree"), Word(2.0, 3.0, " no")]
    transcript = Transcript("m.wav", 4.0, [Segment(0.0, 3.0, "I agree no", "en", words)])
    # B talks over A from 0.8 s to 2.4 s; pyannote's exclusive turns give B the overlap.
    turns = [SpeakerTurn(0.0, 2.4, "A"), SpeakerTurn(0.8, 3.0, "B")]
    exclusive = [SpeakerTurn(0.0, 0.8, "A"), SpeakerTurn(0.8, 3.0, "B")]
    diarization = Diarization(turns, exclusive)
    by_overlap = apply_diarization(transcript, diarization, "overlapping")
    by_exclusive = apply_diarization(transcript, diarization, "exclusive")
    assert [w.speaker for s in by_overlap.segments for w in s.words] == ["A", "A", "B"]
    assert [w.speaker for s in by_exclusive.segments for w in s.words] == ["A", "B", "B"]
    assert by_overlap.turns == by_exclusive.turns == turns  # RTTM keeps the overlap either way
    assert apply_diarization(transcript, diarization).turns == turns and WORD_TURNS == "overlapping"
    assert transcript.turns == [] and transcript.segments[0].speaker is None  # input unchanged
    with pytest.raises(ValueError, match="word_turns"):
        apply_diarization(transcript, diarization, "majority")
