"""Script control: Cantonese in HK Traditional, Mandarin as chosen, English untouched."""

from __future__ import annotations

import pytest

from sanyu.schema import Segment, Word
from sanyu.transcribe.script import apply_script, conversion_for


def _segment(text: str, language: str) -> Segment:
    return Segment(0.0, 1.0, text, language, words=[Word(0.0, 1.0, text)])


@pytest.mark.parametrize(
    "language,script,mandarin,expected",
    [
        ("yue", "auto", "simplified", "s2hk"),
        ("yue", "auto", "traditional", "s2hk"),
        ("zh", "auto", "simplified", "t2s"),
        ("zh", "auto", "traditional", "s2t"),
        ("yue", "simplified", "simplified", "hk2s"),
        ("zh", "traditional", "simplified", "s2t"),
        ("en", "auto", "traditional", None),
        ("zh", "original", "simplified", None),
    ],
)
def test_conversion_table(language, script, mandarin, expected):
    assert conversion_for(language, script, mandarin) == expected


def test_cantonese_written_in_hong_kong_traditional():
    segment = apply_script(_segment("呢几个字都表达唔到我想讲嘅意思", "yue"), "auto", "simplified")
    assert segment.text == "呢幾個字都表達唔到我想講嘅意思"
    assert segment.words[0].text == segment.text


def test_mandarin_follows_the_chosen_script():
    simplified = apply_script(_segment("歡迎大家來體驗達摩院推出的語音識別模型", "zh"), "auto", "simplified")
    assert simplified.text == "欢迎大家来体验达摩院推出的语音识别模型"
    traditional = apply_script(_segment("欢迎大家来体验", "zh"), "auto", "traditional")
    assert traditional.text == "歡迎大家來體驗"


def test_english_and_code_switched_latin_words_are_untouched():
    english = apply_script(_segment("Ask not what your country can do", "en"), "traditional", "traditional")
    assert english.text == "Ask not what your country can do"
    mixed = apply_script(_segment("我哋今日开个 meeting 讨论 budget", "yue"), "auto", "simplified")
    assert mixed.text == "我哋今日開個 meeting 討論 budget"
