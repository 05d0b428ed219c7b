"""Transcript writers: every format on ordinary, empty and hostile transcripts."""

from __future__ import annotations

import os
import re

import fsspec
import pytest

from sanyu.output import (
    FORMATS,
    format_timestamp,
    parse_rttm,
    render,
    render_file,
    render_rttm_turns,
    rttm_file_id,
    write_outputs,
)
from sanyu.output.subtitles import MAX_LINE_WIDTH, MIN_CUE_SECONDS, text_width
from sanyu.schema import Segment, SpeakerTurn, Transcript, Word

SRT_TIME = re.compile(r"^(\d\d):(\d\d):(\d\d),(\d\d\d) --> (\d\d):(\d\d):(\d\d),(\d\d\d)$")


def seg(start, end, text, language="yue", speaker=None, words=()):
    return Segment(start, end, text, language, words=list(words), speaker=speaker)


def meeting() -> Transcript:
    return Transcript(
        source="meetings/2024/立法會 會議.wav",
        duration=30.0,
        segments=[
            seg(0.0, 2.5, "各位議員，早晨。", speaker="SPEAKER_00"),
            seg(2.5, 5.0, "我哋今日討論 budget 嘅問題。", speaker="SPEAKER_00"),
            seg(6.0, 9.0, "Thank you, Chairman.", "en", speaker="SPEAKER_01"),
            seg(9.2, 12.0, "好，多謝。", speaker="SPEAKER_00"),
        ],
        speakers=["SPEAKER_00", "SPEAKER_01"],
    )


def srt_cues(text: str) -> list[tuple[float, float, list[str]]]:
    """Parse SRT strictly: numbered blocks, a valid time line, 1+ text lines."""
    cues = []
    for number, block in enumerate(text.strip("\n").split("\n\n"), start=1):
        lines = block.split("\n")
        assert lines[0] == str(number)
        match = SRT_TIME.match(lines[1])
        assert match, lines[1]
        h1, m1, s1, ms1, h2, m2, s2, ms2 = map(int, match.groups())
        start = h1 * 3600 + m1 * 60 + s1 + ms1 / 1000
        end = h2 * 3600 + m2 * 60 + s2 + ms2 / 1000
        assert lines[2:] and all(line.strip() for line in lines[2:])
        cues.append((start, end, lines[2:]))
    return cues


def assert_valid_timeline(cues):
    for start, end, _ in cues:
        assert 0 <= start < end
    for (_, end, _), (start, _, _) in zip(cues, cues[1:]):
        assert end <= start


# --- timestamps ------------------------------------------------------------------------


def test_format_timestamp_rounds_and_never_goes_negative():
    assert format_timestamp(0) == "00:00:00,000"
    assert format_timestamp(3661.2345) == "01:01:01,234"
    assert format_timestamp(59.9996) == "00:01:00,000"
    assert format_timestamp(1.5, ".") == "00:00:01.500"
    assert format_timestamp(0.0004) == "00:00:00,000"
    assert format_timestamp(-3.2) == "00:00:00,000"
    assert format_timestamp(float("nan")) == "00:00:00,000"
    assert format_timestamp(360000.5) == "100:00:00,500"


# --- SRT / VTT ---------------------------------------------------------------------------


def test_srt_with_speaker_names_mapped_in_order():
    out = render(meeting(), "srt", ["陳主席"])
    assert out == (
        "1\n00:00:00,000 --> 00:00:02,500\n[陳主席] 各位議員，早晨。\n\n"
        "2\n00:00:02,500 --> 00:00:05,000\n[陳主席] 我哋今日討論 budget 嘅問題。\n\n"
        "3\n00:00:06,000 --> 00:00:09,000\n[SPEAKER_01] Thank you, Chairman.\n\n"
        "4\n00:00:09,200 --> 00:00:12,000\n[陳主席] 好，多謝。\n"
    )


def test_vtt_header_dot_times_and_prefix():
    out = render(meeting(), "vtt", ["Chair", "Ms Wong"])
    assert out == (
        "WEBVTT\n\n"
        "00:00:00.000 --> 00:00:02.500\n[Chair] 各位議員，早晨。\n\n"
        "00:00:02.500 --> 00:00:05.000\n[Chair] 我哋今日討論 budget 嘅問題。\n\n"
        "00:00:06.000 --> 00:00:09.000\n[Ms Wong] Thank you, Chairman.\n\n"
        "00:00:09.200 --> 00:00:12.000\n[Chair] 好，多謝。\n"
    )


