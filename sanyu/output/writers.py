"""Transcript writers: TXT minutes, SRT, WebVTT, TSV, JSON and RTTM (`sanyu.output.formats` maps
format names to them; DOCX and Markdown minutes are in `sanyu.output.minutes`).

Decisions every format shares:

* Times are cleaned before they are written: a non-finite or negative time becomes 0 and a
  segment whose end lies before its start has the two swapped, so no output carries a
  negative time or a reversed span.
* Segments whose text is blank are left out of every format but JSON (which is the
  transcript itself, written by :meth:`Transcript.to_json`).
* Speaker names: ``speaker_names[i]`` names the i-th speaker label, in the order of the
  transcript's ``speakers`` list, then any label found only on segments in label-number
  order (``SPEAKER_2`` before ``SPEAKER_10``); so with the usual ``speakers`` list
  ``SPEAKER_00`` gets the first name. A label without a (non-blank) name keeps its label.
  Names are used in the formats people read (TXT, SRT, VTT, TSV); the machine formats keep
  the labels (JSON is the transcript as is; RTTM feeds scoring tools).
* SRT and VTT show the speaker the same way, as a plain ``[Name] `` prefix on the first line
  of every cue (not a VTT ``<v Name>`` voice tag, which browsers do not display).
* Subtitle cues hold at most two lines of at most 42 columns (a CJK or other full-width
  character counts two); a segment too long for one cue is split into several, timed by its
  word timestamps when its words can be matched to its text, otherwise by interpolating
  over its characters. The text is never rewritten: only line breaks go where a space or
  the seam between two CJK characters was. Cues are then ordered by start and overlaps
  trimmed, so every cue ends after it starts and before the next one begins (each keeps
  at least ``MIN_CUE_SECONDS`` on screen).
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

from sanyu.output.speakers import split_names
from sanyu.schema import Segment, SpeakerTurn, Transcript, join_texts

MAX_LINE_WIDTH = 42  # columns per subtitle line; a full-width character takes two
MAX_CUE_LINES = 2
MIN_CUE_SECONDS = 0.25  # a cue squeezed by its neighbours still shows this long
TXT_PARAGRAPH_PAUSE = 2.0  # seconds of silence that start a new paragraph (no speakers)
TXT_PARAGRAPH_SEGMENTS = 5  # at most this many segments per paragraph (no speakers)
RTTM_MERGE_GAP = 0.5  # same-speaker segments closer than this become one RTTM turn
TSV_HEADER = "start\tend\tspeaker\tlanguage\ttext"

# Characters that end a line of text in some reader (str.splitlines breaks on all of them).
_LINE_BREAKS = re.compile(r"[\t\n\r\v\f\x1c-\x1e\x85\u2028\u2029]+")
_RUN_OF_SPACES = re.compile(r"[ \t\n\r\v\f\x1c-\x1e\x85\u2028\u2029]+")
# Punctuation that must not start a line (it stays with the character before it).
_NO_BREAK_BEFORE = set("，。、！？：；」』）》〉】〕｝］,.!?:;)]}%…‧·～")
# Punctuation that must not end a line (it stays with the character after it).
_NO_BREAK_AFTER = set("「『（《〈【〔｛［([{")
# How many columns of imbalance a line or cue break is worth after this punctuation.
_BREAK_BONUS = {**dict.fromkeys("。！？.!?…", 30), **dict.fromkeys("，、,;；:：", 20)}


# ---------------------------------------------------------------------------------------
# Small helpers


def _seconds(value: float | None) -> float:
    try:
        value = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return 0.0
    if not math.isfinite(value) or value < 0:
        return 0.0
    return value


def _span(start: float | None, end: float | None) -> tuple[float, float]:
    """A clean (start, end): never negative nor non-finite, and start <= end (a reversed
    span is swapped; a missing or non-finite end becomes the start)."""
    s = _seconds(start)
    try:
        e = float(end)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        e = s
    e = s if not math.isfinite(e) else max(e, 0.0)
    return (e, s) if e < s else (s, e)


def _ms(seconds: float) -> int:
    return int(round(_seconds(seconds) * 1000))


def format_timestamp(seconds: float, decimal_marker: str = ",") -> str:
    """``HH:MM:SS,mmm`` (SRT) or, with ``decimal_marker="."``, ``HH:MM:SS.mmm`` (VTT)."""
    ms = _ms(seconds)
    hours, ms = divmod(ms, 3_600_000)
    minutes, ms = divmod(ms, 60_000)
    secs, ms = divmod(ms, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}{decimal_marker}{ms:03d}"


def _clock(seconds: float) -> str:
    """``HH:MM:SS``, rounded down: the second a paragraph starts in."""
    whole = int(_seconds(seconds))
    hours, whole = divmod(whole, 3600)
    minutes, secs = divmod(whole, 60)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}"


def _one_line(text: str) -> str:
    """Text on one line: every run of whitespace that includes a line break becomes a space."""
    return _RUN_OF_SPACES.sub(" ", text or "").strip()


def _char_width(char: str) -> int:
    if unicodedata.combining(char) or unicodedata.category(char) in ("Mn", "Me", "Cf"):
        return 0
    return 2 if unicodedata.east_asian_width(char) in ("W", "F") else 1


def text_width(text: str) -> int:
    """Display columns of ``text``: two for each CJK or other full-width character."""
    return sum(_char_width(char) for char in text)


def _is_wide(char: str) -> bool:
    return unicodedata.east_asian_width(char) in ("W", "F")


def _natural_key(label: str) -> tuple:
    return tuple(int(part) if part.isdigit() else part for part in re.split(r"(\d+)", label))


# ---------------------------------------------------------------------------------------
# Speakers


def speaker_order(transcript: Transcript) -> list[str]:
    """Speaker labels in the order ``speaker_names`` names them: the transcript's ``speakers``,
    then labels found only on segments, then labels found only in the diarizer's turns."""
    labels = [label for label in dict.fromkeys(transcript.speakers) if label]
    known = set(labels)
    extra = {seg.speaker for seg in transcript.segments if seg.speaker and seg.speaker not in known}
    labels += sorted(extra, key=_natural_key)
    known |= extra
    silent = {turn.speaker for turn in transcript.turns if turn.speaker not in known}
    return labels + sorted(silent, key=_natural_key)


