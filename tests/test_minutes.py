"""DOCX and Markdown minutes, speaker names, and transcripts that keep the diarizer's turns (fast:
no models; the real meetings are in test_diarized_outputs.py, test_serve.py and test_batch.py)."""

from __future__ import annotations

import datetime as dt
import io
import json
import zipfile

import docx
import pytest
from docx.oxml.ns import qn

from sanyu.errors import SanyuError
from sanyu.output import parse_rttm, render, render_file, speaker_display_names
from sanyu.output.minutes import EAST_ASIAN_FONT, minutes_content
from sanyu.output.speakers import read_names_file, split_names
from sanyu.schema import SCHEMA_VERSION, Segment, SpeakerTurn, Transcript

DAY = dt.date(2026, 3, 14)


def council() -> Transcript:
    """A Cantonese meeting with Mandarin and English, two people talking over each other at 10 s,
    and a third whom the diarizer heard but who has no words in the transcript."""
    return Transcript(
        source="s3://bucket/meetings/財務委員會.m4a",
        duration=3725.0,
        segments=[
            Segment(0.0, 4.0, "各位委員，早晨。", "yue", speaker="SPEAKER_00"),
            Segment(4.0, 9.0, "我哋今日討論 budget 嘅問題。", "yue", speaker="SPEAKER_00"),
            Segment(10.0, 14.0, "谢谢主席，我想问一个问题。", "zh", speaker="SPEAKER_01"),
            Segment(14.5, 16.5, "Thank you, Chairman.", "en", speaker="SPEAKER_01"),
            Segment(3661.0, 3665.0, "好，*散會*。", "yue", speaker="SPEAKER_00"),
        ],
        languages=["yue", "zh", "en"],
        speakers=["SPEAKER_00", "SPEAKER_01"],
        turns=[
            SpeakerTurn(0.0, 10.5, "SPEAKER_00"),
            SpeakerTurn(10.0, 16.5, "SPEAKER_01"),
            SpeakerTurn(20.0, 21.0, "SPEAKER_02"),
            SpeakerTurn(3661.0, 3665.0, "SPEAKER_00"),
        ],
    )


NAMES = ("SPEAKER_00=陳主席", "SPEAKER_01 = Ms Wong")


def test_minutes_content_title_block_and_proceedings():
    minutes = minutes_content(council(), NAMES, DAY)
    assert minutes.title == "Minutes: 財務委員會.m4a"
    assert (minutes.source, minutes.date, minutes.duration) == ("財務委員會.m4a", "2026-03-14", "01:02:05")
    shares = {lang.code: round(lang.share, 3) for lang in minutes.languages}
    assert shares == {"yue": round(13 / 19, 3), "zh": round(4 / 19, 3), "en": round(2 / 19, 3)}
    assert [lang.name for lang in minutes.languages] == ["Cantonese (粵語)", "Mandarin (普通話)", "English"]
    # Talk time from the diarizer's turns, overlap counted for both, the silent speaker listed.
    talk = {a.label: (a.name, a.seconds) for a in minutes.attendees}
    assert talk == {
        "SPEAKER_00": ("陳主席", 14.5),
        "SPEAKER_01": ("Ms Wong", 6.5),
        "SPEAKER_02": ("SPEAKER_02", 1.0),
    }
    assert [(p.stamp, p.speaker, p.text) for p in minutes.proceedings] == [
        ("00:00:00", "陳主席", "各位委員，早晨。我哋今日討論 budget 嘅問題。"),
        ("00:00:10", "Ms Wong", "谢谢主席，我想问一个问题。 Thank you, Chairman."),
        ("01:01:01", "陳主席", "好，*散會*。"),
    ]


def test_talk_time_from_segments_when_the_transcript_has_no_turns():
    old = council()
    old.turns = []
    talk = {a.label: a.seconds for a in minutes_content(old, (), DAY).attendees}
    assert talk == {"SPEAKER_00": 13.0, "SPEAKER_01": 6.0}


