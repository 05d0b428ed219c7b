"""No speech vanishes: on every real clip, each utterance VAD finds ends as text or as a dropped
utterance with the guard that dropped it, and the words plain faster-whisper gets right are
there, in order, in Sanyu's transcript too; also where clips are joined into a long recording,
whose windows Sanyu packs and cuts."""

from __future__ import annotations

import pytest

from sanyu import TranscribeOptions
from sanyu.audio import decode_audio
from sanyu.evaluation.coverage import missing_stretches
from sanyu.evaluation.dataset import load_clips
from sanyu.evaluation.folds import read_folds, split
from sanyu.evaluation.runner import evaluate_joined, plain_faster_whisper
from sanyu.schema import Dropped
from sanyu.transcribe.speech import speech_regions

pytestmark = pytest.mark.slow

NAMED_GUARDS = {"no-speech", "prompt-echo", "empty"}
# A stretch this long that faster-whisper got right and Sanyu lacks is lost speech, not a
# recognition difference: three words (English), or five characters (Chinese, whose words
# average under two characters).
MIN_WORDS, MIN_CHARACTERS = 3, 5


@pytest.fixture(scope="module")
def transcripts(transcriber, shared_eval):
    clips = [c for c in load_clips(shared_eval, ("en", "zh", "yue")) if c.reference]
    out = []
    for clip in clips:
        transcriber.engine.fresh_sampler()
        audio = decode_audio(clip.path)
        transcript = transcriber.transcribe_audio(audio, TranscribeOptions())
        out.append((clip, audio, transcript, plain_faster_whisper(transcriber, clip.path)))
    return out


def test_every_utterance_is_transcribed_or_dropped_by_a_named_guard(transcriber, transcripts):
    for clip, audio, transcript, _ in transcripts:
        regions = speech_regions(audio)
        for start, end in regions:
            covered = any(s.end > start and s.start < end for s in transcript.segments)
            dropped = [d for d in transcript.dropped if d.start < end and d.end > start]
            assert covered or dropped, f"{clip.name}: {start:.2f}-{end:.2f} vanished"
            assert all(d.reason in NAMED_GUARDS for d in dropped), (clip.name, dropped)
        data = transcript.to_dict()
        assert data["dropped_count"] == len(transcript.dropped)
        assert data["dropped_seconds"] == pytest.approx(sum(d.duration for d in transcript.dropped), abs=0.01)


def test_words_faster_whisper_gets_right_are_not_missing(transcripts):
    lost = {}
    for clip, _, transcript, baseline in transcripts:
        minimum = MIN_WORDS if clip.language == "en" else MIN_CHARACTERS
        stretches = missing_stretches(clip.reference, baseline, transcript.text, clip.language, minimum)
        if stretches:
            lost[clip.name] = stretches
    assert not lost, lost


def test_dropped_utterances_roundtrip_through_json(transcripts):
    from sanyu.schema import Transcript

    for _, _, transcript, _ in transcripts:
        again = Transcript.from_json(transcript.to_json())
        assert again.dropped == transcript.dropped
        assert all(isinstance(d, Dropped) for d in again.dropped)


def test_words_faster_whisper_gets_right_are_not_missing_from_long_english_recordings(
    transcriber, shared_eval
):
    # Each fold's English clips joined as `sanyu eval --folds` joins them: the end of a full
    # window is where words went missing ("built around it", fold B).
    folds = split([c for c in load_clips(shared_eval, ("en",)) if c.reference], read_folds(shared_eval / "FOLDS.tsv"))
    lost = {}
    for fold, clips in sorted(folds.items()):
        sanyu, baseline = evaluate_joined(clips, transcriber, TranscribeOptions())
        assert (sanyu.system, baseline.system) == ("sanyu", "faster-whisper")
        stretches = missing_stretches(sanyu.clip.reference, baseline.hypothesis, sanyu.hypothesis, "en", MIN_WORDS)
        if stretches:
            lost[fold] = stretches
    assert not lost, lost
