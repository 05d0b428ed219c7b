"""Language decisions as pure logic: the meeting's candidate languages, Latin words inside
Chinese, and, for a model with neither a `<|yue|>` token nor a dialect probe, Cantonese told from
Mandarin by the words a Cantonese prompt lets the model write.

That last path (see docs/language.md) decodes Chinese speech under `CANTONESE_PROMPT`. Over
Cantonese speech the model then writes colloquial Cantonese it hears (佢哋 冇 唔 咗 嘢 ...); over
Mandarin speech it only swaps a few function words for their Cantonese forms (的→嘅, 在→喺,
是→係, 那→嗰), and keeps Mandarin ones (们, 这, 没, 他 ...). So the evidence counts Cantonese
vocabulary that is not such a swap, against the Mandarin function words written despite the
prompt, each by the model's own confidence in it (its probability without the prompt, minus
one half): Cantonese only when the Cantonese side wins.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# Written in colloquial Cantonese, so the model may write the particles it hears.
CANTONESE_PROMPT = "以下係廣東話嘅句子，佢哋喺度講緊嘢。"

# Colloquial Cantonese that a prompt does not produce by swapping a Mandarin word.
CANTONESE_WORDS = frozenset("佢哋冇唔咗嘢乜啲嚟睇諗攞畀啱咩囉喎㗎嘞吖噃咋啫嚿餸瞓攰嬲冧嗮揾搵冚嘥啩")
# Mandarin function words that Cantonese speech replaces.
MANDARIN_WORDS = frozenset("的了是在们們这這那么麼说說没沒吗嗎他她它给給也")
PIVOT = 0.5  # a word written with more confidence than this counts for its side

_LATIN_WORD = re.compile(r"[A-Za-z][A-Za-z'\-]*")


@dataclass(frozen=True)
class DialectDecision:
    score: float  # > 0 leans Cantonese
    cantonese: bool


def decide_dialect(words: list[tuple[str, float]]) -> DialectDecision:
    """Cantonese or Mandarin for one utterance decoded under the Cantonese prompt, from its
    (text, probability) words."""
    score = 0.0
    for text, probability in words:
        for char in text:
            if char in CANTONESE_WORDS:
                score += probability - PIVOT
            elif char in MANDARIN_WORDS:
                score -= probability - PIVOT
    return DialectDecision(score, score > 0)


def restrict_language(
    probabilities: list[tuple[str, float]], candidates: tuple[str, ...]
) -> tuple[str, float]:
    """Best language among `candidates` (all, if empty), with its share of their probability.

    On models without a `yue` token, Cantonese is detected as `zh`: `yue` in the candidates lets
    `zh` through, and the Cantonese/Mandarin split comes after.
    """
    if not candidates:
        return probabilities[0]
    allowed = set(candidates) | ({"zh"} if "yue" in candidates else set())
    scored = [(lang, p) for lang, p in probabilities if lang in allowed]
    if not scored:
        return probabilities[0]
    total = sum(p for _, p in scored) or 1.0
    lang, p = max(scored, key=lambda item: item[1])
    return lang, p / total


def is_latin_word(text: str) -> bool:
    return bool(_LATIN_WORD.fullmatch(text.strip().strip(".,!?;:\"'()")))
