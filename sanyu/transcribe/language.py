"""Language decisions: choosing among a meeting's languages, and Cantonese versus Mandarin.

Whisper base and small have no Cantonese token: both Cantonese and Mandarin speech are detected
as `zh`. Sanyu decides per chunk from evidence it can measure (see docs/language.md):

1. the model's acoustic language scores, restricted to the candidate languages, choose among
   Chinese, English (and any other candidate);
2. every Chinese chunk is decoded under a Cantonese prompt, which lets the model write the
   colloquial characters it hears (嘅 咗 喺 唔 佢 ...). Under that prompt the model also writes
   some of them over Mandarin speech, but hesitantly; so each marker counts by how sure the
   model was of it: word probability minus 0.5 (a hesitant marker counts against Cantonese);
3. a second acoustic cue, the tonality lean: Cantonese speech draws more of the detector's
   residual probability to Vietnamese (another tonal language) than to English;
4. the chunk is Cantonese when the marker evidence plus half the tonality lean is positive;
   otherwise it is decoded again without the prompt and tagged Mandarin.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

# Characters written in colloquial Cantonese and (almost) never in Mandarin.
CANTONESE_MARKERS = frozenset(
    "嘅咗喺唔佢哋冇啲嚟嗰噉咁乜嘢啱咩嘥睇冚揾搵攞畀㗎啩囉嘞吖噃嚿餸諗瞓攰嬲冧嗮咋啫喎"
)
# Function words Mandarin speech keeps and Cantonese speech replaces.
MANDARIN_MARKERS = frozenset("的了是在不这這那们們么麼说說没沒吗嗎他她它给給看呢吧")
# "呢" (Cantonese "this") and "吧" are shared; they stay out of both lists' scores.
_SHARED = frozenset("呢吧")

# Written in colloquial Cantonese, so the model may write the particles it hears.
CANTONESE_PROMPT = "以下係廣東話嘅句子，佢哋喺度講緊嘢。"
CANTONESE_THRESHOLD = 0.0

MARKER_PIVOT = 0.5  # a marker written with higher probability than this counts for Cantonese
TONAL_WEIGHT = 0.5

_LATIN_WORD = re.compile(r"[A-Za-z][A-Za-z'\-]*")


@dataclass(frozen=True)
class DialectEvidence:
    cantonese: int
    mandarin: int
    characters: int

    @property
    def score(self) -> float:
        """Positive leans Cantonese, negative Mandarin; scaled by how much text there is."""
        if self.characters == 0:
            return 0.0
        return (self.cantonese - self.mandarin) / max(4, self.characters) * 10


def tonality(probabilities: dict[str, float]) -> float:
    """log10 P(vi) - log10 P(en) from the language detector: higher leans Cantonese."""
    floor = 1e-9
    return math.log10(max(probabilities.get("vi", 0.0), floor)) - math.log10(
        max(probabilities.get("en", 0.0), floor)
    )


def cantonese_score(words: list[tuple[str, float]], tonal_lean: float) -> float:
    """Evidence that a chunk decoded under the Cantonese prompt is Cantonese: > 0 means yes.

    `words` are (text, probability) pairs of that decode; `tonal_lean` is `tonality(...)`.
    """
    markers = sum(
        probability - MARKER_PIVOT
        for text, probability in words
        for char in text
        if char in CANTONESE_MARKERS
    )
    return markers + TONAL_WEIGHT * tonal_lean


@dataclass(frozen=True)
class DialectDecision:
    score: float
    cantonese: bool


def decide_dialect(words: list[tuple[str, float]], scores: dict[str, float]) -> DialectDecision:
    """Cantonese or Mandarin for one utterance decoded under the Cantonese prompt."""
    score = cantonese_score(words, tonality(scores))
    return DialectDecision(score, score > CANTONESE_THRESHOLD)


def dialect_evidence(text: str) -> DialectEvidence:
    chinese = [c for c in text if "\u3400" <= c <= "\u9fff"]
    cantonese = sum(1 for c in chinese if c in CANTONESE_MARKERS)
    mandarin = sum(1 for c in chinese if c in MANDARIN_MARKERS and c not in _SHARED)
    return DialectEvidence(cantonese, mandarin, len(chinese))


def restrict_language(
    probabilities: list[tuple[str, float]], candidates: tuple[str, ...]
) -> tuple[str, float]:
    """Best language among `candidates` (all, if empty), with its share of their probability.

    On models without a `yue` token, Cantonese is detected as `zh`: `yue` in the candidates lets
    `zh` through, and the Cantonese/Mandarin split comes after decoding.
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
