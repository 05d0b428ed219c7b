"""Speaker diarization on real speech (slow: runs the models), and the scoring helpers (fast)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from sanyu.audio import SAMPLE_RATE, Audio, decode_audio
from sanyu.diarize.merge import assign_speakers
from sanyu.diarize.pipeline import Diarizer
from sanyu.errors import ModelError
from sanyu.evaluation.diarization import (
    cpwer,
    der,
    der_components,
    pooled_der,
    read_rttm,
    read_stm,
    read_uem,
    speaker_texts_from_stm,
    speaker_texts_from_transcript,
    turns_from_transcript,
)
from sanyu.output import render_rttm_turns
from sanyu.schema import Segment, SpeakerTurn, Transcript, Word

EVAL = Path(__file__).resolve().parents[1].parent / "shared" / "eval"
MULTI = EVAL / "multi"


def need_eval(*relative: str) -> list[Path]:
    paths = [EVAL / r for r in relative]
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        pytest.skip(f"evaluation data not found (expected ../shared/eval): {', '.join(missing)}")
    return paths


# --- scoring helpers (no models) ----------------------------------------------------------------


def test_rttm_round_trip_and_der_of_a_perfect_hypothesis(tmp_path):
    turns = [
        SpeakerTurn(0.5, 2.0, "alice"),
        SpeakerTurn(1.5, 3.0, "bob"),
        SpeakerTurn(4.0, 6.0, "alice"),
    ]
    rttm = tmp_path / "ref.rttm"
    rttm.write_text(render_rttm_turns(turns, "clip"))
    assert read_rttm(rttm) == turns
    # Labels do not matter, only the partition; overlap is scored.
    renamed = [SpeakerTurn(t.start, t.end, {"alice": "X", "bob": "Y"}[t.speaker]) for t in turns]
    assert der(rttm, renamed) == 0.0
    # All speech given to one speaker: bob's 1.5 s become confusion or missed speech.
    one = [SpeakerTurn(0.5, 3.0, "X"), SpeakerTurn(4.0, 6.0, "X")]
    components = der_components(rttm, one, collar=0.0)
    assert components["total"] == pytest.approx(5.0)
    assert der(rttm, one, collar=0.0) == pytest.approx(1.5 / 5.0)
    assert der(rttm, []) == pytest.approx(1.0)


def test_der_collar_and_uem(tmp_path):
    rttm = tmp_path / "ref.rttm"
    rttm.write_text(render_rttm_turns([SpeakerTurn(0.0, 10.0, "a")], "clip"))
    late = [SpeakerTurn(0.2, 10.0, "b")]
    assert der(rttm, late, collar=0.0) == pytest.approx(0.02)
    assert der(rttm, late, collar=0.5) == 0.0  # the 0.2 s miss lies in the collar
    uem = tmp_path / "ref.uem"
    uem.write_text("clip NA 5.000 10.000\n")
    assert read_uem(uem) == [(5.0, 10.0)]
    assert der(rttm, [SpeakerTurn(0.0, 5.0, "b")], uem_path=uem, collar=0.0) == 1.0


def test_pooled_der_weights_files_by_speech():
    a = {"total": 10.0, "confusion": 1.0, "missed detection": 0.0, "false alarm": 0.0}
    b = {"total": 30.0, "confusion": 0.0, "missed detection": 2.0, "false alarm": 1.0}
    assert pooled_der([a, b]) == pytest.approx(4.0 / 40.0)
    assert pooled_der([]) == 0.0


def test_cpwer_finds_the_best_speaker_pairing():
    reference = {"diane": "hello this is diane", "sheila": "and I am sheila in texas"}
    swapped = {"SPEAKER_00": "and I am sheila in texas", "SPEAKER_01": "hello this is diane"}
    result = cpwer(reference, swapped)
    assert (result.errors, result.reference_length) == (0, 10)
    assert result.mapping == {"diane": "SPEAKER_01", "sheila": "SPEAKER_00"}
    # One word of diane's given to sheila's speaker: a deletion plus an insertion.
    moved = {"SPEAKER_00": "hello this is", "SPEAKER_01": "diane and I am sheila in texas"}
    assert cpwer(reference, moved).errors == 2
    # A speaker the reference lacks: all insertions. A speaker the hypothesis lacks: deletions.
    extra = {**swapped, "SPEAKER_02": "okay then"}
    assert cpwer(reference, extra).errors == 2
    merged = cpwer(reference, {"SPEAKER_00": "hello this is diane"})
    assert merged.errors == 6 and merged.mapping["sheila"] is None
    assert cpwer(reference, swapped).rate == 0.0


def test_cpwer_counts_chinese_in_characters():
    reference = {"a": "你好嗎", "b": "我好好"}
    result = cpwer(reference, {"x": "我好", "y": "你好嗎"}, language="yue")
    assert (result.errors, result.reference_length) == (1, 6)


def test_stm_reader_and_turns_from_transcript():
    (stm,) = need_eval("multi/pyannote_sample.stm")
    utterances = read_stm(stm)
    assert {u.speaker for u in utterances} == {"Diane", "Sheila"}
    assert utterances[0].text == "Hello?" and utterances[0].start == pytest.approx(6.68)
    texts = speaker_texts_from_stm(stm)
    assert texts["Sheila"].startswith("Hello? Neither did I.")
    transcript = Transcript(
        "x",
        10.0,
        [
            Segment(0.0, 1.0, "hi", "en", speaker="SPEAKER_00"),
            Segment(1.0, 2.0, "yo", "en", speaker="SPEAKER_01"),
            Segment(2.0, 2.0, "", "en", speaker="SPEAKER_01"),
        ],
    )
    assert turns_from_transcript(transcript) == [
        SpeakerTurn(0.0, 1.0, "SPEAKER_00"),
        SpeakerTurn(1.0, 2.0, "SPEAKER_01"),
    ]


# --- the Diarizer on real audio -----------------------------------------------------------------


@pytest.fixture(scope="module")
def diarizer():
    try:
        return Diarizer(device="cpu")
    except ModelError as exc:
        pytest.skip(f"diarization model not available: {exc}")


@pytest.fixture(scope="module")
def sample_turns(diarizer):
    (wav,) = need_eval("multi/pyannote_sample.wav")
    return diarizer(decode_audio(wav))


def check_turns(turns: list[SpeakerTurn]) -> None:
    assert turns == sorted(turns, key=lambda t: (t.start, t.end, t.speaker))
    assert all(0.0 <= t.start < t.end for t in turns)
    order = list(dict.fromkeys(t.speaker for t in turns))
    assert order == [f"SPEAKER_{i:02d}" for i in range(len(order))]


@pytest.mark.slow
def test_two_speakers_of_pyannote_sample_within_15_percent_der(sample_turns):
    (rttm,) = need_eval("multi/pyannote_sample.rttm")
    check_turns(sample_turns)
    assert {t.speaker for t in sample_turns} == {"SPEAKER_00", "SPEAKER_01"}
    assert der(rttm, sample_turns) <= 0.15


@pytest.mark.slow
def test_speakers_put_on_a_transcript_match_the_reference_speakers(sample_turns):
    """Words timed from the STM, joined across speaker changes as an ASR would, get split back."""
    (stm,) = need_eval("multi/pyannote_sample.stm")
    utterances = read_stm(stm)
    words = []
    for u in utterances:
        tokens = u.text.split()
        step = (u.end - u.start) / len(tokens)
        words += [
            Word(u.start + i * step, u.start + (i + 1) * step, " " + token)
            for i, token in enumerate(tokens)
        ]
    # Two long segments that each hold both speakers.
    half = len(words) // 2
    segments = [
        Segment(ws[0].start, ws[-1].end, "".join(w.text for w in ws).strip(), "en", ws)
        for ws in (words[:half], words[half:])
    ]
    result = assign_speakers(Transcript("pyannote_sample.wav", 30.0, segments), sample_turns)
    assert len(result.segments) > len(segments)
    assert sorted(result.speakers) == ["SPEAKER_00", "SPEAKER_01"]
    assert result.speakers == list(dict.fromkeys(s.speaker for s in result.segments))
    assert all(w.speaker == s.speaker for s in result.segments for w in s.words)
    score = cpwer(speaker_texts_from_stm(stm), speaker_texts_from_transcript(result))
    assert score.rate <= 0.10
    assert set(score.mapping.values()) == {"SPEAKER_00", "SPEAKER_01"}


@pytest.mark.slow
def test_speaker_count_options_are_obeyed(diarizer):
    """Two people reading one sentence each, partly at once (one per channel, downmixed)."""
    (wav, rttm) = need_eval(
        "multi/en_fasterwhisper_stereo_diarization.wav",
        "multi/en_fasterwhisper_stereo_diarization.rttm",
    )
    audio = decode_audio(wav)
    free = diarizer(audio)
    check_turns(free)
    assert {t.speaker for t in free} == {"SPEAKER_00", "SPEAKER_01"}
    assert der(rttm, free) <= 0.15
    one = diarizer(audio, num_speakers=1)
    check_turns(one)
    assert one and {t.speaker for t in one} == {"SPEAKER_00"}
    at_most_one = diarizer(audio, max_speakers=1)
    assert {t.speaker for t in at_most_one} == {"SPEAKER_00"}


@pytest.mark.slow
@pytest.mark.parametrize(
    "clip", ["en/en_librispeech_2412-153948-0000.flac", "yue/yue_sherpa_yue-9.wav"]
)
def test_single_speaker_clip_gives_one_speaker(diarizer, clip):
    (path,) = need_eval(clip)
    audio = decode_audio(path)
    turns = diarizer(audio)
    check_turns(turns)
    assert {t.speaker for t in turns} == {"SPEAKER_00"}
    speech = sum(t.end - t.start for t in turns)
    assert speech > 0.5 * audio.duration


@pytest.mark.slow
def test_silence_and_noise_give_no_turns(diarizer):
    assert diarizer(Audio(np.zeros(5 * SAMPLE_RATE, dtype=np.float32), "silence.wav")) == []
    noise = np.random.default_rng(0).normal(0, 1e-3, 5 * SAMPLE_RATE).astype(np.float32)
    assert diarizer(Audio(noise, "noise.wav")) == []
    assert diarizer(Audio(np.zeros(0, dtype=np.float32), "empty.wav")) == []


@pytest.mark.slow
def test_campplus_embeddings_tell_speakers_apart(diarizer):
    import torch

    from sanyu.diarize.campplus import CAMPPlusEmbedding

    clips = need_eval("zh/zh_qwen3asr_raokouling.wav", "en/en_jfk_whisper.flac")
    model = CAMPPlusEmbedding.from_directory(diarizer.model_dir / "campplus")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as the Diarizer does: far faster on a CPU shared with others
    try:
        check_embeddings(model, clips)
    finally:
        torch.set_num_threads(threads)


def check_embeddings(model, clips) -> None:
    import torch

    assert not model.training and model.dimension == 192
    halves = []
    for clip in clips:
        samples = decode_audio(clip).samples
        n = min(len(samples) // 2, 5 * SAMPLE_RATE)
        halves += [samples[:n], samples[n : 2 * n]]
    with torch.inference_mode():
        embeddings = torch.cat([model(torch.from_numpy(h.copy())[None, None]) for h in halves])
        embeddings = torch.nn.functional.normalize(embeddings, dim=1)
        similarity = embeddings @ embeddings.T
        same = min(similarity[0, 1], similarity[2, 3])
        different = similarity[:2, 2:].max()
        assert same > different + 0.3
        # Masks: one chunk sent once per local speaker; an empty mask gives NaN ("no speaker").
        chunk = torch.from_numpy(halves[0].copy())[None, None].repeat(3, 1, 1)
        masks = torch.zeros(3, 293)
        masks[0] = 1.0
        masks[1, :150] = 1.0
        out = model(chunk, weights=masks)
        assert out.shape == (3, 192)
        assert torch.isnan(out[2]).all() and not torch.isnan(out[:2]).any()
        assert torch.allclose(out[0], model(chunk[:1])[0], atol=1e-4)


@pytest.mark.slow
def test_rttm_written_by_sanyu_scores_as_the_diarizers_own_annotation(diarizer, tmp_path):
    """Two people reading at once: the RTTM of a diarized transcript, read back by
    pyannote.database, is the Diarizer's own annotation, overlap included, and scores the same
    with pyannote.metrics."""
    from pyannote.core import Segment as Span
    from pyannote.core import Timeline
    from pyannote.database.util import load_rttm
    from pyannote.metrics.diarization import DiarizationErrorRate

    from sanyu.diarize.merge import apply_diarization
    from sanyu.output import render

    wav, rttm = need_eval(
        "multi/en_fasterwhisper_stereo_diarization.wav", "multi/en_fasterwhisper_stereo_diarization.rttm"
    )
    audio = decode_audio(wav)
    diarization = diarizer.diarize(audio)
    own = diarization.annotation
    overlap = own.get_overlap().duration()
    assert overlap > 1.0, "the two readers overlap in the diarizer's output"
    assert max(t.end for t in diarization.turns) <= audio.duration
    transcript = apply_diarization(Transcript(str(wav), audio.duration), diarization)
    path = tmp_path / "stereo.rttm"
    path.write_text(render(Transcript.from_json(transcript.to_json()), "rttm"), encoding="utf-8")
    (written,) = load_rttm(path).values()
    (reference,) = load_rttm(rttm).values()
    scored = Timeline([Span(0.0, audio.duration)])
    for collar in (0.0, 0.25):
        metric = DiarizationErrorRate(collar=collar, skip_overlap=False)
        own_score = metric(reference, own, uem=scored, detailed=True)
        written_score = metric(reference, written, uem=scored, detailed=True)
        for component in ("diarization error rate", "missed detection", "false alarm", "confusion"):
            assert written_score[component] == pytest.approx(own_score[component], abs=2e-3)
    # The same turns under the same labels: scored against each other, only ms rounding differs.
    assert DiarizationErrorRate(collar=0.0)(own, written, uem=scored) < 1e-3
    assert written.get_overlap().duration() == pytest.approx(overlap, abs=0.01)