def speaker_display_names(transcript: Transcript, speaker_names: Sequence[str] = ()) -> dict[str, str]:
    """Label -> the name to show; labels without a (non-blank) name map to themselves.
    ``LABEL=Name`` entries name a label, others go by position (`sanyu.output.speakers`)."""
    by_label, by_position = split_names(speaker_names)
    names: dict[str, str] = {}
    for index, label in enumerate(speaker_order(transcript)):
        name = by_position[index] if index < len(by_position) else ""
        name = _one_line(by_label.get(label, name))
        names[label] = name or label
    return names


# ---------------------------------------------------------------------------------------
# Subtitle cues


@dataclass
class _Unit:
    """A piece of text no line break may enter; ``text`` keeps the space before it."""

    text: str
    start: float
    end: float

    @property
    def lead(self) -> int:
        return len(self.text) - len(self.text.lstrip(" "))


@dataclass
class _Cue:
    start: float
    end: float
    lines: list[str]
    prefix: str  # "[Name] " or ""


def _tokenize(text: str) -> list[tuple[int, int]]:
    """(start, end) offsets of the unbreakable pieces of ``text``, each with its leading space.

    A run of non-space, non-wide characters (an English word with its punctuation) is one
    piece; a wide (CJK) character is one piece with any closing punctuation after it, and
    an opening bracket joins the piece that follows it.
    """
    pieces: list[tuple[int, int]] = []
    i, n = 0, len(text)
    while i < n:
        start = i
        while i < n and text[i] == " ":
            i += 1
        if i >= n:
            break
        if _is_wide(text[i]):
            i += 1
        else:
            while i < n and text[i] != " " and not _is_wide(text[i]):
                i += 1
        while i < n and text[i] in _NO_BREAK_BEFORE:
            i += 1
        pieces.append((start, i))
    merged: list[tuple[int, int]] = []
    carry: int | None = None
    for start, end in pieces:
        if carry is not None:
            start, carry = carry, None
        if text[start:end].strip() and all(c in _NO_BREAK_AFTER for c in text[start:end].strip()):
            carry = start
            continue
        merged.append((start, end))
    if carry is not None:
        if merged:
            merged[-1] = (merged[-1][0], n)
        else:
            merged.append((carry, n))
    return merged


