"""Words a baseline got right that a hypothesis lost: the check that no speech goes missing.

Two systems always differ somewhere; what must not happen is that a stretch of speech the
baseline transcribed correctly is simply absent from the hypothesis. So a stretch counts only
when its units (words for English, characters for Chinese, normalised as for scoring) match the
reference in the baseline's text and have no counterpart at all in the hypothesis.
"""

from __future__ import annotations

from difflib import SequenceMatcher

from sanyu.evaluation.text import CHARACTER_LANGUAGES, normalize


def units(text: str, language: str) -> list[str]:
    normalised = normalize(text, language)
    return list(normalised) if language in CHARACTER_LANGUAGES else normalised.split()


def _matched(a: list[str], b: list[str]) -> list[bool]:
    """For each unit of ``a``, whether the alignment with ``b`` pairs it with an equal unit."""
    flags = [False] * len(a)
    for block in SequenceMatcher(None, a, b, autojunk=False).get_matching_blocks():
        for i in range(block.a, block.a + block.size):
            flags[i] = True
    return flags


def _absent(a: list[str], b: list[str]) -> list[bool]:
    """For each unit of ``a``, whether the alignment with ``b`` deletes it (no counterpart)."""
    flags = [False] * len(a)
    for tag, i1, i2, j1, j2 in SequenceMatcher(None, a, b, autojunk=False).get_opcodes():
        if tag == "delete":
            flags[i1:i2] = [True] * (i2 - i1)
        elif tag == "replace" and (j2 - j1) * 3 < (i2 - i1):
            flags[i1:i2] = [True] * (i2 - i1)  # a long stretch against a token or two
    return flags


def missing_stretches(
    reference: str, baseline: str, hypothesis: str, language: str, min_units: int
) -> list[str]:
    """Runs of at least ``min_units`` units the baseline got right and the hypothesis lacks."""
    base = units(baseline, language)
    correct = _matched(base, units(reference, language))
    absent = _absent(base, units(hypothesis, language))
    runs, current = [], []
    for unit, lost in zip(base, (c and a for c, a in zip(correct, absent))):
        if lost:
            current.append(unit)
            continue
        if len(current) >= min_units:
            runs.append(current)
        current = []
    if len(current) >= min_units:
        runs.append(current)
    joiner = "" if language in CHARACTER_LANGUAGES else " "
    return [joiner.join(run) for run in runs]
