"""The faster-whisper and CTranslate2 internals sanyu.adapters.faster_whisper borrows: each is called
here the way the adapter calls it, so a library upgrade that changes one fails loudly here."""

from __future__ import annotations

import inspect

import ctranslate2
import faster_whisper
import numpy as np
import pytest
from faster_whisper import WhisperModel
from faster_whisper.vad import VadOptions

from conftest import eval_clip
from sanyu.audio import decode_audio
from sanyu.adapters.faster_whisper import WhisperBackend, gather


def _parameters(function) -> list[str]:
    return list(inspect.signature(function).parameters)


def test_the_borrowed_signatures_are_the_ones_the_adapter_calls():
    assert faster_whisper.__version__ == "1.2.1", "re-check the adapter against this version"
    assert _parameters(WhisperModel._split_segments_by_timestamps) == [
        "self", "tokenizer", "tokens", "time_offset", "segment_size", "segment_duration", "seek",
    ]
    assert _parameters(WhisperModel.add_word_timestamps) == [
        "self", "segments", "tokenizer", "encoder_output", "num_frames", "prepend_punctuations",
        "append_punctuations", "last_speech_timestamp",
    ]
    assert _parameters(WhisperModel.get_prompt)[:5] == [
        "self", "tokenizer", "previous_tokens", "without_timestamps", "prefix",
    ]
    assert {"threshold", "min_silence_duration_ms", "speech_pad_ms", "max_speech_duration_s"} <= set(
        _parameters(VadOptions)
    )
    generate = ctranslate2.models.Whisper.generate.__doc__
    for keyword in ("max_length", "return_no_speech_prob", "num_hypotheses", "sampling_temperature"):
        assert keyword in generate
    assert hasattr(ctranslate2.StorageView, "__cuda_array_interface__")


@pytest.fixture(scope="module")
def backend():
    from sanyu.models import resolve_whisper

    return WhisperBackend(resolve_whisper("base"), "cpu", "int8", 1)


def test_one_window_through_every_borrowed_step(backend):
    audio = decode_audio(eval_clip("en/en_jfk_whisper.flac"))
    features = backend.features(audio.samples)
    assert features.shape == (backend.n_mels, 3000)
    encoded = backend.encode(features[None])
    scores = backend.detect(encoded, 0, 0.0, audio.duration)
    assert max(scores, key=scores.get) == "en"
    assert backend.embedding(encoded, 0, 0.0, audio.duration).shape == (512,)
    prompt = backend.prompt("en", [], None)
    [generation] = backend.generate(gather([(encoded, 0)]), [prompt], [300], beam_size=5)
    assert not generation.capped and generation.avg_logprob > -1.0
    segments, resume_at = backend.split_segments("en", generation.tokens, audio.duration)
    assert segments and all({"start", "end", "tokens"} <= set(s) for s in segments)
    assert resume_at is None  # the decode speaks for the whole clip
    for segment in segments:
        segment["text"] = backend.decode_text(segment["tokens"])
    assert "ask not what your country" in "".join(s["text"] for s in segments).lower()
    backend.add_words("en", [segments], gather([(encoded, 0)]), [audio.duration])
    words = [w for s in segments for w in s["words"]]
    assert words and all(0.0 <= w["start"] <= w["end"] <= audio.duration + 0.5 for w in words)
    assert all(0.0 <= w["probability"] <= 1.0 for w in words)


def test_features_computed_without_the_model_are_the_models(backend):
    from sanyu.adapters.faster_whisper import LogMel

    samples = decode_audio(eval_clip("en/en_jfk_whisper.flac")).samples
    assert np.array_equal(LogMel(backend.path)(samples), backend.features(samples))


def test_a_capped_decode_is_reported_as_capped(backend):
    audio = decode_audio(eval_clip("en/en_jfk_whisper.flac"))
    encoded = backend.encode(backend.features(audio.samples)[None])
    [generation] = backend.generate(
        gather([(encoded, 0)]), [backend.prompt("en", [], None)], [5], beam_size=1
    )
    assert generation.capped and not generation.full and len(generation.tokens) == 5


def test_room_follows_ctranslate2s_length_rule(backend):
    audio = decode_audio(eval_clip("en/en_jfk_whisper.flac"))
    encoded = backend.encode(backend.features(audio.samples)[None])
    for previous in ([], backend.text_tokens("hello there my friend")):
        prompt = backend.prompt("en", previous, None)
        for max_length in (8, 12, 16):
            [result] = backend.model.model.generate(
                gather([(encoded, 0)]).view, [prompt], max_length=max_length, beam_size=1
            )
            assert len(result.sequences_ids[0]) == backend.room(len(prompt), max_length)


def test_rows_of_different_batches_gather_into_one(backend):
    a = backend.encode(np.zeros((2, backend.n_mels, 3000), dtype=np.float32))
    b = backend.encode(np.ones((1, backend.n_mels, 3000), dtype=np.float32))
    batch = gather([(a, 1), (b, 0)])
    assert batch.array.shape[0] == 2
    assert np.allclose(batch.array[0], a.array[1]) and np.allclose(batch.array[1], b.array[0])


def test_a_windows_word_times_do_not_depend_on_the_windows_aligned_with_it(backend):
    # The same speech after 6 s of silence, aligned alone and after another window: faster-whisper
    # carries "the last speech" from one window to the next, and there stretched this window's
    # first word back over the silence (0.0-6.5 s instead of 5.8-6.5 s).
    import copy

    audio = decode_audio(eval_clip("en/en_jfk_whisper.flac"))
    windows = []
    for pause in (0.0, 6.0):
        samples = np.concatenate([np.zeros(int(pause * 16000), np.float32), audio.samples])
        encoded = backend.encode(backend.features(samples)[None])
        [generation] = backend.generate(gather([(encoded, 0)]), [backend.prompt("en", [], None)], [300], beam_size=5)
        segments, _ = backend.split_segments("en", generation.tokens, len(samples) / 16000)
        windows.append((encoded, segments, len(samples) / 16000))

    def first_words(chosen):
        segments = [copy.deepcopy(s) for _, s, _ in chosen]
        backend.add_words("en", segments, gather([(e, 0) for e, _, _ in chosen]), [d for _, _, d in chosen])
        return [(w["word"], w["start"], w["end"]) for w in segments[-1][0]["words"][:3]]

    alone = first_words(windows[1:])
    assert alone[0][1] > 5.0  # the first word starts after the silence
    assert first_words(windows) == alone