def test_speaker_names_follow_speakers_list_then_label_number():
    t = Transcript(
        "a.wav",
        10,
        [seg(0, 1, "a", speaker="SPEAKER_10"), seg(1, 2, "b", speaker="SPEAKER_2"), seg(2, 3, "c", speaker="X")],
        speakers=["X"],
    )
    # X is listed, then unlisted labels by number: SPEAKER_2 before SPEAKER_10.
    out = render(t, "srt", ["Xavier", "", "Ten"])
    assert "[Ten] a" in out and "[SPEAKER_2] b" in out and "[Xavier] c" in out


def test_speaker_name_with_newline_is_one_line():
    out = render(meeting(), "srt", ["Chair\nperson"])
    assert "[Chair person] 各位議員，早晨。" in out


def test_vtt_escapes_markup_and_arrow():
    t = Transcript("a.wav", 5, [seg(0, 2, "x < y & z --> w", "en", speaker="A<B>")])
    out = render(t, "vtt")
    assert out == "WEBVTT\n\n00:00:00.000 --> 00:00:02.000\n[A&lt;B&gt;] x &lt; y &amp; z --&gt; w\n"


def test_no_speaker_means_no_prefix():
    t = Transcript("a.wav", 5, [seg(0, 1.5, "冇人講嘢")])
    assert render(t, "srt") == "1\n00:00:00,000 --> 00:00:01,500\n冇人講嘢\n"


def test_overlapping_and_reversed_times_are_fixed():
    t = Transcript(
        "a.wav",
        20,
        [
            seg(0.0, 3.0, "first", "en"),
            seg(2.0, 4.0, "overlaps first", "en"),
            seg(8.0, 6.0, "reversed", "en"),
            seg(-1.0, -0.5, "negative", "en"),
            seg(10.0, 10.0, "zero length", "en"),
            seg(10.0, 11.0, "same start", "en"),
        ],
    )
    cues = srt_cues(render(t, "srt"))
    assert_valid_timeline(cues)
    assert [(s, e, lines[0]) for s, e, lines in cues] == [
        (0.0, 0.25, "negative"),  # -1..-0.5 clamps to 0..0, then gets the minimum time
        (0.25, 2.0, "first"),  # trimmed where the next cue begins
        (2.0, 4.0, "overlaps first"),
        (6.0, 8.0, "reversed"),  # swapped
        (10.0, 10.0 + MIN_CUE_SECONDS, "zero length"),
        (10.0 + MIN_CUE_SECONDS, 11.0, "same start"),
    ]
    vtt = render(t, "vtt")
    assert "00:00:06.000 --> 00:00:08.000\nreversed" in vtt


def test_empty_transcript_renders_valid_output_in_every_format():
    t = Transcript("empty.wav", 0.0)
    assert render(t, "srt") == ""
    assert render(t, "vtt") == "WEBVTT\n"
    assert render(t, "txt") == ""
    assert render(t, "tsv") == "start\tend\tspeaker\tlanguage\ttext\n"
    assert render(t, "rttm") == ""
    back = Transcript.from_json(render(t, "json"))
    assert back == t
    assert set(FORMATS) == {"txt", "srt", "vtt", "tsv", "json", "rttm", "md", "docx"}


def test_blank_segments_are_skipped_not_written_as_broken_cues():
    t = Transcript("a.wav", 5, [seg(0, 1, "  "), seg(1, 2, "\n"), seg(2, 3, "ok", "en")])
    assert render(t, "srt") == "1\n00:00:02,000 --> 00:00:03,000\nok\n"
    assert render(t, "txt") == "[00:00:02] ok\n"


def test_newlines_inside_text_never_end_a_cue():
    t = Transcript("a.wav", 5, [seg(0, 2, "line one\n\nline two", "en")])
    assert render(t, "srt") == "1\n00:00:00,000 --> 00:00:02,000\nline one line two\n"


