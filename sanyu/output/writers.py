"""Transcript formats: TXT minutes, SRT, WebVTT, TSV, JSON, RTTM, Markdown and DOCX minutes,
and writing them.

`FORMATS` is the registry: a format is a name and a function from a transcript (and speaker
names) to text or bytes (DOCX); ``-f all`` means every registered format. Decisions every
format shares are in `sanyu.output.clean` (times, speaker names, paragraphs); subtitles in
`sanyu.output.subtitles`, RTTM in `sanyu.output.rttm`, the Markdown and DOCX minutes in
`sanyu.output.minutes`.

* Segments whose text is blank are left out of every format but JSON (which is the
  transcript itself, written by :meth:`Transcript.to_json`).
* Names are used in the formats people read (TXT, SRT, VTT, TSV); the machine formats keep
  the labels (JSON is the transcript as is; RTTM feeds scoring tools).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable, Sequence

from sanyu.location import Location
from sanyu.output.clean import clean_span, clock, one_line, paragraphs, speaker_display_names
from sanyu.output.minutes import render_docx, render_markdown
from sanyu.output.rttm import render_rttm
from sanyu.output.subtitles import render_srt, render_vtt
from sanyu.schema import Transcript, join_texts

TSV_HEADER = "start\tend\tspeaker\tlanguage\ttext"
# Characters that end a line of text in some reader (str.splitlines breaks on all of them).
_LINE_BREAKS = re.compile(r"[\t\n\r\v\f\x1c-\x1e\x85\u2028\u2029]+")

Renderer = Callable[[Transcript, Sequence[str]], "str | bytes"]
ALL = "all"  # in a format list: every registered format


# TXT minutes


def render_txt(transcript: Transcript, speaker_names: Sequence[str] = ()) -> str:
    """Minutes: one paragraph per speaker turn, headed ``[HH:MM:SS] Name:``.

    Paragraphs as `sanyu.output.clean.paragraphs` groups them; one without a speaker is
    written ``[HH:MM:SS] text`` on one line. A blank line separates paragraphs.
    """
    names = speaker_display_names(transcript, speaker_names)
    segments = [seg for seg in transcript.segments if one_line(seg.text)]
    out = []
    for paragraph in paragraphs(segments):
        text = join_texts(one_line(seg.text) for seg in paragraph)
        stamp = clock(clean_span(paragraph[0].start, paragraph[0].end)[0])
        speaker = paragraph[0].speaker
        if speaker:
            out.append(f"[{stamp}] {names.get(speaker, speaker)}:\n{text}\n")
        else:
            out.append(f"[{stamp}] {text}\n")
    return "\n".join(out)


# TSV and JSON


def _tsv_field(text: str | None) -> str:
    return _LINE_BREAKS.sub(" ", text or "").strip()


def render_tsv(transcript: Transcript, speaker_names: Sequence[str] = ()) -> str:
    """``start end speaker language text`` rows, times in seconds with 3 decimals."""
    names = speaker_display_names(transcript, speaker_names)
    rows = [TSV_HEADER]
    for seg in transcript.segments:
        text = _tsv_field(seg.text)
        if not text:
            continue
        start, end = clean_span(seg.start, seg.end)
        speaker = names.get(seg.speaker, seg.speaker) if seg.speaker else ""
        fields = (f"{start:.3f}", f"{end:.3f}", _tsv_field(speaker), _tsv_field(seg.language), text)
        rows.append("\t".join(fields))
    return "\n".join(rows) + "\n"


def render_json(transcript: Transcript, speaker_names: Sequence[str] = ()) -> str:
    """The transcript itself (speaker labels, not names): it reads back with from_json."""
    return transcript.to_json() + "\n"


# Registry


RENDERERS: dict[str, Renderer] = {
    "txt": render_txt,
    "srt": render_srt,
    "vtt": render_vtt,
    "tsv": render_tsv,
    "json": render_json,
    "rttm": render_rttm,
    "md": render_markdown,
    "docx": render_docx,
}
FORMATS = tuple(RENDERERS)


def _unknown(fmt: str) -> ValueError:
    return ValueError(f"unknown output format {fmt!r}: choose from {', '.join(FORMATS)} or {ALL}")


def render(transcript: Transcript, fmt: str, speaker_names: Sequence[str] = ()) -> str | bytes:
    """The transcript in one of FORMATS: text, or bytes for a binary format."""
    key = fmt.lower().lstrip(".")
    if key not in RENDERERS:
        raise _unknown(fmt)
    return RENDERERS[key](transcript, tuple(speaker_names))


def render_file(transcript: Transcript, fmt: str, speaker_names: Sequence[str] = ()) -> bytes:
    """The bytes of the transcript's file in one of FORMATS (text is UTF-8)."""
    rendered = render(transcript, fmt, speaker_names)
    return rendered if isinstance(rendered, bytes) else rendered.encode("utf-8")


def parse_formats(formats: str | Iterable[str]) -> list[str]:
    """Format names from a comma-separated string or a list: lower case, no dots, each once,
    ``all`` for every registered format; ValueError naming an unknown one."""
    if isinstance(formats, str):
        formats = formats.split(",")
    wanted: list[str] = []
    for fmt in (f.strip().lower().lstrip(".") for f in formats if f.strip()):
        if fmt == ALL:
            wanted += FORMATS
        elif fmt in RENDERERS:
            wanted.append(fmt)
        else:
            raise _unknown(fmt)
    return list(dict.fromkeys(wanted))


def write_outputs(
    transcript: Transcript,
    directory: str | os.PathLike,
    stem: str,
    formats: str | Iterable[str],
    speaker_names: Sequence[str] = (),
    storage_options: dict | None = None,
) -> list[str]:
    """Write ``<directory>/<stem>.<fmt>`` for each format; return the paths written.

    ``directory`` is a local path (created when missing) or an fsspec URL such as
    ``s3://bucket/prefix`` (``storage_options``: fsspec's, e.g. an S3 endpoint and keys).
    Every format is rendered before anything is written, and each file appears whole
    (`sanyu.location.Location.put`). Local paths come back absolute;
    others as URLs with their protocol.
    """
    if not stem or stem in (".", "..") or any(c in stem for c in "/\\\0"):
        raise ValueError(f"output stem must be a plain file name, not {stem!r}")
    rendered = [(fmt, render_file(transcript, fmt, speaker_names)) for fmt in parse_formats(formats)]
    if not rendered:
        return []
    location = Location(directory, storage_options)
    return [location.put(f"{stem}.{fmt}", data) for fmt, data in rendered]
