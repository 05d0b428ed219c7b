"""Scoring text: the normalisation ../shared/eval/README.md prescribes, and error rates via jiwer.

Both sides go through the same steps: Unicode NFKC; English digits spelled out by num2words, then
Whisper's English normaliser (lower case, punctuation, spelled-out numbers back to canonical
digits, so "1, 2, 3" and "one two three" meet); Chinese through OpenCC `t2s` and cn2an
(Chinese numerals to digits); then punctuation and spaces dropped. Chinese is scored by character
error rate, English by word error rate.
"""

from __future__ import annotations

import re
import unicodedata
import warnings
from dataclasses import dataclass
from functools import lru_cache

import cn2an
import jiwer
import opencc
from num2words import num2words
from whisper_normalizer.english import EnglishTextNormalizer

CHARACTER_LANGUAGES = ("zh", "yue")
_NUMBER = re.compile(r"\d+(?:\.\d+)?")


@lru_cache(maxsize=1)
def _english_normalizer():
    return EnglishTextNormalizer()


@lru_cache(maxsize=1)
def _t2s():
    return opencc.OpenCC("t2s")


def _chinese_numbers(text: str) -> str:
    with warnings.catch_warnings():  # cn2an warns about each fragment it leaves alone
        warnings.simplefilter("ignore", UserWarning)
        try:
            return cn2an.transform(text, "cn2an")
        except (ValueError, KeyError, IndexError):  # cn2an gives up on some odd strings
            return text


def _spell_numbers(text: str) -> str:
    return _NUMBER.sub(lambda m: f" {num2words(m.group())} ", text)


def normalize(text: str, language: str) -> str:
    """Normalised text: space-separated words (en) or a run of characters (zh, yue)."""
    text = unicodedata.normalize("NFKC", text)
    if language in CHARACTER_LANGUAGES:
        text = _chinese_numbers(_t2s().convert(text))
        # English words inside Chinese are scored by their letters too, lower-cased.
        return "".join(c for c in text.lower() if c.isalnum())
    return " ".join(_english_normalizer()(_spell_numbers(text)).split())


@dataclass
class Score:
    errors: int
    reference_length: int

    @property
    def rate(self) -> float:
        return self.errors / self.reference_length if self.reference_length else 0.0


def score(reference: str, hypothesis: str, language: str) -> Score:
    """Edit errors of `hypothesis` against `reference`, counted in characters or words."""
    ref = normalize(reference, language)
    hyp = normalize(hypothesis, language)
    if language in CHARACTER_LANGUAGES:
        ref_units, hyp_units = list(ref), list(hyp)
    else:
        ref_units, hyp_units = ref.split(), hyp.split()
    if not ref_units:
        return Score(len(hyp_units), 0)
    # jiwer over pre-split units: each unit joined by spaces is a "word" for jiwer.
    output = jiwer.process_words(" ".join(ref_units), " ".join(hyp_units) or "")
    return Score(output.substitutions + output.deletions + output.insertions, len(ref_units))


def pooled(scores: list[Score]) -> float:
    total = sum(s.reference_length for s in scores)
    return sum(s.errors for s in scores) / total if total else 0.0