def _word_units(segment: Segment, text: str, start: float, end: float) -> list[_Unit] | None:
    """Units ending where each word ends, timed by the words; None when words and text differ.

    Each word is looked for in the text in order; only spaces and punctuation may lie
    between two words (more means the text was rewritten after alignment).
    """
    found_words: list[tuple[int, int, float, float]] = []  # (begin, end offset, start, end)
    pos = 0
    for word in segment.words:
        piece = _one_line(word.text)
        if not piece:
            continue
        found = text.find(piece, pos)
        if found < 0 or any(c.isalnum() for c in text[pos:found]):
            return None
        w_start, w_end = _span(word.start, word.end)
        w_start = min(max(w_start, start), end)
        if found_words:  # keep word times in order
            w_start = max(w_start, found_words[-1][3])
        w_end = min(max(w_end, w_start), end)
        pos = found + len(piece)
        found_words.append((found, pos, w_start, w_end))
    if not found_words or any(c.isalnum() for c in text[pos:]):
        return None
    units: list[_Unit] = []
    begin = 0
    for index, (_, stop, w_start, w_end) in enumerate(found_words):
        if index == len(found_words) - 1:
            stop = len(text)
        else:  # punctuation right after a word stays with it ("Hello," | " world")
            following = found_words[index + 1][0]
            while stop < following and text[stop] != " " and text[stop] not in _NO_BREAK_AFTER:
                stop += 1
        piece = text[begin:stop]
        # No break before closing punctuation nor after an opening bracket.
        if units and (
            piece.lstrip(" ")[:1] in _NO_BREAK_BEFORE or units[-1].text.rstrip()[-1:] in _NO_BREAK_AFTER
        ):
            units[-1] = _Unit(units[-1].text + piece, units[-1].start, w_end)
        else:
            units.append(_Unit(piece, w_start, w_end))
        begin = stop
    return units


def _interpolated_units(text: str, start: float, end: float) -> list[_Unit]:
    """Units timed by spreading the segment's span evenly over its characters."""
    length = max(len(text), 1)
    duration = end - start
    return [
        _Unit(
            text[a:b],
            start + duration * (a + (len(text[a:b]) - len(text[a:b].lstrip(" ")))) / length,
            start + duration * b / length,
        )
        for a, b in _tokenize(text)
    ]


def _joined(units: Sequence[_Unit]) -> str:
    return "".join(unit.text for unit in units).strip()


def _layout(units: Sequence[_Unit], prefix_width: int) -> list[str] | None:
    """The cue's lines when ``units`` fit in MAX_CUE_LINES lines, else None.

    One line when the text fits on one; otherwise two lines as even as possible.
    """
    widths = [text_width(unit.text) for unit in units]
    leads = [unit.lead for unit in units]
    total = sum(widths) - leads[0]
    if prefix_width + total <= MAX_LINE_WIDTH:
        return [_joined(units)]
    best: tuple[int, int, int] | None = None  # (imbalance less bonus, -bonus, break index)
    first = prefix_width - leads[0]
    for k in range(1, len(units)):
        first += widths[k - 1]
        second = total - (first - prefix_width) - leads[k]
        if first <= MAX_LINE_WIDTH and second <= MAX_LINE_WIDTH:
            bonus = _BREAK_BONUS.get(units[k - 1].text[-1:], 0)
            candidate = (abs(first - second) - bonus, -bonus, k)
            if best is None or candidate < best:
                best = candidate
    if best is None:
        return None
    k = best[2]
    return [_joined(units[:k]), _joined(units[k:])]


