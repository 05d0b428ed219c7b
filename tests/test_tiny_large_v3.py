"""The large-v3 path (128 mel bins, the model's own `<|yue|>` token) on a tiny random model.

No real large-v3 is available offline, so `tiny_whisper.py` builds one in its shape; these tests
check the model itself and faster-whisper on it, the parts the engine relies on.
"""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from conftest import eval_clip
from tiny_whisper import (
    CANTONESE_TEXT,
    ENDOFTEXT,
    N_MELS,
    NOSPEECH,
    NOTIMESTAMPS,
    STARTOFTRANSCRIPT,
    TRANSCRIBE,
    VOCAB_SIZE,
    YUE,
    base_tokenizer_path,
    large_v3_tokenizer,
    record_calls,
)

CLIP = "yue/yue_sherpa_yue-0.wav"  # 3 s of Cantonese speech


@pytest.fixture(scope="module")
def tokenizer():
    from tokenizers import Tokenizer

    base = json.loads(base_tokenizer_path().read_text(encoding="utf-8"))
    return Tokenizer.from_str(json.dumps(large_v3_tokenizer(base)))


@pytest.fixture(scope="module")
def model(tiny_large_v3):
    from faster_whisper import WhisperModel

    return WhisperModel(str(tiny_large_v3), device="cpu", compute_type="int8", cpu_threads=1)


@pytest.fixture(scope="module")
def speech():
    from faster_whisper import decode_audio

    return decode_audio(str(eval_clip(CLIP)))


def test_tokenizer_has_large_v3_ids(tokenizer):
    from tokenizers import Tokenizer
    from transformers.models.whisper.tokenization_whisper import LANGUAGES  # openai/whisper's order

    base = Tokenizer.from_file(str(base_tokenizer_path()))
    assert tokenizer.get_vocab_size() == VOCAB_SIZE == base.get_vocab_size() + 1
    languages = [tokenizer.token_to_id(f"<|{code}|>") for code in LANGUAGES]
    assert languages == list(range(50259, 50359)) and languages[-1] == YUE == 50358
    expected = {
        "<|endoftext|>": 50257,
        "<|startoftranscript|>": 50258,
        "<|su|>": 50357,
        "<|translate|>": 50359,
        "<|transcribe|>": 50360,
        "<|startoflm|>": 50361,
        "<|startofprev|>": 50362,
        "<|nospeech|>": 50363,
        "<|notimestamps|>": 50364,
        "<|0.00|>": 50365,
        "<|30.00|>": 51865,
    }
    assert {token: tokenizer.token_to_id(token) for token in expected} == expected
    # Text tokens are base's; the template wraps text in large-v3's ids.
    assert tokenizer.encode("係 hello", add_special_tokens=False).ids == base.encode("係 hello", add_special_tokens=False).ids
    encoded = tokenizer.encode("hello").ids
    assert encoded[:2] == [50258, 50364] and encoded[-1] == 50257
    assert tokenizer.decode([YUE], skip_special_tokens=False) == "<|yue|>"


@pytest.mark.slow
def test_model_directory_is_large_v3_shaped(tiny_large_v3):
    config = json.loads((tiny_large_v3 / "config.json").read_text())
    assert config["lang_ids"] == list(range(50259, 50359))
    assert config["suppress_ids_begin"] == [220, ENDOFTEXT]
    # Base's suppressed tokens in large-v3's numbering: large-v3's own list (88 ids, the same
    # text tokens, then <|startoftranscript|> and <|translate|> ... <|nospeech|>).
    assert len(config["suppress_ids"]) == 88
    assert config["suppress_ids"][-7:] == [50254, STARTOFTRANSCRIPT, 50359, 50360, 50361, 50362, NOSPEECH]
    assert config["alignment_heads"]
    assert json.loads((tiny_large_v3 / "preprocessor_config.json").read_text())["feature_size"] == N_MELS
    vocabulary = json.loads((tiny_large_v3 / "vocabulary.json").read_text())
    assert len(vocabulary) == VOCAB_SIZE and vocabulary[YUE] == "<|yue|>" and vocabulary[-1] == "<|30.00|>"


@pytest.mark.slow
def test_faster_whisper_uses_128_mel_bins(model, speech):
    import ctranslate2

    assert model.model.n_mels == N_MELS and model.model.is_multilingual
    features = model.feature_extractor(speech)
    assert features.shape[0] == N_MELS and model.feature_extractor.mel_filters.shape[0] == N_MELS
    with pytest.raises(ValueError, match=f"\\(1, {N_MELS}, 3000\\)"):
        model.model.encode(ctranslate2.StorageView.from_array(np.zeros((1, 80, 3000), np.float32)))


