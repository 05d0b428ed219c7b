"""Meeting minutes as a clerk hands them in: Word (DOCX) and Markdown, from one content model.

`minutes_content` decides what the minutes say; `render_docx` and `render_markdown` only lay it
out, so the two files always carry the same content:

* a title block: the source file, the date the minutes were made, the recording's duration, the
  languages with their share of speech time, and the speakers with their talk time;
* the proceedings: one paragraph per speaker turn (consecutive segments of one speaker, as in the
  TXT minutes), headed ``[HH:MM:SS]`` and the speaker's name.

Text is the transcript's own: Cantonese is already in Hong Kong Traditional characters and
Mandarin in the chosen script, with code-switched English kept (`sanyu.transcribe.script`);
nothing is converted again here. Speaker names follow `sanyu.output.speakers`.

Talk time comes from the diarizer's turns when the transcript holds them (overlapped speech counts
for each speaker), else from the segments. In the DOCX every style names a Traditional Chinese
font for East Asian text and marks it zh-HK, so Word and LibreOffice pick a CJK font for Chinese
and the document's own font for English.
"""

from __future__ import annotations

import datetime as dt
import io
import re
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

from sanyu.output.clean import (
    clean_span,
    clock,
    one_line,
    paragraphs,
    speaker_display_names,
    speaker_order,
)
from sanyu.output.rttm import rttm_file_id
from sanyu.paths import base_name
from sanyu.schema import Transcript, join_texts

LANGUAGE_NAMES = {"yue": "Cantonese (粵語)", "zh": "Mandarin (普通話)", "en": "English"}
# East Asian font of every DOCX style: shipped with Windows and Office (Traditional Chinese);
# LibreOffice substitutes an installed CJK font (e.g. Noto Sans CJK TC) when it is absent.
EAST_ASIAN_FONT = "Microsoft JhengHei"
EAST_ASIAN_LANGUAGE = "zh-HK"
DOCX_MEDIA_TYPE = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"


@dataclass(frozen=True)
class LanguageShare:
    code: str
    name: str
    seconds: float
    share: float  # of all speech time


@dataclass(frozen=True)
class Attendee:
    label: str
    name: str
    seconds: float
    share: float  # of all speakers' talk time


@dataclass(frozen=True)
class Proceeding:
    start: float
    stamp: str  # HH:MM:SS
    speaker: str | None  # the name to show; None when the transcript has no speakers
    text: str


@dataclass(frozen=True)
class Minutes:
    title: str
    source: str
    date: str
    duration: str
    languages: list[LanguageShare]
    attendees: list[Attendee]
    proceedings: list[Proceeding]


def _hms(seconds: float) -> str:
    return clock(round(seconds))


def _languages(transcript: Transcript) -> list[LanguageShare]:
    speech: dict[str, float] = defaultdict(float)
    for segment in transcript.segments:
        if one_line(segment.text) and segment.language:
            start, end = clean_span(segment.start, segment.end)
            speech[segment.language] += end - start
    total = sum(speech.values())
    order = sorted(speech, key=lambda code: -speech[code])
    return [
        LanguageShare(code, LANGUAGE_NAMES.get(code, code), speech[code],
                      speech[code] / total if total else 0.0)
        for code in order
    ]


def _attendees(transcript: Transcript, names: dict[str, str]) -> list[Attendee]:
    talk: dict[str, float] = defaultdict(float)
    if transcript.turns:
        for turn in transcript.turns:
            start, end = clean_span(turn.start, turn.end)
            talk[turn.speaker] += end - start
    else:
        for segment in transcript.segments:
            if segment.speaker:
                start, end = clean_span(segment.start, segment.end)
                talk[segment.speaker] += end - start
    total = sum(talk.values())
    return [
        Attendee(label, names.get(label, label), talk.get(label, 0.0),
                 talk.get(label, 0.0) / total if total else 0.0)
        for label in speaker_order(transcript)
    ]


def minutes_content(
    transcript: Transcript, speaker_names: Sequence[str] = (), date: dt.date | None = None
) -> Minutes:
    """What the minutes of `transcript` say (see the module doc); `date` defaults to today."""
    names = speaker_display_names(transcript, speaker_names)
    segments = [segment for segment in transcript.segments if one_line(segment.text)]
    proceedings = []
    for paragraph in paragraphs(segments):
        start = clean_span(paragraph[0].start, paragraph[0].end)[0]
        label = paragraph[0].speaker
        proceedings.append(
            Proceeding(
                start, clock(start), names.get(label, label) if label else None,
                join_texts(one_line(segment.text) for segment in paragraph),
            )
        )
    source = base_name(transcript.source or "") or rttm_file_id("")
    return Minutes(
        title=f"Minutes: {source}",
        source=source,
        date=(date or dt.date.today()).isoformat(),
        duration=_hms(transcript.duration),
        languages=_languages(transcript),
        attendees=_attendees(transcript, names),
        proceedings=proceedings,
    )