def test_long_english_line_wraps_on_two_balanced_lines():
    text = "Thank you Chairman, I would like to ask about the budget."
    t = Transcript("a.wav", 5, [seg(0, 5, text, "en")])
    (cue,) = srt_cues(render(t, "srt"))
    # As even as "Thank you Chairman, I would / like to ask ...", but after the comma.
    assert cue[2] == ["Thank you Chairman,", "I would like to ask about the budget."]
    assert " ".join(cue[2]) == text
    # The same with word timestamps whose words carry no punctuation.
    words = [Word(i * 0.4, i * 0.4 + 0.3, w.strip(",.")) for i, w in enumerate(text.split())]
    with_words = Transcript("a.wav", 5, [seg(0, 5, text, "en", words=words)])
    assert render(with_words, "srt") == render(t, "srt")


def test_long_cjk_line_counts_two_columns_per_character():
    text = "主席，我想問一問政府喺呢個財政年度入面，對於房屋政策嘅預算。"  # 30 chars, 60 cols
    t = Transcript("a.wav", 8, [seg(0, 8, text)])
    (cue,) = srt_cues(render(t, "srt"))
    assert cue[2] == ["主席，我想問一問政府喺呢個財政年度入面，", "對於房屋政策嘅預算。"]
    assert "".join(cue[2]) == text  # no character added or lost, no space inserted
    assert all(text_width(line) <= MAX_LINE_WIDTH for line in cue[2])


def test_long_segment_split_into_cues_by_word_timestamps():
    tokens = "We will now vote on the motion moved by the Honourable member about public housing supply in the New Territories, thank you.".split()
    words = [Word(10 + i * 0.5, 10 + i * 0.5 + 0.4, " " + token) for i, token in enumerate(tokens)]
    text = " ".join(tokens)
    t = Transcript("a.wav", 40, [seg(10, 10 + len(tokens) * 0.5, text, "en", "SPEAKER_00", words)])
    cues = srt_cues(render(t, "srt", ["Chair"]))
    assert len(cues) == 2
    assert_valid_timeline(cues)
    for _, _, lines in cues:
        assert len(lines) <= 2 and lines[0].startswith("[Chair] ")
        assert all(text_width(line) <= MAX_LINE_WIDTH for line in lines)
    # Together the cues hold the text exactly, and the split falls on word times.
    rebuilt = " ".join(" ".join(lines)[len("[Chair] "):] for _, _, lines in cues)
    assert rebuilt == text
    first_word_of_second = " ".join(cues[1][2])[len("[Chair] "):].split()[0]
    index = tokens.index(first_word_of_second)
    assert cues[0][0] == 10.0 and cues[-1][1] == 10 + len(tokens) * 0.5
    assert cues[0][1] == pytest.approx(words[index - 1].end)
    assert cues[1][0] == pytest.approx(words[index].start)


def test_long_cjk_segment_without_words_splits_at_punctuation_with_interpolated_times():
    text = "主席，我想問一問政府喺呢個財政年度入面，對於房屋政策嘅預算究竟有幾多，同埋時間表係點樣安排，多謝主席。"
    t = Transcript("a.wav", 60, [seg(21, 30, text, speaker="SPEAKER_00")])
    cues = srt_cues(render(t, "srt", ["主席"]))
    assert [lines for _, _, lines in cues] == [
        ["[主席] 主席，", "我想問一問政府喺呢個財政年度入面，"],
        ["[主席] 對於房屋政策嘅預算究竟有幾多，", "同埋時間表係點樣安排，多謝主席。"],
    ]
    assert "".join("".join(lines).replace("[主席] ", "") for _, _, lines in cues) == text
    assert cues[0][0] == 21.0 and cues[1][1] == 30.0
    # 20 of the 51 characters come before the split: 9 s * 20 / 51.
    assert len(text) == 51
    assert cues[0][1] == pytest.approx(21 + 9 * 20 / 51, abs=0.001)
    assert_valid_timeline(cues)