def _split_units(units: list[_Unit], prefix_width: int) -> list[list[_Unit]]:
    """Fewest cues that each fit, as even as possible, preferring breaks after punctuation.

    Dynamic programming over break points; the cost of a cue is its free room squared
    less a bonus when it ends at punctuation. Fitting is decided from running sums of
    widths, so a segment of thousands of words takes milliseconds.
    """
    n = len(units)
    cum = [0]  # cum[i]: columns of units[:i], leading spaces included
    for unit in units:
        cum.append(cum[-1] + text_width(unit.text))
    lead = [unit.lead for unit in units] + [0]
    capacity = MAX_CUE_LINES * MAX_LINE_WIDTH - prefix_width
    # best[j]: (cue count, cost, start of the last cue) for units[:j]
    best: list[tuple[int, float, int] | None] = [None] * (n + 1)
    best[0] = (0, 0.0, 0)
    for i in range(n):
        if best[i] is None:
            continue
        count, cost, _ = best[i]  # type: ignore[misc]
        # Second lines may start at k in (i, k_max]: the first line units[i:k] fits.
        reach = -1  # the most columns a first line can take: max of cum[k] + lead[k]
        k = i + 1
        while k < n and prefix_width + cum[k] - cum[i] - lead[i] <= MAX_LINE_WIDTH:
            reach = max(reach, cum[k] + lead[k])
            k += 1
        for j in range(i + 1, n + 1):
            width = cum[j] - cum[i] - lead[i]
            one_line = prefix_width + width <= MAX_LINE_WIDTH
            two_lines = reach >= 0 and cum[j] - reach <= MAX_LINE_WIDTH
            if j > i + 1 and not (one_line or two_lines):
                break  # adding units never makes a cue fit again
            slack = capacity - width
            bonus = _BREAK_BONUS.get(units[j - 1].text[-1:], 0)
            candidate = (count + 1, cost + slack * slack - 3 * bonus * bonus, i)
            if best[j] is None or candidate[:2] < best[j][:2]:  # type: ignore[index]
                best[j] = candidate
    chunks: list[list[_Unit]] = []
    j = n
    while j > 0:
        i = best[j][2]  # type: ignore[index]
        chunks.append(units[i:j])
        j = i
    return chunks[::-1]


