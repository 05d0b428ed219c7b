"""Language decisions: choosing among a meeting's languages, and Cantonese versus Mandarin.

Whisper base and small have no Cantonese token: both Cantonese and Mandarin speech are detected
as `zh`. Sanyu decides per chunk from evidence it can measure (see docs/language.md):

1. the model's acoustic language scores, restricted to the candidate languages;
2. a decode of every `zh` chunk under a Cantonese prompt, which lets the model write the
   colloquial characters it hears (嘅 咗 喺 唔 佢 ...); Mandarin speech keeps Mandarin-only
   function words (的 了 是 在 不 ...) even under that prompt;
3. where the markers disagree or are too few, a second decode under a neutral prompt, and the
   decode the model finds more probable wins.
"""

from __future__ import annotations

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


def dialect_evidence(text: str) -> DialectEvidence:
    chinese = [c for c in text if "\u3400" <= c <= "\u9fff"]
    cantonese = sum(1 for c in chinese if c in CANTONESE_MARKERS)
    mandarin = sum(1 for c in chinese if c in MANDARIN_MARKERS and c not in _SHARED)
    return DialectEvidence(cantonese, mandarin, len(chinese))


def restrict_language(
    probabilities: list[tuple[str, float]], candidates: tuple[str, ...]
) -> tuple[str, float]:
    """Best language among `candidates` (all, if empty), with its share of their probability.

    `yue` counts as `zh` for the acoustic choice: the Cantonese/Mandarin split comes after.
    """
    if not candidates:
        return probabilities[0]
    allowed = {"zh" if c == "yue" else c for c in candidates}
    scored = [(lang, p) for lang, p in probabilities if lang in allowed]
    if not scored:
        return probabilities[0]
    total = sum(p for _, p in scored) or 1.0
    lang, p = max(scored, key=lambda item: item[1])
    return lang, p / total


def is_latin_word(text: str) -> bool:
    return bool(_LATIN_WORD.fullmatch(text.strip().strip(".,!?;:\"'()")))
