"""Speaker names: which name each diarization label (SPEAKER_00, SPEAKER_01, …) is shown as.

Names come as a list of entries, from ``--speaker-names`` (comma-separated), a names file, or the
HTTP parameters. An entry ``LABEL=Name`` names that label (``SPEAKER_00=Chair``); any other entry
names the speaker at its position among the entries without a label, in the order
`sanyu.output.writers.speaker_order` gives (``Chair,Secretary`` names SPEAKER_00 and SPEAKER_01
in a usual transcript). A blank name leaves the label as it is.

A names file holds one entry per line; blank lines and lines starting with ``#`` are skipped, and
spaces around ``=`` do not matter (``SPEAKER_01 = 黃議員``).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable

from sanyu.errors import SanyuError

# A label is one token without spaces; "Dr. Chan = chair" is a name, not a label.
_LABELLED = re.compile(r"^\s*([^\s=]+)\s*=(.*)$", re.DOTALL)


def split_names(entries: Iterable[str]) -> tuple[dict[str, str], list[str]]:
    """(names by label, names by position) from speaker-name entries."""
    by_label: dict[str, str] = {}
    by_position: list[str] = []
    for entry in entries:
        match = _LABELLED.match(entry or "")
        if match:
            by_label[match.group(1)] = match.group(2).strip()
        else:
            by_position.append(entry or "")
    return by_label, by_position


def read_names_file(path: str | os.PathLike) -> tuple[str, ...]:
    """The speaker-name entries of a names file (see the module doc)."""
    try:
        with open(path, encoding="utf-8-sig") as handle:
            lines = handle.read().splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise SanyuError(f"{path}: cannot read the speaker names file ({exc})") from None
    entries = tuple(line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#"))
    for number, entry in enumerate(entries, start=1):
        if "=" not in entry:
            raise SanyuError(
                f"{path}: entry {number} ({entry!r}) is not LABEL=Name, e.g. SPEAKER_00=Chair"
            )
    return entries
