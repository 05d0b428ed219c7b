"""End to end on pyannote's real 2-speaker sample: speaker-attributed TXT, SRT, JSON, RTTM and the
DOCX and Markdown minutes, from the command line."""

from __future__ import annotations

import io
import json

import pytest
from click.testing import CliRunner

from conftest import eval_clip
from sanyu.cli import main
from sanyu.evaluation.diarization import der
from sanyu.output import parse_rttm
from sanyu.output.naming import file_stem
from sanyu.schema import SpeakerTurn

pytestmark = pytest.mark.slow


def test_two_speaker_sample_gives_speaker_attributed_outputs(tmp_path):
    clip = eval_clip("multi/pyannote_sample.wav")
    names = tmp_path / "names.txt"
    names.write_text("# who is who\nSPEAKER_00=Diane\nSPEAKER_01=Sheila\n", encoding="utf-8")
    out = tmp_path / "out"
    result = CliRunner().invoke(
        main,
        ["transcribe", str(clip), "-o", str(out), "--diarize", "--format", "txt,srt,json,rttm,docx,md",
         "--speaker-names-file", str(names)],
    )
    assert result.exit_code == 0, result.output
    stem = file_stem(clip.name)

    data = json.loads((out / f"{stem}.json").read_text(encoding="utf-8"))
    assert data["speakers"] == ["SPEAKER_00", "SPEAKER_01"]
    assert data["segments"] and all(s["speaker"] in data["speakers"] for s in data["segments"])
    assert all(w["speaker"] for s in data["segments"] for w in s["words"])

    srt = (out / f"{stem}.srt").read_text(encoding="utf-8")
    assert "[Diane]" in srt and "[Sheila]" in srt

    txt = (out / f"{stem}.txt").read_text(encoding="utf-8")
    headings = [line for line in txt.splitlines() if line.startswith("[00:")]
    assert len(headings) >= 4, "one paragraph per speaker turn"
    assert {h.split("] ", 1)[1] for h in headings} == {"Diane:", "Sheila:"}

    # RTTM is the diarizer's own turns as stored in the transcript, and scores as they do.
    rttm = (out / f"{stem}.rttm").read_text(encoding="utf-8")
    stored = [SpeakerTurn(**t) for t in data["turns"]]
    assert parse_rttm(rttm) == stored
    assert der(clip.with_suffix(".rttm"), stored) <= 0.15

    check_minutes(out, stem, headings)


def check_minutes(out, stem, txt_headings) -> None:
    """The DOCX minutes read back with python-docx: speakers, one timed paragraph per turn, text."""
    import docx

    document = docx.Document(io.BytesIO((out / f"{stem}.docx").read_bytes()))
    details, speakers = document.tables
    assert details.rows[0].cells[1].text == "pyannote_sample.wav"
    assert details.rows[2].cells[1].text == "00:00:30"
    assert details.rows[3].cells[1].text == "English 100%"
    rows = [[c.text for c in row.cells] for row in speakers.rows[1:]]
    assert [row[:2] for row in rows] == [["Diane", "SPEAKER_00"], ["Sheila", "SPEAKER_01"]]
    assert all("00:00:05" <= row[2] <= "00:00:20" for row in rows)  # each talks a good share
    proceedings = [p.text for p in document.paragraphs if p.text.startswith("[00:")]
    # The same turns, stamps and names as the TXT minutes; the first turn starts when Diane does.
    assert [p.split(": ", 1)[0] + ":" for p in proceedings] == txt_headings
    assert proceedings[0].startswith(("[00:00:06] Diane:", "[00:00:07] Diane:"))
    text = " ".join(proceedings).lower()
    for phrase in ("new jersey", "texas", "chicago", "yankee"):
        assert phrase in text
    markdown = (out / f"{stem}.md").read_text(encoding="utf-8")
    assert markdown.count("**\\[00:") == len(proceedings)
    assert "| Diane | SPEAKER\\_00 |" in markdown