def test_mixed_cantonese_english_words_keep_spacing_exactly():
    text = "我哋今日要 review 一下個 proposal，然後 vote。"
    pieces = ["我哋", "今日", "要", " review", " 一下", "個", " proposal，", "然後", " vote。"]
    words = [Word(i * 0.5, i * 0.5 + 0.4, piece) for i, piece in enumerate(pieces)]
    t = Transcript("a.wav", 5, [seg(0, 4.5, text, words=words)])
    assert text_width(text) == 46  # too wide for one line: broken at a seam between CJK words
    assert render(t, "srt") == "1\n00:00:00,000 --> 00:00:04,500\n我哋今日要 review 一下\n個 proposal，然後 vote。\n"
    assert render(t, "txt") == f"[00:00:00] {text}\n"
    short = Transcript("a.wav", 5, [seg(0, 2, "我哋 review 一下 proposal。", words=words[:0])])
    assert render(short, "vtt") == "WEBVTT\n\n00:00:00.000 --> 00:00:02.000\n我哋 review 一下 proposal。\n"


def test_very_long_segment_splits_into_many_valid_cues():
    tokens = [f"w{i}" for i in range(3000)]
    words = [Word(i * 0.1, i * 0.1 + 0.05, " " + token) for i, token in enumerate(tokens)]
    t = Transcript("a.wav", 400, [seg(0, 300, " ".join(tokens), "en", "SPEAKER_00", words)])
    cues = srt_cues(render(t, "srt"))
    assert_valid_timeline(cues)
    assert all(len(lines) <= 2 and all(text_width(line) <= MAX_LINE_WIDTH for line in lines) for _, _, lines in cues)
    rebuilt = " ".join(" ".join(lines).removeprefix("[SPEAKER_00] ") for _, _, lines in cues)
    assert rebuilt == " ".join(tokens)
    # About as few as can be: a cue holds 2 * 42 columns, less the prefix.
    estimate = text_width(" ".join(tokens)) / (2 * MAX_LINE_WIDTH - len("[SPEAKER_00] "))
    assert abs(len(cues) - estimate) < estimate * 0.1


def test_a_word_wider_than_a_line_gets_a_line_of_its_own():
    url = "https://example.org/" + "x" * 60
    t = Transcript("a.wav", 5, [seg(0, 4, f"See {url} for details", "en")])
    assert [lines for _, _, lines in srt_cues(render(t, "srt"))] == [["See"], [url], ["for details"]]


def test_words_that_do_not_match_the_text_fall_back_to_interpolation():
    text = "This sentence is long enough that it has to be split into two separate subtitle cues right here."
    words = [Word(0, 1, "完全"), Word(1, 2, "唔同")]  # e.g. the text was rewritten after alignment
    t = Transcript("a.wav", 10, [seg(0, 10, text, "en", words=words)])
    cues = srt_cues(render(t, "srt"))
    assert " ".join(" ".join(lines) for _, _, lines in cues) == text
    assert len(cues) == 2 and cues[0][0] == 0.0 and cues[-1][1] == 10.0
    assert_valid_timeline(cues)


# --- TXT -------------------------------------------------------------------------------


def test_txt_minutes_one_paragraph_per_speaker_turn():
    assert render(meeting(), "txt", ["Chair"]) == (
        "[00:00:00] Chair:\n各位議員，早晨。我哋今日討論 budget 嘅問題。\n\n"
        "[00:00:06] SPEAKER_01:\nThank you, Chairman.\n\n"
        "[00:00:09] Chair:\n好，多謝。\n"
    )


def test_txt_without_speakers_breaks_at_pauses_and_every_five_segments():
    segments = [seg(i, i + 0.9, f"s{i}", "en") for i in range(7)]  # no pauses
    segments += [seg(20.5, 21, "after pause", "en"), seg(3725, 3726, "一個鐘後", "yue")]
    out = render(Transcript("a.wav", 4000, segments), "txt")
    assert out == (
        "[00:00:00] s0 s1 s2 s3 s4\n\n"
        "[00:00:05] s5 s6\n\n"
        "[00:00:20] after pause\n\n"
        "[01:02:05] 一個鐘後\n"
    )


# --- TSV -------------------------------------------------------------------------------


def test_tsv_header_times_and_escaping():
    t = Transcript(
        "a.wav",
        10,
        [
            seg(0, 1.23456, "tab\there\nnew line\r\nend", "en", speaker="SPEAKER_00"),
            seg(2, 1, "反轉 English", "yue"),
        ],
        speakers=["SPEAKER_00"],
    )
    out = render(t, "tsv", ["Chair\tWoman"])
    assert out == (
        "start\tend\tspeaker\tlanguage\ttext\n"
        "0.000\t1.235\tChair Woman\ten\ttab here new line end\n"
        "1.000\t2.000\t\tyue\t反轉 English\n"
    )
    for row in out.splitlines():
        assert row.count("\t") == 4