def _segment_cues(segment: Segment, prefix: str) -> list[_Cue]:
    text = _one_line(segment.text)
    if not text:
        return []
    start, end = _span(segment.start, segment.end)
    prefix_width = min(text_width(prefix), MAX_LINE_WIDTH // 2)
    units = _word_units(segment, text, start, end) if segment.words else None
    if units is None:
        units = _interpolated_units(text, start, end)
    lines = _layout(units, prefix_width)
    if lines is not None:
        return [_Cue(start, end, lines, prefix)]
    chunks = _split_units(units, prefix_width)
    cues = []
    for index, chunk in enumerate(chunks):
        c_start = start if index == 0 else chunk[0].start
        c_end = end if index == len(chunks) - 1 else chunk[-1].end
        lines = _layout(chunk, prefix_width) or [_joined(chunk)]  # an over-long single word
        cues.append(_Cue(c_start, max(c_end, c_start), lines, prefix))
    return cues


def _fix_times(cues: list[_Cue]) -> list[_Cue]:
    """Order cues by start and remove overlaps; each keeps at least MIN_CUE_SECONDS."""
    cues = sorted(cues, key=lambda cue: (cue.start, cue.end))
    previous: _Cue | None = None
    for cue in cues:
        if previous is not None and cue.start < previous.end:
            previous.end = min(previous.end, max(cue.start, previous.start + MIN_CUE_SECONDS))
            cue.start = max(cue.start, previous.end)
        cue.end = max(cue.end, cue.start + MIN_CUE_SECONDS)
        previous = cue
    # Times are written in whole milliseconds: make the rounded times keep the same order.
    for cue in cues:
        cue.start, cue.end = _ms(cue.start) / 1000, _ms(cue.end) / 1000
    return cues


def _subtitle_cues(transcript: Transcript, speaker_names: Sequence[str] = ()) -> list[_Cue]:
    names = speaker_display_names(transcript, speaker_names)
    cues: list[_Cue] = []
    for segment in transcript.segments:
        prefix = f"[{names.get(segment.speaker, segment.speaker)}] " if segment.speaker else ""
        cues.extend(_segment_cues(segment, prefix))
    return _fix_times(cues)


def _escape_vtt(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def render_srt(transcript: Transcript, speaker_names: Sequence[str] = ()) -> str:
    blocks = []
    for index, cue in enumerate(_subtitle_cues(transcript, speaker_names), start=1):
        text = "\n".join([cue.prefix + cue.lines[0], *cue.lines[1:]])
        times = f"{format_timestamp(cue.start)} --> {format_timestamp(cue.end)}"
        blocks.append(f"{index}\n{times}\n{text}\n")
    return "\n".join(blocks)


def render_vtt(transcript: Transcript, speaker_names: Sequence[str] = ()) -> str:
    out = "WEBVTT\n"
    for cue in _subtitle_cues(transcript, speaker_names):
        lines = [_escape_vtt(cue.prefix + cue.lines[0]), *(_escape_vtt(line) for line in cue.lines[1:])]
        times = f"{format_timestamp(cue.start, '.')} --> {format_timestamp(cue.end, '.')}"
        out += f"\n{times}\n" + "\n".join(lines) + "\n"
    return out


# ---------------------------------------------------------------------------------------
# TXT minutes


def _paragraphs(segments: Sequence[Segment]) -> list[list[Segment]]:
    paragraphs: list[list[Segment]] = []
    for segment in segments:
        last = paragraphs[-1] if paragraphs else None
        if last is not None and segment.speaker == last[-1].speaker:
            if segment.speaker:  # a speaker's turn is one paragraph however long
                last.append(segment)
                continue
            pause = _span(segment.start, segment.end)[0] - _span(last[-1].start, last[-1].end)[1]
            if pause <= TXT_PARAGRAPH_PAUSE and len(last) < TXT_PARAGRAPH_SEGMENTS:
                last.append(segment)
                continue
        paragraphs.append([segment])
    return paragraphs


def render_txt(transcript: Transcript, speaker_names: Sequence[str] = ()) -> str:
    """Minutes: one paragraph per speaker turn, headed ``[HH:MM:SS] Name:``.

    Consecutive segments of one speaker make one paragraph. Segments without a speaker
    make paragraphs of at most TXT_PARAGRAPH_SEGMENTS segments, broken at pauses longer
    than TXT_PARAGRAPH_PAUSE, written ``[HH:MM:SS] text`` on one line. A blank line
    separates paragraphs.
    """
    names = speaker_display_names(transcript, speaker_names)
    segments = [seg for seg in transcript.segments if _one_line(seg.text)]
    out = []
    for paragraph in _paragraphs(segments):
        text = join_texts(_one_line(seg.text) for seg in paragraph)
        stamp = _clock(_span(paragraph[0].start, paragraph[0].end)[0])
        speaker = paragraph[0].speaker
        if speaker:
            out.append(f"[{stamp}] {names.get(speaker, speaker)}:\n{text}\n")
        else:
            out.append(f"[{stamp}] {text}\n")
    return "\n".join(out)


# ---------------------------------------------------------------------------------------
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
        start, end = _span(seg.start, seg.end)
        speaker = names.get(seg.speaker, seg.speaker) if seg.speaker else ""
        fields = (f"{start:.3f}", f"{end:.3f}", _tsv_field(speaker), _tsv_field(seg.language), text)
        rows.append("\t".join(fields))
    return "\n".join(rows) + "\n"


def render_json(transcript: Transcript, speaker_names: Sequence[str] = ()) -> str:
    """The transcript itself (speaker labels, not names): it reads back with from_json."""
    return transcript.to_json() + "\n"


# ---------------------------------------------------------------------------------------
# RTTM


def rttm_file_id(source: str) -> str:
    """The RTTM file id of a transcript's source: its file name less the extension."""
    path = urlsplit(source).path if "://" in (source or "") else (source or "")
    name = path.replace("\\", "/").rstrip("/").rsplit("/", 1)[-1]
    stem = name.rsplit(".", 1)[0] if "." in name.lstrip(".") else name
    stem = re.sub(r"\s+", "_", stem.strip())
    return stem or "audio"


def _rttm_token(text: str) -> str:
    return re.sub(r"\s+", "_", text.strip()) or "NA"


def render_rttm_turns(turns: Iterable[SpeakerTurn], file_id: str) -> str:
    """One ``SPEAKER`` line per turn of positive length, in order of start."""
    file_id = _rttm_token(file_id)
    lines = []
    for turn in sorted(turns, key=lambda t: _span(t.start, t.end)):
        start, end = _span(turn.start, turn.end)
        duration = _ms(end) - _ms(start)
        if duration <= 0:
            continue
        lines.append(
            f"SPEAKER {file_id} 1 {_ms(start) / 1000:.3f} {duration / 1000:.3f} "
            f"<NA> <NA> {_rttm_token(turn.speaker)} <NA> <NA>"
        )
    return "".join(line + "\n" for line in lines)


def transcript_turns(transcript: Transcript) -> list[SpeakerTurn]:
    """Speaker turns of the labelled segments; adjacent ones of one speaker merged."""
    turns: list[SpeakerTurn] = []
    previous: Segment | None = None
    for seg in transcript.segments:
        if not _one_line(seg.text):
            continue
        start, end = _span(seg.start, seg.end)
        if seg.speaker:
            last = turns[-1] if turns else None
            if (
                last is not None
                and previous is not None
                and previous.speaker == seg.speaker
                and start - last.end <= RTTM_MERGE_GAP
            ):
                turns[-1] = SpeakerTurn(last.start, max(last.end, end), seg.speaker)
            else:
                turns.append(SpeakerTurn(start, end, seg.speaker))
        previous = seg
    return turns


def render_rttm(transcript: Transcript, speaker_names: Sequence[str] = ()) -> str:
    """The diarizer's own turns (overlaps included) when the transcript holds them; for a
    transcript stored before it did (schema version 1), turns rebuilt from its segments."""
    turns = transcript.turns or transcript_turns(transcript)
    return render_rttm_turns(turns, rttm_file_id(transcript.source))


def parse_rttm(text: str, file_id: str | None = None) -> list[SpeakerTurn]:
    """The ``SPEAKER`` turns of an RTTM text (only those of ``file_id`` when given)."""
    turns = []
    for number, line in enumerate(text.splitlines(), start=1):
        fields = line.split()
        if not fields or fields[0].startswith("#") or fields[0] != "SPEAKER":
            continue
        if len(fields) < 8:
            raise ValueError(f"RTTM line {number}: expected at least 8 fields: {line!r}")
        if file_id is not None and fields[1] != file_id:
            continue
        try:
            start, duration = float(fields[3]), float(fields[4])
        except ValueError:
            raise ValueError(f"RTTM line {number}: bad start or duration: {line!r}") from None
        if not (math.isfinite(start) and math.isfinite(duration)) or start < 0 or duration < 0:
            raise ValueError(f"RTTM line {number}: bad start or duration: {line!r}")
        turns.append(SpeakerTurn(start, round(start + duration, 6), fields[7]))
    return turns
