"""faster-whisper internals (tested with faster-whisper 1.2.1).

`language_codes`: the Whisper language codes, which faster-whisper keeps in the private
``faster_whisper.tokenizer._LANGUAGE_CODES`` (a model instance lists them too, but the HTTP
layer checks a request before any model is at hand).
"""

from __future__ import annotations

from faster_whisper.tokenizer import _LANGUAGE_CODES


def language_codes() -> frozenset[str]:
    return frozenset(_LANGUAGE_CODES)
