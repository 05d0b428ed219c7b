"""End to end on real recordings: languages per segment, scripts, guards, timestamps."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys

import numpy as np
import opencc
import pytest

from conftest import eval_clip, write_wav
from sanyu import TranscribeOptions
from sanyu.audio import Audio
from sanyu.evaluation.dataset import join_clips, load_clips
from sanyu.evaluation.text import score

pytestmark = pytest.mark.slow

T2S = opencc.OpenCC("t2s")
S2T = opencc.OpenCC("s2t")


def test_english_clip(transcriber):
    clip = eval_clip("en/en_jfk_whisper.flac")
    transcript = transcriber.transcribe_file(clip, TranscribeOptions())
    assert transcript.languages == ["en"]
    reference = clip.with_suffix(".txt").read_text()
    assert score(reference, transcript.text, "en").rate < 0.1
    for segment in transcript.segments:
        assert segment.words, "word timestamps are on by default"
        assert all(segment.start - 0.5 <= w.start <= w.end <= segment.end + 0.5 for w in segment.words)
    starts = [s.start for s in transcript.segments]
    assert starts == sorted(starts)


def test_cantonese_is_tagged_yue_and_written_in_traditional(transcriber):
    clip = eval_clip("yue/yue_sherpa_yue-6.wav")
    transcript = transcriber.transcribe_file(clip, TranscribeOptions(mandarin_script="simplified"))
    assert transcript.languages[0] == "yue"
    text = transcript.text
    assert T2S.convert(text) != text, "Traditional characters expected for Cantonese"
    assert S2T.convert(text) == text or opencc.OpenCC("s2hk").convert(text) == text
    reference = clip.with_suffix(".txt").read_text()
    assert score(reference, text, "yue").rate < 0.35


@pytest.mark.parametrize("script,converter", [("simplified", T2S), ("traditional", S2T)])
def test_mandarin_is_written_in_the_chosen_script(transcriber, script, converter):
    clip = eval_clip("zh/zh_funasr_asr_example.wav")
    transcript = transcriber.transcribe_file(clip, TranscribeOptions(mandarin_script=script))
    assert transcript.languages == ["zh"]
    assert transcript.text and converter.convert(transcript.text) == transcript.text
    reference = clip.with_suffix(".txt").read_text()
    assert score(reference, transcript.text, "zh").rate < 0.3


def test_fixed_language_skips_detection(transcriber):
    clip = eval_clip("en/en_librispeech_1995-1837-0001.wav")
    transcript = transcriber.transcribe_file(clip, TranscribeOptions(language="en"))
    assert {s.language for s in transcript.segments} == {"en"}


_JOINED = """
import json, sys
from sanyu import ModelOptions, TranscribeOptions, Transcriber
from sanyu.evaluation.runner import evaluate_language_id
r = evaluate_language_id(sys.argv[1], Transcriber(ModelOptions(model="base")), TranscribeOptions(),
                         per_language=4, exclude=("zh_qwen3asr_raokouling",), alone=sys.argv[2] == "alone")
print(json.dumps({"accuracy": r.accuracy, "confusions": [[t, s, n] for (t, s), n in r.confusions.items()],
                  "pooled": r.pooled, "pooled_parts": r.pooled_parts}))
