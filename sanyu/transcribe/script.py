"""Chinese script control with OpenCC, applied after each segment's language is decided."""

from __future__ import annotations

from functools import lru_cache

import opencc

from sanyu.schema import Segment, Word


@lru_cache(maxsize=None)
def _converter(config: str) -> opencc.OpenCC:
    return opencc.OpenCC(config)


def conversion_for(language: str, script: str, mandarin_script: str) -> str | None:
    """The OpenCC configuration to apply to text of `language`, or None to leave it as is.

    `auto` writes Cantonese in Hong Kong Traditional characters and Mandarin in `mandarin_script`;
    `traditional` / `simplified` force one script for all Chinese; `original` keeps model output.
    English and every other language are never touched.
    """
    if language not in ("yue", "zh") or script == "original":
        return None
    if script == "auto":
        target = "traditional" if language == "yue" else mandarin_script
    else:
        target = script
    if language == "yue":
        return "s2hk" if target == "traditional" else "hk2s"
    return "s2t" if target == "traditional" else "t2s"


def convert_text(text: str, config: str | None) -> str:
    return _converter(config).convert(text) if config else text


def apply_script(segment: Segment, script: str, mandarin_script: str) -> Segment:
    """Convert a segment's text and words in place to the script its language calls for."""
    config = conversion_for(segment.language, script, mandarin_script)
    if config is None:
        return segment
    segment.text = convert_text(segment.text, config)
    segment.words = [
        Word(**{**word.__dict__, "text": convert_text(word.text, config)}) for word in segment.words
    ]
    return segment
