"""End to end on pyannote's real 2-speaker sample: speaker-attributed TXT, SRT, JSON and RTTM."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from conftest import eval_clip
from sanyu.cli import main
from sanyu.evaluation.diarization import der
from sanyu.output import parse_rttm
from sanyu.output.naming import file_stem

pytestmark = pytest.mark.slow


def test_two_speaker_sample_gives_speaker_attributed_outputs(tmp_path):
    clip = eval_clip("multi/pyannote_sample.wav")
    result = CliRunner().invoke(
        main,
        ["transcribe", str(clip), "-o", str(tmp_path), "--diarize", "--format", "txt,srt,json,rttm",
         "--speaker-names", "Diane,Sheila"],
    )
    assert result.exit_code == 0, result.output
    stem = file_stem(clip.name)

    data = json.loads((tmp_path / f"{stem}.json").read_text(encoding="utf-8"))
    assert data["speakers"] == ["SPEAKER_00", "SPEAKER_01"]
    assert data["segments"] and all(s["speaker"] in data["speakers"] for s in data["segments"])
    assert all(w["speaker"] for s in data["segments"] for w in s["words"])

    srt = (tmp_path / f"{stem}.srt").read_text(encoding="utf-8")
    assert "[Diane]" in srt and "[Sheila]" in srt

    txt = (tmp_path / f"{stem}.txt").read_text(encoding="utf-8")
    headings = [line for line in txt.splitlines() if line.startswith("[00:")]
    assert len(headings) >= 4, "one paragraph per speaker turn"
    assert {h.split("] ", 1)[1] for h in headings} == {"Diane:", "Sheila:"}

    rttm = (tmp_path / f"{stem}.rttm").read_text(encoding="utf-8")
    turns = parse_rttm(rttm)
    assert {t.speaker for t in turns} == {"SPEAKER_00", "SPEAKER_01"}
    # Turns rebuilt from the words' speakers still match the reference diarization.
    assert der(clip.with_suffix(".rttm"), turns) <= 0.2