# --- JSON ------------------------------------------------------------------------------


def test_json_round_trips_and_keeps_cjk_unescaped():
    t = meeting()
    t.segments[0].words = [Word(0.0, 0.5, "各位", 0.9, language="yue", speaker="SPEAKER_00")]
    out = render(t, "json", ["ignored"])
    assert "各位議員" in out and "\\u" not in out
    assert Transcript.from_json(out) == t


# --- RTTM ------------------------------------------------------------------------------


def test_rttm_merges_consecutive_same_speaker_segments():
    out = render(meeting(), "rttm", ["names are not used in rttm"])
    assert out == (
        "SPEAKER 立法會_會議 1 0.000 5.000 <NA> <NA> SPEAKER_00 <NA> <NA>\n"
        "SPEAKER 立法會_會議 1 6.000 3.000 <NA> <NA> SPEAKER_01 <NA> <NA>\n"
        "SPEAKER 立法會_會議 1 9.200 2.800 <NA> <NA> SPEAKER_00 <NA> <NA>\n"
    )


def test_rttm_skips_unlabelled_segments_and_does_not_merge_across_them():
    t = Transcript(
        "s3://bucket/x y.wav",
        10,
        [
            seg(0, 1, "a", speaker="A"),
            seg(1, 2, "unknown"),
            seg(2, 3, "b", speaker="A"),
            seg(5, 6, "c", speaker="A"),  # 2 s pause: a new turn
        ],
    )
    assert parse_rttm(render(t, "rttm")) == [
        SpeakerTurn(0.0, 1.0, "A"),
        SpeakerTurn(2.0, 3.0, "A"),
        SpeakerTurn(5.0, 6.0, "A"),
    ]
    assert render(t, "rttm").split()[1] == "x_y"


def test_rttm_turns_round_trip_through_parse():
    turns = [
        SpeakerTurn(1.1, 3.3, "SPEAKER_01"),
        SpeakerTurn(0.0, 1.25, "SPEAKER_00"),
        SpeakerTurn(2.0, 2.0, "SPEAKER_00"),  # empty: left out
        SpeakerTurn(3.0, 4.5, "SPEAKER_00"),  # overlapping speech is kept
    ]
    text = render_rttm_turns(turns, "my meeting")
    assert text == (
        "SPEAKER my_meeting 1 0.000 1.250 <NA> <NA> SPEAKER_00 <NA> <NA>\n"
        "SPEAKER my_meeting 1 1.100 2.200 <NA> <NA> SPEAKER_01 <NA> <NA>\n"
        "SPEAKER my_meeting 1 3.000 1.500 <NA> <NA> SPEAKER_00 <NA> <NA>\n"
    )
    assert parse_rttm(text) == [turns[1], turns[0], turns[3]]
    assert parse_rttm(text, file_id="other") == []


def test_parse_rttm_ignores_comments_and_other_types_and_rejects_garbage():
    text = (
        "# comment\n\n"
        "SPKR-INFO f 1 <NA> <NA> <NA> unknown A <NA> <NA>\n"
        "SPEAKER f 1 0.5 1.5 <NA> <NA> A <NA> <NA>\n"
        "SPEAKER g 1 2 1 <NA> <NA> B <NA> <NA>\n"
    )
    assert parse_rttm(text) == [SpeakerTurn(0.5, 2.0, "A"), SpeakerTurn(2.0, 3.0, "B")]
    assert parse_rttm(text, file_id="g") == [SpeakerTurn(2.0, 3.0, "B")]
    with pytest.raises(ValueError, match="line 1"):
        parse_rttm("SPEAKER f 1 zero 1 <NA> <NA> A\n")
    with pytest.raises(ValueError, match="line 2"):
        parse_rttm("\nSPEAKER f 1 0.0\n")
    with pytest.raises(ValueError, match="line 1"):
        parse_rttm("SPEAKER f 1 -1 1 <NA> <NA> A\n")


