"""A fixed two-fold split of the clips (FOLDS.tsv: `file`, `fold`), for choosing settings on one
fold and reporting them on the other."""

from __future__ import annotations

import csv
from pathlib import Path

from sanyu.evaluation.dataset import Clip


def read_folds(path: str | Path) -> dict[str, str]:
    """Clip path (relative to the clips' root) -> fold name."""
    with open(path, newline="", encoding="utf-8") as handle:
        return {row["file"]: row["fold"] for row in csv.DictReader(handle, delimiter="\t")}


def split(clips: list[Clip], folds: dict[str, str]) -> dict[str, list[Clip]]:
    """Clips by fold, in the folds' order of appearance; clips the split does not name are left
    out."""
    out: dict[str, list[Clip]] = {}
    for fold in dict.fromkeys(folds.values()):
        out[fold] = [c for c in clips if folds.get(c.relative) == fold]
    return out

