"""Output formats by name: rendering a transcript into any of them, and writing the files.

Text formats (txt, srt, vtt, tsv, json, rttm from `sanyu.output.writers`; md minutes from
`sanyu.output.minutes`) render to ``str``; docx minutes to ``bytes``. `render_bytes` gives any
format as the bytes of its file (text as UTF-8), which is what every writer of files uses.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence

from sanyu.output.minutes import render_docx, render_markdown
from sanyu.output.writers import (
    render_json,
    render_rttm,
    render_srt,
    render_tsv,
    render_txt,
    render_vtt,
)
from sanyu.schema import Transcript

_TEXT = {
    "txt": render_txt,
    "srt": render_srt,
    "vtt": render_vtt,
    "tsv": render_tsv,
    "json": render_json,
    "rttm": render_rttm,
    "md": render_markdown,
}
_BINARY = {"docx": render_docx}
FORMATS = (*_TEXT, *_BINARY)


def _key(fmt: str) -> str:
    key = fmt.strip().lower().lstrip(".")
    if key not in FORMATS:
        raise ValueError(f"unknown output format {fmt!r}: choose from {', '.join(FORMATS)}")
    return key


def render(transcript: Transcript, fmt: str, speaker_names: Sequence[str] = ()) -> str:
    """The transcript in one of the text formats."""
    key = _key(fmt)
    if key in _BINARY:
        raise ValueError(f"{key} is a binary format: use render_bytes")
    return _TEXT[key](transcript, tuple(speaker_names))


def render_bytes(transcript: Transcript, fmt: str, speaker_names: Sequence[str] = ()) -> bytes:
    """The transcript in any of FORMATS, as the bytes of its file."""
    key = _key(fmt)
    if key in _BINARY:
        return _BINARY[key](transcript, tuple(speaker_names))
    return _TEXT[key](transcript, tuple(speaker_names)).encode("utf-8")


def parse_formats(formats: str | Iterable[str]) -> list[str]:
    """Format names from a comma-separated string or a list: lower case, no dots, each once;
    ValueError naming an unknown one."""
    if isinstance(formats, str):
        formats = formats.split(",")
    return list(dict.fromkeys(_key(fmt) for fmt in formats if fmt.strip()))


def write_outputs(
    transcript: Transcript,
    directory: str | os.PathLike,
    stem: str,
    formats: str | Iterable[str],
    speaker_names: Sequence[str] = (),
) -> list[str]:
    """Write ``<directory>/<stem>.<fmt>`` for each format; return the paths written.

    ``directory`` is a local path (created when missing) or an fsspec URL such as
    ``s3://bucket/prefix``. Every format is rendered before anything is written. A local
    file appears whole (`sanyu.pipeline.storage.Storage.put`: a temporary file beside it,
    renamed over the old one); an object-store put is whole by itself. Local paths come back
    absolute; others as URLs with their protocol.
    """
    from sanyu.pipeline.storage import Storage

    if not stem or stem in (".", "..") or any(c in stem for c in "/\\\0"):
        raise ValueError(f"output stem must be a plain file name, not {stem!r}")
    rendered = [(fmt, render_bytes(transcript, fmt, speaker_names)) for fmt in parse_formats(formats)]
    if not rendered:
        return []
    storage = Storage(directory)
    return [storage.put(f"{stem}.{fmt}", data) for fmt, data in rendered]
