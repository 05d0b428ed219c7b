"""Language decisions without a model: candidate restriction and Cantonese word evidence."""

from __future__ import annotations

import pytest

from sanyu.transcribe.language import (
    cantonese_score,
    dialect_evidence,
    is_latin_word,
    restrict_language,
    tonality,
)


def test_restriction_keeps_the_meeting_languages():
    scores = [("ja", 0.5), ("zh", 0.3), ("en", 0.15), ("vi", 0.05)]
    language, share = restrict_language(scores, ("yue", "zh", "en"))
    assert language == "zh"
    assert share == pytest.approx(0.3 / 0.45)


def test_no_candidates_means_any_language():
    assert restrict_language([("ja", 0.9), ("zh", 0.1)], ()) == ("ja", 0.9)


def test_cantonese_particles_lean_cantonese():
    evidence = dialect_evidence("佢哋喺度講緊嘢，我唔知佢講咗啲乜")
    assert evidence.cantonese >= 8 and evidence.score > 1


def test_mandarin_function_words_lean_mandarin():
    evidence = dialect_evidence("他们在这里说的是什么，我不知道")
    assert evidence.mandarin >= 6 and evidence.score < -1


def test_neutral_text_has_no_evidence_either_way():
    evidence = dialect_evidence("忽然從光線死角陰影傳出一隻大貓")
    assert evidence.cantonese == 0 and evidence.mandarin == 0 and evidence.score == 0


def test_empty_text_scores_zero():
    assert dialect_evidence("").score == 0.0
    assert dialect_evidence("hello world").characters == 0


def test_latin_words():
    assert is_latin_word(" meeting")
    assert is_latin_word("budget,")
    assert not is_latin_word("會議")
    assert not is_latin_word("2024")


def test_confident_cantonese_markers_outweigh_a_mandarin_lean():
    words = [("佢哋", 0.9), ("喺", 0.8), ("度", 0.9), ("講", 0.9), ("嘢", 0.85)]
    assert cantonese_score(words, tonal_lean=-1.0) > 0


def test_hesitant_markers_under_the_prompt_count_against_cantonese():
    words = [("對", 0.9), ("微分", 0.9), ("嘅", 0.55), ("積分", 0.8), ("嘅", 0.52)]
    assert cantonese_score(words, tonal_lean=-1.2) < 0


def test_without_markers_the_tonality_lean_decides():
    neutral = [("忽然", 0.9), ("大貓", 0.8)]
    assert cantonese_score(neutral, tonal_lean=0.3) > 0
    assert cantonese_score(neutral, tonal_lean=-0.3) < 0


def test_tonality_is_vietnamese_over_english_in_log10():
    assert tonality({"vi": 0.01, "en": 0.001, "zh": 0.98}) == pytest.approx(1.0)
    assert tonality({"zh": 1.0}) == pytest.approx(0.0)


def test_models_with_a_cantonese_token_keep_it():
    assert restrict_language([("yue", 0.7), ("zh", 0.2), ("en", 0.1)], ("yue", "zh", "en"))[0] == "yue"
