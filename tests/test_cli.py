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


def _options(command, prefix=()):
    import click

    if isinstance(command, click.Group):
        for name, sub in command.commands.items():
            yield from _options(sub, (*prefix, name))
        return
    for param in command.params:
        if isinstance(param, click.Option) and not param.hidden:
            yield prefix, param


def test_every_option_has_help_and_an_environment_variable():
    runner = CliRunner()
    options = list(_options(main))
    assert len(options) > 80
    for path, option in options:
        assert option.help and option.help.strip(), (path, option.opts)
    for command in ("transcribe", "batch", "serve", "eval", "models fetch"):
        shown = runner.invoke(main, [*command.split(), "--help"], terminal_width=200).output
        for path, option in options:
            if " ".join(path) == command:
                flag = max((o for o in option.opts if o.startswith("--")), key=len)
                name = flag[2:].upper().replace("-", "_")
                assert f"SANYU_{'_'.join(path).upper()}_{name}" in shown.replace("\n", " ").replace(" ", ""), (path, flag)


def test_both_commands_share_flags_env_and_old_spellings(tmp_path, monkeypatch):
    import sanyu.cli.transcribe as transcribe
    import sanyu.pipeline.driver as driver
    import sanyu.pipeline.progress as progress
    from sanyu.output import FORMATS

    clip = tmp_path / "a.wav"
    clip.write_bytes(b"not audio, never read here")
    seen = {}

    def fake_one(transcriber, item, options, output, formats, storage_options):
        seen["transcribe"] = (item.stem, output, formats, options.language)
        return transcribe.FileOutcome(item.display)

    def fake_batch(items, settings, console):
        seen["batch"] = ([i.stem for i in items], settings.output, settings.formats, settings.options.language)
        from sanyu.results import BatchSummary
        return BatchSummary(settings.output, "run", [], 0.0)

    monkeypatch.setattr(transcribe, "_transcribe_one", fake_one)
    monkeypatch.setattr(driver, "run_batch", fake_batch)
    monkeypatch.setattr(progress, "print_summary", lambda summary, console: None)
    runner = CliRunner()
    env = {"SANYU_FORMAT": "all", "SANYU_LANGUAGE": "yue", "SANYU_BATCH_LANGUAGE": "en"}
    for command in ("transcribe", "batch"):
        result = runner.invoke(main, [command, str(clip), "-o", str(tmp_path / "out")], env=env)
        assert result.exit_code == 0, result.output
    assert seen["transcribe"][0] == seen["batch"][0][0] == file_stem("a.wav")  # one naming rule
    assert seen["transcribe"][1:] == (str(tmp_path / "out"), FORMATS, "yue")
    assert seen["batch"][1:] == (str(tmp_path / "out"), FORMATS, "en")  # the command's own variable wins
    for command in ("transcribe", "batch"):
        result = runner.invoke(main, [command, str(clip), "--output-dir", "old", "--formats", "srt,txt"])
        assert result.exit_code == 0, result.output
        assert seen[command][1:3] == ("old", ("srt", "txt"))
    result = runner.invoke(main, ["transcribe", str(clip), "-f", "doc"])
    assert result.exit_code == 2 and "unknown output format 'doc'" in result.output
    # Languages and speaker counts are checked as the HTTP endpoint checks them, before any work.
    for command in ("transcribe", "batch"):
        result = runner.invoke(main, [command, str(clip), "--language", "Cantonese"])
        assert result.exit_code == 0 and seen[command][-1] == "yue", result.output
        for bad, reason in ((["--language", "klingon"], "unsupported language 'klingon'"),
                            (["--min-speakers", "5", "--max-speakers", "2"], "min_speakers is larger"),
                            (["--num-speakers", "9", "--max-speakers", "2"], "outside")):
            result = runner.invoke(main, [command, str(clip), *bad])
            assert result.exit_code == 2 and reason in result.output, (command, bad, result.output)


