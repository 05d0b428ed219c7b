"""The command line on real files: several inputs, one corrupt, every outcome reported."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from click.testing import CliRunner

from conftest import eval_clip
from sanyu.cli import main
from sanyu.inputs import list_inputs
from sanyu.output.naming import file_stem


def test_help_everywhere():
    runner = CliRunner()
    for args in (["--help"], ["transcribe", "--help"], ["models", "--help"], ["eval", "--help"]):
        result = runner.invoke(main, args)
        assert result.exit_code == 0 and "Usage" in result.output


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
    stems = {item.uri: item.stem for item in list_inputs([str(good_en), str(corrupt), str(empty), str(good_yue)])}
    written = sorted(p.name for p in out.iterdir())
    assert written == sorted(
        f"{stems[str(path)]}.{fmt}" for path in (good_en, good_yue) for fmt in ("json", "srt", "txt")
    )
    data = json.loads((out / f"{stems[str(good_yue)]}.json").read_text(encoding="utf-8"))
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
    assert (tmp_path / f"{file_stem(clip.name)}.txt").read_text().strip()
