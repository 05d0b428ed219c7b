"""#15 case 6: resuming never joins another run's pieces, result keys hold every setting that
changes a transcript, and one output takes one batch run at a time. On the real batch job (a
local Ray, real recordings) where it matters."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sanyu.options import ModelOptions, TranscribeOptions, settings_key
from sanyu.runtime import set_offline_local_defaults
from test_batch import FAST, batch, clips, ray_local  # noqa: F401  (session fixtures)

REPO = Path(__file__).resolve().parents[1]
MEETING = ("en_jfk_whisper", "en_sensevoice_en", "en_jfk_whisper", "en_sensevoice_en",
           "en_jfk_whisper", "en_sensevoice_en")


def _segments_between(transcript, start: float, end: float):
    from sanyu.schema import Transcript

    segments = [s for s in transcript.segments if start <= s.start < end]
    return Transcript(source=transcript.source, duration=round(end - start, 3), segments=segments,
                      model=transcript.model, languages=transcript.languages, speakers=[],
                      options=transcript.options)


def test_pieces_of_a_killed_run_with_another_piece_length_are_never_joined(ray_local, clips, tmp_path):  # noqa: F811
    """A run with 30 s pieces killed after storing its first and last piece; the next run
    (20 s pieces) must transcribe the whole recording, not join those with its own."""
    from sanyu.evaluation.dataset import join_clips
    from sanyu.storage import Storage

    recording = tmp_path / "in" / "meeting.wav"
    recording.parent.mkdir()
    parts = join_clips([clips[name] for name in MEETING], recording, gap_s=1.5)
    total = parts[-1].end + 1.5
    out = tmp_path / "out"

    first = batch(str(recording), out, piece_seconds=30.0)
    assert first.failed == 0
    [stem] = [f.stem for f in first.files]
    storage = Storage(str(out))
    killed_key = storage.done_record(stem)["key"]
    whole = storage.read_transcript(stem=stem)
    assert whole.segments[-1].end > total - 15
    # What a run killed mid-way leaves: no done-marker, no files, two of its three parts.
    storage.write_part(stem, killed_key, 0, False, _segments_between(whole, 0.0, 30.0))
    storage.write_part(stem, killed_key, 2, True, _segments_between(whole, 60.0, total))
    storage.delete(f"_sanyu/done/{stem}.json")
    for fmt in ("txt", "srt", "json"):
        storage.delete(f"{stem}.{fmt}")

    second = batch(str(recording), out, piece_seconds=20.0)
    assert second.failed == 0 and [f.status for f in second.files] == ["ok"]
    record = storage.done_record(stem)
    assert record["key"] != killed_key  # the piece length is part of the key
    assert record["duration"] == pytest.approx(total, abs=1.0)
    transcript = storage.read_transcript(stem=stem)
    # Speech from every part of the recording, none missing: each of the two sentences said three
    # times (counted in the text: a piece short enough to decode whole keeps Whisper's own, coarser
    # segment times).
    said = transcript.text.lower()
    assert said.count("americans") == 3 and said.count("gold") == 3, [
        (s.start, s.end, s.text) for s in transcript.segments]
    assert storage.listdir("_sanyu/parts") == []

    third = batch(str(recording), out, piece_seconds=20.0)
    assert [f.status for f in third.files] == ["skipped"]


def test_result_keys_hold_compute_type_model_content_and_piece_length(tmp_path):
    from sanyu.models.fingerprint import content_id, result_fingerprint

    options = TranscribeOptions()
    base = settings_key(ModelOptions(), options, result_fingerprint("base", "int8", 600))
    assert base == settings_key(ModelOptions(), options, result_fingerprint("base", "int8", 600))
    assert base != settings_key(ModelOptions(compute_type="int8_float32"), options,
                                result_fingerprint("base", "int8", 600))
    assert base != settings_key(ModelOptions(), options, result_fingerprint("base", "float32", 600))
    assert base != settings_key(ModelOptions(), options, result_fingerprint("base", "int8", 300))

    model = tmp_path / "model"  # a local model directory: its content, not its name
    model.mkdir()
    (model / "model.bin").write_bytes(b"weights one")
    (model / "config.json").write_text("{}")
    first = content_id(str(model))
    assert first == content_id(str(model)) and first.startswith("dir:")
    (model / "model.bin").write_bytes(b"weights two")
    assert content_id(str(model)) != first
    assert content_id("base").startswith("registered:")


def test_a_second_run_on_the_same_output_refuses_while_the_first_holds_it(ray_local, clips, tmp_path):  # noqa: F811
    from sanyu.lock import OutputBusy

    out = tmp_path / "out"
    env = dict(os.environ)
    set_offline_local_defaults(env)
    holder = subprocess.Popen(  # holds the lock the way a running `sanyu batch` does
        [sys.executable, "-c", "import sys, time; from sanyu.lock import OutputLock; "
         "from sanyu.storage import Storage; lock = OutputLock(Storage(sys.argv[1]), 'first-run')"
         ".acquire(); print('held', flush=True); time.sleep(120)", str(out)],
        cwd=REPO, env=env, stdout=subprocess.PIPE, text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        stray = out / ".a.wav.txt.1234.tmp"  # a temporary file of the first run, mid-write
        stray.write_text("partial")
        with pytest.raises(OutputBusy, match=f"pid {holder.pid}"):
            batch(str(clips["en_jfk_whisper"].path), out)
        assert stray.exists()  # the second run touched nothing
        cli = subprocess.run(
            [sys.executable, "-m", "sanyu.cli", "batch", str(clips["en_jfk_whisper"].path), "-o",
             str(out), "--no-progress"], cwd=REPO, env=env, capture_output=True, text=True, timeout=120,
        )
        assert cli.returncode == 1 and "another sanyu batch is writing to this output" in cli.stderr
    finally:
        holder.kill()
        holder.wait()
    time.sleep(0.2)  # the kernel drops the dead holder's lock: the next run goes ahead
    summary = batch(str(clips["en_jfk_whisper"].path), out)
    assert summary.failed == 0 and not stray.exists()