def test_speaker_names_from_a_file_the_environment_and_the_command_line(tmp_path, monkeypatch):
    import sanyu.cli.transcribe as transcribe
    import sanyu.pipeline.driver as driver
    import sanyu.pipeline.progress as progress

    clip = tmp_path / "a.wav"
    clip.write_bytes(b"not audio, never read here")
    names = tmp_path / "names.txt"
    names.write_text("# committee\nSPEAKER_00=Chair\nSPEAKER_01 = 黃議員\n", encoding="utf-8")
    seen = {}

    def fake_one(transcriber, item, options, output, formats, storage_options):
        seen["transcribe"] = options.speaker_names
        return transcribe.FileOutcome(item.display)

    def fake_batch(items, settings, console):
        seen["batch"] = settings.options.speaker_names
        from sanyu.results import BatchSummary
        return BatchSummary(settings.output, "run", [], 0.0)

    monkeypatch.setattr(transcribe, "_transcribe_one", fake_one)
    monkeypatch.setattr(driver, "run_batch", fake_batch)
    monkeypatch.setattr(progress, "print_summary", lambda summary, console: None)
    runner = CliRunner()
    env = {"SANYU_SPEAKER_NAMES_FILE": str(names)}
    for command in ("transcribe", "batch"):
        result = runner.invoke(main, [command, str(clip), "-o", str(tmp_path / "out"),
                                      "--speaker-names", "SPEAKER_00=Secretary,Guest"], env=env)
        assert result.exit_code == 0, result.output
        # The file's entries first, the command line's after them (so they win for a label).
        assert seen[command] == ("SPEAKER_00=Chair", "SPEAKER_01 = 黃議員", "SPEAKER_00=Secretary", "Guest")
    names.write_text("SPEAKER_00=Chair\nJust a name\n", encoding="utf-8")
    result = runner.invoke(main, ["transcribe", str(clip), "--speaker-names-file", str(names)])
    assert result.exit_code == 2
    assert "--speaker-names-file" in result.output and "is not LABEL=Name" in result.output


def test_log_level_configures_python_logging(tmp_path, monkeypatch):
    import logging

    import sanyu.cli.transcribe as transcribe

    monkeypatch.setattr(transcribe, "_transcribe_one", lambda *args: transcribe.FileOutcome("x"))
    clip = tmp_path / "a.wav"
    clip.write_bytes(b"x")
    root, sanyu_logger = logging.getLogger(), logging.getLogger("sanyu")
    saved = (root.level, sanyu_logger.level, list(root.handlers))
    try:
        result = CliRunner().invoke(main, ["transcribe", str(clip), "-o", str(tmp_path), "--log-level", "debug"])
        assert result.exit_code == 0, result.output
        assert sanyu_logger.getEffectiveLevel() == logging.DEBUG
        assert sum(getattr(h, "_sanyu", False) for h in root.handlers) == 1
        CliRunner().invoke(main, ["transcribe", str(clip), "-o", str(tmp_path), "--log-level", "info"])
        assert sum(getattr(h, "_sanyu", False) for h in root.handlers) == 1  # configured once
        assert sanyu_logger.getEffectiveLevel() == logging.INFO
    finally:
        root.setLevel(saved[0])
        sanyu_logger.setLevel(saved[1])
        root.handlers[:] = saved[2]


@pytest.mark.slow
def test_same_file_names_in_different_folders_give_three_transcripts(tmp_path):
    clip = eval_clip("en/en_speechrecognition_english.wav")
    inputs = [tmp_path / "x" / "a.wav", tmp_path / "y" / "a.wav", tmp_path / "a-2.wav"]
    for path in inputs:
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(clip.read_bytes())
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["transcribe", *map(str, inputs), "-o", str(out), "-f", "txt",
                                       "--beam-size", "1", "--language", "en"])
    assert result.exit_code == 0, result.output
    written = sorted(out.iterdir())
    assert len(written) == 3 and all(p.read_text().strip() for p in written)
    assert [p.name.rsplit("-", 1)[0] for p in written] == ["a-2", "x__a", "y__a"]


def test_names_and_reasons_are_printed_as_they_are(tmp_path):
    # Square brackets in a file name or in an error are text, not console markup: "[draft]"
    # must not vanish, and "[/x]" in a reason must not stop the run with a markup error.
    for name in ("a.wav", "Meeting [draft].wav"):
        (tmp_path / name).write_bytes(b"not audio at all" * 4)
    manifest = tmp_path / "m.csv"
    manifest.write_text("path,num_speakers\na.wav,[/x]\nMeeting [draft].wav,\n", encoding="utf-8")
    result = CliRunner().invoke(main, ["transcribe", str(manifest), "-o", str(tmp_path / "out")])
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit), result.output
    output = result.output.replace("\n", "")
    assert "[/x]" in output and "Meeting [draft].wav" in output, result.output
    assert "0 ok, 2 failed" in output, result.output
