"""The command line on real files: several inputs, one corrupt, every outcome reported."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from click.testing import CliRunner

from conftest import eval_clip
from sanyu.cli import main, unique_stems


def test_help_everywhere():
    runner = CliRunner()
    for args in (["--help"], ["transcribe", "--help"], ["models", "--help"], ["eval", "--help"]):
        result = runner.invoke(main, args)
        assert result.exit_code == 0 and "Usage" in result.output


def test_unique_stems_never_collide_or_hide():
    stems = unique_stems(["a/meeting.wav", "b/meeting.mp3", ".hidden.wav", "-rf.wav", "x\ny.wav"])
    assert stems == ["meeting", "meeting-2", "hidden", "rf", "x_y"]


@pytest.mark.slow
def test_batch_with_a_corrupt_file_writes_the_others(tmp_path):
    good_en = eval_clip("en/en_ljspeech_LJ002-0020.wav")
    good_yue = eval_clip("yue/yue_sensevoice_yue.wav")
    corrupt = tmp_path / "corrupt.wav"
    corrupt.write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunkjunkjunk" * 10)
    empty = tmp_path / "empty.mp3"
    empty.write_bytes(b"")
    out = tmp_path / "out"
    result = CliRunner().invoke(
        main,
        ["transcribe", str(good_en), str(corrupt), str(empty), str(good_yue), "-o", str(out),
         "--format", "json,srt,txt", "--beam-size", "1"],
    )
    assert result.exit_code == 1, result.output
    assert str(corrupt) in result.output and str(empty) in result.output
    assert "2 ok, 2 failed" in result.output
    written = sorted(p.name for p in out.iterdir())
    assert written == sorted(
        f"{stem}.{fmt}" for stem in ("en_ljspeech_LJ002-0020", "yue_sensevoice_yue")
        for fmt in ("json", "srt", "txt")
    )
    data = json.loads((out / "yue_sensevoice_yue.json").read_text(encoding="utf-8"))
    assert data["segments"] and data["text"], "the good files' transcripts are complete"
    assert data["source"] == str(good_yue)


def test_exit_code_zero_when_all_succeed_and_console_script_runs(tmp_path):
    clip = eval_clip("en/en_speechrecognition_english.wav")
    result = subprocess.run(
        [sys.executable, "-m", "sanyu.cli", "transcribe", str(clip), "-o", str(tmp_path),
         "--format", "txt", "--beam-size", "1"],
        capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "en_speechrecognition_english.txt").read_text().strip()