@pytest.mark.slow
def test_yue_is_the_models_own_token(model):
    from faster_whisper.tokenizer import Tokenizer

    assert model.hf_tokenizer.token_to_id("<|yue|>") == YUE
    tokenizer = Tokenizer(model.hf_tokenizer, True, task="transcribe", language="yue")
    assert tokenizer.sot_sequence == [STARTOFTRANSCRIPT, YUE, TRANSCRIBE]
    assert tokenizer.no_timestamps == NOTIMESTAMPS and tokenizer.no_speech == NOSPEECH
    assert tokenizer.timestamp_begin == NOTIMESTAMPS + 1


@pytest.mark.slow
def test_language_detection_reads_yue(model, speech):
    from faster_whisper.audio import pad_or_trim

    encoded = model.encode(pad_or_trim(model.feature_extractor(speech)))
    scores = dict(model.model.detect_language(encoded)[0])
    assert len(scores) == 100 and "<|yue|>" in scores
    assert max(scores, key=scores.get) == "<|yue|>"  # the steered detector (tiny_whisper._steer)
    language, probability, _ = model.detect_language(speech)
    assert language == "yue" and probability > 0.9


@pytest.mark.slow
@pytest.mark.parametrize("language", ["yue", None])
def test_transcribe_decodes_under_yue(model, speech, language):
    with record_calls(model) as calls:
        segments, info = model.transcribe(speech, language=language, word_timestamps=True)
        segments = list(segments)
    assert info.language == "yue"
    assert calls.feature_bins and set(calls.feature_bins) == {N_MELS}
    assert calls.prompts and set(calls.language_tokens) == {YUE}
    # Random weights steered to short sentences of these characters, decoded at temperature 0.
    assert segments and all(segment.temperature == 0.0 for segment in segments)
    assert_steered_text("".join(segment.text for segment in segments))
    assert all(segment.words for segment in segments)


@pytest.mark.slow
def test_batched_pipeline_decodes_under_yue(model, speech):
    from faster_whisper import BatchedInferencePipeline

    with record_calls(model) as calls:
        segments, info = BatchedInferencePipeline(model).transcribe(speech, batch_size=2)
        segments = list(segments)
    assert info.language == "yue" and set(calls.language_tokens) == {YUE}
    assert segments and set(calls.feature_bins) == {N_MELS}
    assert_steered_text("".join(segment.text for segment in segments))


def assert_steered_text(text: str) -> None:
    assert text and set(text) <= set(CANTONESE_TEXT), text


@pytest.mark.slow
def test_engine_sees_the_yue_token(tiny_large_v3):
    from sanyu.options import ModelOptions
    from sanyu.transcribe.engine import WhisperEngine

    engine = WhisperEngine(ModelOptions(model=str(tiny_large_v3), cpu_threads=1))
    assert engine.has_yue_token and engine.multilingual
    assert engine.model.model.n_mels == N_MELS


@pytest.mark.slow
def test_engine_decodes_with_yue_and_128_mel_bins(tiny_large_v3, speech):
    from sanyu import ModelOptions, TranscribeOptions, Transcriber
    from sanyu.audio import Audio

    transcriber = Transcriber(ModelOptions(model=str(tiny_large_v3), cpu_threads=1))
    engine = transcriber.engine
    assert engine.dialect_probe is None, "the model's own token decides, not a probe"
    with record_calls(engine.model) as calls:
        transcript = transcriber.transcribe_audio(Audio(speech, "speech"), TranscribeOptions())
    assert set(calls.feature_bins) == {N_MELS}
    assert calls.prompts and set(calls.language_tokens) == {YUE}
    assert transcript.segments and {s.language for s in transcript.segments} == {"yue"}
    assert not any("廣東話" in "".join(map(str, p)) for p in calls.prompts)
    assert_steered_text("".join(s.text for s in transcript.segments).replace(" ", ""))


def _sanyu(*args, cwd) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "sanyu.cli", *args], capture_output=True, text=True, timeout=600,
        cwd=cwd,
    )


@pytest.mark.slow
@pytest.mark.parametrize("command", ["transcribe", "batch"])
def test_commands_run_the_yue_path_end_to_end(tiny_large_v3, tmp_path, command):
    clips = tmp_path / "in"
    clips.mkdir()
    for relative in ("yue/yue_sherpa_yue-2.wav", "en/en_ljspeech_LJ002-0020.wav"):
        source = eval_clip(relative)
        (clips / source.name).symlink_to(source)
    extra = ["--workers", "1"] if command == "batch" else []
    result = _sanyu(
        command, str(clips), "--model", str(tiny_large_v3), "-o", str(tmp_path / "out"),
        "-f", "json", "--log-level", "debug", *extra, cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "128 mel bins; Cantonese from its own <|yue|> token" in result.stderr
    assert "with <|yue|>" in result.stderr  # the decoder's own record of the token it used
    outputs = sorted((tmp_path / "out").glob("*.json"))
    transcripts = [json.loads(p.read_text(encoding="utf-8")) for p in outputs if not p.name.startswith(("summary", "index"))]
    transcripts = [t for t in transcripts if "segments" in t]
    assert len(transcripts) == 2
    for transcript in transcripts:
        assert transcript["segments"] and {s["language"] for s in transcript["segments"]} == {"yue"}
