"""Scoring normalisation: numbers, script and punctuation never count as errors."""

from __future__ import annotations

from sanyu.evaluation.text import normalize, pooled, score


def test_spelled_and_digit_numbers_meet():
    assert score("one two three", "1, 2, 3", "en").errors == 0
    assert score("IN EIGHTEEN THIRTEEN", "In 1813.", "en").errors == 0
    assert score("presented him with fifty pieces of gold", "presented him with 50 pieces of gold", "en").errors == 0


def test_english_case_and_punctuation():
    assert normalize("Ask not, what YOUR country can do!", "en") == "ask not what your country can do"


def test_chinese_script_numbers_and_punctuation():
    ref = "开放时间早上九点至下午五点。"
    hyp = "開放時間早上9點至下午5點"
    assert score(ref, hyp, "zh").errors == 0


def test_character_error_rate_counts_characters():
    result = score("广州市房地产中介协会分析", "广州市佛地产中间协会分析", "zh")
    assert (result.errors, result.reference_length) == (2, 12)


def test_pooled_weights_by_reference_length():
    a = score("abcd", "abcd", "yue")
    b = score("一二", "", "yue")
    assert pooled([a, b]) == 2 / 6