def test_docx_reads_back_with_speakers_times_text_and_cjk_fonts():
    data = render_file(council(), "docx", NAMES)
    document = docx.Document(io.BytesIO(data))
    assert document.core_properties.title == "Minutes: 財務委員會.m4a"
    details, attendance = document.tables
    assert [[c.text for c in row.cells] for row in details.rows][:3] == [
        ["Source file", "財務委員會.m4a"], ["Date", dt.date.today().isoformat()], ["Duration", "01:02:05"],
    ]
    assert "Cantonese (粵語) 68%" in details.rows[3].cells[1].text
    assert [[c.text for c in row.cells] for row in attendance.rows] == [
        ["Speaker", "Label", "Talk time", "Share"],
        ["陳主席", "SPEAKER_00", "00:00:14", "66%"],  # 14.5 s rounds to even
        ["Ms Wong", "SPEAKER_01", "00:00:06", "30%"],
        ["SPEAKER_02", "SPEAKER_02", "00:00:01", "5%"],
    ]
    paragraphs = [p for p in document.paragraphs if p.text.startswith("[")]
    assert [p.text for p in paragraphs] == [
        "[00:00:00] 陳主席: 各位委員，早晨。我哋今日討論 budget 嘅問題。",
        "[00:00:10] Ms Wong: 谢谢主席，我想问一个问题。 Thank you, Chairman.",
        "[01:01:01] 陳主席: 好，*散會*。",
    ]
    head, text = paragraphs[0].runs
    assert head.bold and not text.bold
    # Every style that sets run properties names the Traditional Chinese font for East Asian text.
    for name in ("Normal", "Title", "Heading 1"):
        fonts = document.styles[name].element.rPr.find(qn("w:rFonts"))
        assert fonts.get(qn("w:eastAsia")) == EAST_ASIAN_FONT
        assert document.styles[name].element.rPr.find(qn("w:lang")).get(qn("w:eastAsia")) == "zh-HK"
    assert zipfile.ZipFile(io.BytesIO(data)).testzip() is None


def test_markdown_has_the_same_content():
    md = render(council(), "md", NAMES)
    assert md.startswith("# Minutes: 財務委員會.m4a\n")
    assert "| Duration | 01:02:05 |" in md
    assert "| Languages | Cantonese (粵語) 68%, Mandarin (普通話) 21%, English 11% |" in md
    assert "| 陳主席 | SPEAKER\\_00 | 00:00:14 | 66% |" in md
    assert "**\\[00:00:10\\] Ms Wong:** 谢谢主席，我想问一个问题。 Thank you, Chairman.\n" in md
    assert "**\\[01:01:01\\] 陳主席:** 好，\\*散會\\*。\n" in md  # markup in speech is escaped


def test_minutes_of_a_transcript_without_speakers_or_speech():
    plain = Transcript("a.wav", 5.0, [Segment(0.0, 2.0, "hello", "en")])
    assert "**\\[00:00:00\\]** hello" in render(plain, "md")
    document = docx.Document(io.BytesIO(render_file(plain, "docx")))
    assert [p.text for p in document.paragraphs if p.text.startswith("[")] == ["[00:00:00] hello"]
    assert len(document.tables) == 1  # no speakers table
    empty = Transcript("empty.wav", 0.0)
    assert "| Languages | - |" in render(empty, "md")
    assert docx.Document(io.BytesIO(render_file(empty, "docx"))).paragraphs


# --- speaker names ---------------------------------------------------------------------------


def test_labelled_and_positional_speaker_names():
    t = council()
    assert speaker_display_names(t, ["Chair", "SPEAKER_01=Secretary"]) == {
        "SPEAKER_00": "Chair", "SPEAKER_01": "Secretary", "SPEAKER_02": "SPEAKER_02",
    }
    assert speaker_display_names(t, ["SPEAKER_02=Clerk", "SPEAKER_00="]) == {
        "SPEAKER_00": "SPEAKER_00", "SPEAKER_01": "SPEAKER_01", "SPEAKER_02": "Clerk",
    }
    assert split_names(["Dr. Chan = chair", "A=B=C"]) == ({"A": "B=C"}, ["Dr. Chan = chair"])


def test_names_file(tmp_path):
    path = tmp_path / "names.txt"
    path.write_text("\ufeff# committee\nSPEAKER_00=Chair\n\n SPEAKER_01 = 黃議員 \n", encoding="utf-8")
    assert read_names_file(path) == ("SPEAKER_00=Chair", "SPEAKER_01 = 黃議員")
    path.write_text("SPEAKER_00=Chair\nJust a name\n", encoding="utf-8")
    with pytest.raises(SanyuError, match=r"names.txt: entry 2 \('Just a name'\) is not LABEL=Name"):
        read_names_file(path)
    with pytest.raises(SanyuError, match="cannot read the speaker names file"):
        read_names_file(tmp_path / "missing.txt")


# --- turns in the transcript and RTTM ---------------------------------------------------------


def test_transcript_json_keeps_turns_and_rttm_is_written_from_them():
    t = council()
    data = json.loads(t.to_json())
    assert data["schema_version"] == SCHEMA_VERSION == 2
    back = Transcript.from_json(t.to_json())
    assert back == t and back.turns == t.turns
    # Overlapped speech and a speaker without words survive into RTTM.
    assert parse_rttm(render(back, "rttm")) == t.turns


def test_version_1_json_still_loads_and_renders_rttm_from_segments():
    t = council()
    data = json.loads(t.to_json())
    del data["turns"]
    data["schema_version"] = 1
    old = Transcript.from_dict(data)
    assert old.turns == [] and old.segments == t.segments
    assert {turn.speaker for turn in parse_rttm(render(old, "rttm"))} == {"SPEAKER_00", "SPEAKER_01"}
