"""Language decisions without a model: candidate restriction, Latin words, and Cantonese word
evidence (the path for a model with neither a `<|yue|>` token nor a dialect probe)."""

from __future__ import annotations

import pytest

from sanyu.transcribe.language import decide_dialect, is_latin_word, restrict_language


def test_restriction_keeps_the_meeting_languages():
    scores = [("ja", 0.5), ("zh", 0.3), ("en", 0.15), ("vi", 0.05)]
    language, share = restrict_language(scores, ("yue", "zh", "en"))
    assert language == "zh"
    assert share == pytest.approx(0.3 / 0.45)


def test_no_candidates_means_any_language():
    assert restrict_language([("ja", 0.9), ("zh", 0.1)], ()) == ("ja", 0.9)


def test_models_with_a_cantonese_token_keep_it():
    assert restrict_language([("yue", 0.7), ("zh", 0.2), ("en", 0.1)], ("yue", "zh", "en"))[0] == "yue"


def test_latin_words():
    assert is_latin_word(" meeting")
    assert is_latin_word("budget,")
    assert not is_latin_word("會議")
    assert not is_latin_word("2024")


def test_confident_cantonese_words_decide_cantonese():
    words = [("佢哋", 0.9), ("喺", 0.8), ("度", 0.9), ("講", 0.9), ("嘢", 0.85)]
    assert decide_dialect(words).cantonese


def test_swapped_function_words_are_no_evidence():
    # What the prompt makes the model write over Mandarin speech: 的→嘅, 在→喺, 是→係.
    words = [("歡迎", 0.9), ("大家", 0.9), ("推出", 0.8), ("嘅", 0.9), ("喺", 0.9), ("係", 0.9)]
    assert decide_dialect(words).score == 0 and not decide_dialect(words).cantonese


def test_mandarin_words_written_despite_the_prompt_outweigh_a_hesitant_marker():
    words = [("我們", 0.9), ("這", 0.8), ("唔", 0.6), ("的", 0.9)]
    assert not decide_dialect(words).cantonese


def test_hesitant_markers_count_against_cantonese():
    assert decide_dialect([("佢", 0.2), ("冇", 0.3)]).score < 0
    assert not decide_dialect([]).cantonese