def test_rttm_file_id_from_source():
    assert rttm_file_id("/data/立法會 會議.final.wav") == "立法會_會議.final"
    assert rttm_file_id("https://host/a/b.mp3?sig=x y") == "b"
    assert rttm_file_id("") == "audio"
    assert rttm_file_id(".hidden") == ".hidden"


def test_unknown_format_is_an_error():
    with pytest.raises(ValueError, match="unknown output format 'pdf'"):
        render(meeting(), "pdf")
    assert render(meeting(), ".SRT") == render(meeting(), "srt")
    # A binary format renders to bytes (its file's bytes, as render_file gives every format).
    docx_bytes = render(meeting(), "docx")
    assert isinstance(docx_bytes, bytes) and docx_bytes.startswith(b"PK")
    assert render_file(meeting(), "srt") == render(meeting(), "srt").encode("utf-8")


# --- write_outputs -----------------------------------------------------------------------


def test_write_outputs_creates_directory_and_writes_every_format(tmp_path):
    target = tmp_path / "new" / "nested"
    paths = write_outputs(meeting(), str(target), "meeting-1a2b", FORMATS, ["Chair"])
    assert paths == [str(target / f"meeting-1a2b.{fmt}") for fmt in FORMATS]
    assert sorted(os.listdir(target)) == sorted(f"meeting-1a2b.{fmt}" for fmt in FORMATS)
    for fmt in FORMATS:
        if fmt == "docx":  # a zip whose entries carry the time of writing
            import docx

            text = "\n".join(p.text for p in docx.Document(target / "meeting-1a2b.docx").paragraphs)
            assert "[00:00:00] Chair: 各位議員，早晨。" in text
            continue
        with open(target / f"meeting-1a2b.{fmt}", encoding="utf-8") as handle:
            assert handle.read() == render(meeting(), fmt, ["Chair"])
    assert oct(os.stat(target / "meeting-1a2b.srt").st_mode & 0o777) == oct(0o644)


def test_write_outputs_replaces_existing_file_and_leaves_no_temp_files(tmp_path):
    old = tmp_path / "m.srt"
    old.write_text("stale content that is much longer than the new one " * 100)
    os.chmod(old, 0o600)
    inode_before = os.stat(old).st_ino
    paths = write_outputs(meeting(), tmp_path, "m", "srt,txt")
    assert paths == [str(tmp_path / "m.srt"), str(tmp_path / "m.txt")]
    assert old.read_text(encoding="utf-8") == render(meeting(), "srt")
    assert os.stat(old).st_ino != inode_before  # a new file renamed over, not rewritten in place
    assert os.stat(old).st_mode & 0o777 == 0o600  # keeps the old file's permissions
    assert sorted(os.listdir(tmp_path)) == ["m.srt", "m.txt"]


def test_write_outputs_validates_before_writing(tmp_path):
    with pytest.raises(ValueError, match="unknown output format"):
        write_outputs(meeting(), tmp_path / "out", "m", ["srt", "pdf"])
    assert not (tmp_path / "out").exists()
    for stem in ("", "..", "a/b", "a\\b", "a\0b"):
        with pytest.raises(ValueError, match="plain file name"):
            write_outputs(meeting(), tmp_path, stem, ["srt"])
    assert write_outputs(meeting(), tmp_path / "none", "m", []) == []
    assert os.listdir(tmp_path) == []


def test_write_outputs_to_fsspec_url(tmp_path):
    paths = write_outputs(meeting(), "memory://sanyu-test/out/2024", "m", ["json", "rttm"])
    assert paths == ["memory:///sanyu-test/out/2024/m.json", "memory:///sanyu-test/out/2024/m.rttm"]
    fs = fsspec.filesystem("memory")
    assert Transcript.from_json(fs.cat_file("/sanyu-test/out/2024/m.json").decode()) == meeting()
    assert fs.cat_file("/sanyu-test/out/2024/m.rttm").decode() == render(meeting(), "rttm")
    fs.rm("/sanyu-test", recursive=True)

    # file:// URLs are local paths: same atomic rename, plain path back.
    (local,) = write_outputs(meeting(), f"file://{tmp_path}/via-url", "m", ["txt"])
    assert local == str(tmp_path / "via-url" / "m.txt")
    assert os.listdir(tmp_path / "via-url") == ["m.txt"]