def _percent(share: float) -> str:
    return f"{100 * share:.0f}%"


def _details(minutes: Minutes) -> list[tuple[str, str]]:
    languages = ", ".join(f"{lang.name} {_percent(lang.share)}" for lang in minutes.languages)
    return [
        ("Source file", minutes.source),
        ("Date", minutes.date),
        ("Duration", minutes.duration),
        ("Languages", languages or "-"),
        ("Speakers", str(len(minutes.attendees)) if minutes.attendees else "not identified"),
    ]


def _attendee_row(attendee: Attendee) -> tuple[str, str, str, str]:
    return attendee.name, attendee.label, _hms(attendee.seconds), _percent(attendee.share)


ATTENDEE_COLUMNS = ("Speaker", "Label", "Talk time", "Share")


# ---------------------------------------------------------------------------------------
# Markdown

_MD_SPECIAL = re.compile(r"([\\`*_\[\]<>|#~])")


def _md(text: str) -> str:
    return _MD_SPECIAL.sub(r"\\\1", one_line(text))


def render_markdown(
    transcript: Transcript, speaker_names: Sequence[str] = (), date: dt.date | None = None
) -> str:
    minutes = minutes_content(transcript, speaker_names, date)
    lines = [f"# {_md(minutes.title)}", "", "| | |", "| --- | --- |"]
    lines += [f"| {key} | {_md(value)} |" for key, value in _details(minutes)]
    if minutes.attendees:
        lines += ["", "## Speakers", "", "| " + " | ".join(ATTENDEE_COLUMNS) + " |",
                  "| --- | --- | ---: | ---: |"]
        lines += ["| " + " | ".join(_md(v) for v in _attendee_row(a)) + " |" for a in minutes.attendees]
    lines += ["", "## Proceedings", ""]
    for item in minutes.proceedings:
        head = f"[{item.stamp}] {item.speaker}:" if item.speaker else f"[{item.stamp}]"
        lines += [f"**{_md(head)}** {_md(item.text)}", ""]
    return "\n".join(lines).rstrip("\n") + "\n"


# ---------------------------------------------------------------------------------------
# DOCX


def _east_asian_fonts(document) -> None:
    """Name the East Asian font and language on every style that has run properties."""
    from docx.oxml.ns import qn

    for style in document.styles:
        element = getattr(style, "element", None)
        if element is None or not hasattr(style, "font"):
            continue
        rpr = element.get_or_add_rPr()
        fonts = rpr.find(qn("w:rFonts"))
        if fonts is None:
            fonts = rpr.makeelement(qn("w:rFonts"), {})
            rpr.append(fonts)
        fonts.set(qn("w:eastAsia"), EAST_ASIAN_FONT)
        for theme in ("w:eastAsiaTheme",):  # a theme font would win over the named one
            fonts.attrib.pop(qn(theme), None)
        lang = rpr.find(qn("w:lang"))
        if lang is None:
            lang = rpr.makeelement(qn("w:lang"), {})
            rpr.append(lang)
        lang.set(qn("w:eastAsia"), EAST_ASIAN_LANGUAGE)


def _table(document, rows: list[tuple[str, ...]], header: tuple[str, ...] | None = None):
    columns = len(header or rows[0])
    table = document.add_table(rows=0, cols=columns)
    table.style = "Table Grid"
    for index, values in enumerate(([header] if header else []) + rows):
        cells = table.add_row().cells
        for cell, value in zip(cells, values):
            cell.text = value
            if header and index == 0:
                for run in cell.paragraphs[0].runs:
                    run.bold = True
    return table


def render_docx(
    transcript: Transcript, speaker_names: Sequence[str] = (), date: dt.date | None = None
) -> bytes:
    from docx import Document

    minutes = minutes_content(transcript, speaker_names, date)
    document = Document()
    _east_asian_fonts(document)
    properties = document.core_properties
    properties.title = minutes.title
    properties.subject = minutes.source
    properties.author = "Sanyu"
    document.add_heading(minutes.title, level=0)
    details = _table(document, _details(minutes))
    for row in details.rows:
        for run in row.cells[0].paragraphs[0].runs:
            run.bold = True
    if minutes.attendees:
        document.add_heading("Speakers", level=1)
        _table(document, [_attendee_row(a) for a in minutes.attendees], ATTENDEE_COLUMNS)
    document.add_heading("Proceedings", level=1)
    for item in minutes.proceedings:
        paragraph = document.add_paragraph()
        head = f"[{item.stamp}] {item.speaker}: " if item.speaker else f"[{item.stamp}] "
        paragraph.add_run(head).bold = True
        paragraph.add_run(item.text)
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()