"""


@pytest.mark.parametrize("backend", ["MKL", "oneDNN"])
def test_joined_yue_zh_en_parts_keep_their_own_language(shared_eval, backend):
    # The four longest clips of each language, interleaved like turns of a meeting (~3.5 min),
    # under both of CTranslate2's CPU backends (it picks oneDNN on AMD CPUs): the language
    # decisions must not hang on int8 rounding. The tongue twister is left out: base loops on
    # it in ways that depend on where windows start, which says nothing about languages. The
    # parts are also transcribed alone, to compare error rates, under one backend (oneDNN).
    environment = {**os.environ, "CT2_USE_MKL": "1" if backend == "MKL" else "0"}
    alone = "alone" if backend == "oneDNN" else "joined-only"
    done = subprocess.run(
        [sys.executable, "-c", _JOINED, str(shared_eval), alone], capture_output=True, text=True,
        env=environment, timeout=1200,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    print(f"joined clips under {backend}: {result}")  # the figures, shown with pytest -rP
    tagged: dict[str, dict[str, int]] = {}
    for truth, said, count in result["confusions"]:
        tagged.setdefault(truth, {})[said] = count
    assert set(tagged) == {"yue", "zh", "en"}, "every part must produce segments"
    for truth, said in tagged.items():
        assert max(said, key=said.get) == truth, (truth, said)
    assert result["accuracy"] >= 0.95, result["confusions"]
    # Joined, each part is cut into utterances with their own languages; alone, a part under 30 s
    # is decoded whole in one language, as plain Whisper does. One short utterance decided wrong
    # costs a language's four parts about 5 points (oneDNN: a 3 s shout in a Cantonese part,
    # written in Latin letters), so the bound is 8 points, in every language.
    for language, parts in result["pooled_parts"].items():
        joined = result["pooled"][language]
        assert joined <= parts + 0.08, (language, joined, result["pooled_parts"])
    assert bool(result["pooled_parts"]) == (alone == "alone")


def _synthetic(seconds: float, kind: str) -> Audio:
    rng = np.random.default_rng(0)
    n = int(seconds * 16000)
    if kind == "silence":
        samples = np.zeros(n, dtype=np.float32)
    elif kind == "noise":
        samples = (rng.standard_normal(n) * 0.05).astype(np.float32)
    else:
        samples = (0.3 * np.sin(2 * np.pi * 440 * np.arange(n) / 16000)).astype(np.float32)
    return Audio(samples=samples, source=kind)


@pytest.mark.parametrize("kind", ["silence", "noise", "tone"])
def test_no_text_without_speech(transcriber, kind):
    transcript = transcriber.transcribe_audio(_synthetic(8.0, kind), TranscribeOptions())
    assert transcript.segments == [] and transcript.text == ""


def test_no_text_on_silence_even_without_vad(transcriber, tmp_path):
    path = write_wav(tmp_path / "quiet.wav", np.zeros(16000 * 5, dtype=np.float32))
    transcript = transcriber.transcribe_file(path, TranscribeOptions(vad=False))
    assert transcript.text == ""


def test_glossary_term_is_recognised_only_with_the_glossary(transcriber):
    clip = eval_clip("zh/zh_funasrnano_rag_math.wav")  # "微分几何": base hears "微分几合"
    plain = transcriber.transcribe_file(clip, TranscribeOptions(language="zh"))
    assert "微分几何" not in plain.text
    glossary = transcriber.transcribe_file(
        clip, TranscribeOptions(language="zh", glossary=("微分几何", "积分"))
    )
    assert "微分几何" in glossary.text


def test_without_a_probe_cantonese_words_decide(transcriber, monkeypatch):
    # A model with no `<|yue|>` token and no trained probe (small, a fine-tune): Chinese is
    # decoded under the Cantonese prompt and weighed by the colloquial characters it writes.
    monkeypatch.setattr(transcriber.engine, "dialect_probe", None)
    cantonese = transcriber.transcribe_file(eval_clip("yue/yue_sherpa_yue-1.wav"), TranscribeOptions())
    mandarin = transcriber.transcribe_file(eval_clip("zh/zh_funasr_asr_example.wav"), TranscribeOptions())
    assert cantonese.languages[0] == "yue" and any(c in cantonese.text for c in "佢冇嘢")
    assert mandarin.languages == ["zh"]


@pytest.mark.slow
def test_a_fresh_sampler_samples_as_a_fresh_run(transcriber):
    """`sanyu eval` scores each clip as a fresh run would: temperature fallback samples, and
    what was sampled before would change a clip's text."""
    from sanyu.audio import decode_audio
    from sanyu.evaluation.runner import plain_faster_whisper

    clip, engine = eval_clip("zh/zh_funasrnano_far_2.wav"), transcriber.engine

    def sample() -> list[int]:
        backend = engine.backend
        encoded = backend.encode(backend.features(decode_audio(clip).samples)[None])
        prompt = backend.prompt("zh", [], None)
        return backend.generate(encoded.rows([0]), [prompt], [60], beam_size=1, temperature=1.0)[0].tokens

    engine.fresh_sampler()
    first = sample()
    assert engine.backend.sampled
    assert sample() != first  # the generator moved on
    engine.fresh_sampler()
    assert not engine.backend.sampled
    assert sample() == first

    # the baseline samples this clip too, and starts each transcription from a fresh sampler
    assert plain_faster_whisper(transcriber, clip) == plain_faster_whisper(transcriber, clip)


def test_a_run_checked_alone_is_not_encoded_again(transcriber, shared_eval, monkeypatch, tmp_path):
    # English between two Mandarin sentences, in one window: the English utterance differs from
    # both neighbours, is checked on its own, holds, and so its neighbours are checked on their
    # own too; the window is cut into three runs, each with the audio of one of those checks,
    # whose encoder output it takes instead of a second pass. Before decoding: the window and
    # the three checks, no features encoded twice.
    wanted = ("zh_aishell_BAC009S0724W0121", "en_librispeech_1995-1837-0001", "zh_aishell_BAC009S0764W0121")
    clips = {c.name: c for c in load_clips(shared_eval, ("zh", "en"))}
    audio_path = tmp_path / "zh-en-zh.wav"
    join_clips([clips[name] for name in wanted], audio_path)
    backend = transcriber.engine.backend
    encoded: list[bytes] = []
    decoding = []
    real_encode, real_generate = backend.encode, backend.generate

    def encode(features):
        if not decoding:
            encoded.extend(hashlib.sha256(row.tobytes()).digest() for row in features)
        return real_encode(features)

    def generate(*args, **kwargs):
        decoding.append(True)
        return real_generate(*args, **kwargs)

    monkeypatch.setattr(backend, "encode", encode)
    monkeypatch.setattr(backend, "generate", generate)
    transcript = transcriber.transcribe_file(audio_path, TranscribeOptions())
    languages = [s.language for s in transcript.segments]
    runs = [language for i, language in enumerate(languages) if i == 0 or language != languages[i - 1]]
    assert runs == ["zh", "en", "zh"], transcript.segments
    assert len(encoded) == len(set(encoded)) == 4
