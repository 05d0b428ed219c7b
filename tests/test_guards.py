"""Hallucination guards as pure functions."""

from __future__ import annotations

import numpy as np

from sanyu.transcribe.guards import collapse_repetitions, echoes_prompt, is_digital_silence, is_silence


def test_runaway_repetition_collapses():
    assert collapse_repetitions("謝謝謝謝謝謝謝謝") == "謝"
    assert collapse_repetitions("好的好的好的好的好的") == "好的"
    assert collapse_repetitions("thank you thank you thank you thank you") == "thank you"
    assert collapse_repetitions("喺度講緊嘅話嘅嘅話嘅嘅話嘅") == "喺度講緊嘅話嘅"


def test_ordinary_repeats_survive():
    assert collapse_repetitions("謝謝大家") == "謝謝大家"
    assert collapse_repetitions("very very good") == "very very good"
    assert collapse_repetitions("好好好") == "好好好"
    assert collapse_repetitions("拚，拚吧，拚吧。") == "拚，拚吧，拚吧。"


def test_numbers_are_not_repetitions():
    for text in ("It cost 10000 dollars.", "$1,000,000,000 in bonds", "Call 555-5555.",
                 "預算為 1000000 元", "等等……", "2020, 2020, 2020"):
        assert collapse_repetitions(text) == text
    # a word looping after a number still collapses, the number kept whole
    assert collapse_repetitions("10000 thank you thank you thank you") == "10000 thank you"


def test_digital_silence():
    assert is_digital_silence(np.zeros(16000, dtype=np.float32))
    assert is_digital_silence(np.full(16000, 1e-5, dtype=np.float32))
    quiet_speech_level = 0.01 * np.sin(np.arange(16000) / 5.0)
    assert not is_digital_silence(quiet_speech_level.astype(np.float32))


def test_prompt_echo_is_detected():
    prompt = "以下係廣東話嘅句子，佢哋喺度講緊嘢。"
    assert echoes_prompt("廣東話嘅句子，佢哋喺度講緊嘢", [prompt])
    assert not echoes_prompt("今日天氣好好", [prompt])
    assert not echoes_prompt("嘢", [prompt])  # too short to judge


def test_silence_rule_needs_both_signals():
    assert is_silence(0.9, -1.5)
    assert not is_silence(0.9, -0.2)
    assert not is_silence(0.1, -1.5)
    assert not is_silence(None, None)
