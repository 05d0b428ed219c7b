"""The Ray Data batch job on a real local Ray cluster (127.0.0.1 only) and real recordings:
every input accounted for, resuming after kill -9, worker crashes, local vs S3, long inputs."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import read_errors, read_index
from process_watch import is_loopback, listening_addresses
from sanyu.processes import descendants
from sanyu.options import ModelOptions, TranscribeOptions
from sanyu.runtime import set_offline_local_defaults

from test_storage import BUCKET, s3_server, s3fs_of  # noqa: E402,F401  (the moto server fixture)

REPO = Path(__file__).resolve().parents[1]
# Accuracy is not the point here: greedy decoding, no word timestamps, no Cantonese re-decoding.
FAST = TranscribeOptions(beam_size=1, word_timestamps=False, candidate_languages=("zh", "en"))
FORMATS = ("txt", "srt", "json")


def batch(inputs, output, options=FAST, formats=FORMATS, **settings):
    """`run_batch` with these settings, quietly."""
    from sanyu.pipeline.driver import run_batch
    from sanyu.pipeline.settings import BatchSettings

    return run_batch(inputs, BatchSettings(output=str(output), options=options, formats=tuple(formats),
                                           progress=False, **settings))


# ---- fixtures --------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def clips(shared_eval):
    from sanyu.evaluation.dataset import load_clips

    return {clip.name: clip for clip in load_clips(shared_eval)}


@pytest.fixture(scope="session")
def ray_local():
    """One local Ray for the session, started the way `sanyu batch` starts it."""
    import ray

    from sanyu.cluster import connect

    started = connect(None, forward_worker_logs=False)
    yield ray
    if started:
        ray.shutdown()


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_local_ray_listens_on_loopback_only(ray_local):
    pids = descendants(os.getpid())
    addresses = listening_addresses(pids | {os.getpid()})
    if not pids or not addresses:
        pytest.skip("this Ray was not started by this test session")
    assert all(is_loopback(a) for a in addresses), addresses


# ---- inputs ----------------------------------------------------------------------------------


def write_silence(path: Path, seconds: float) -> Path:
    from sanyu.evaluation.dataset import write_wav

    write_wav(path, np.zeros(int(seconds * 16000), dtype=np.float32))
    return path


HOSTILE = [
    "-rf --no-preserve-root.wav",
    "$(touch pwned); `id`.wav",
    "new\nline.wav",
    "..\u202eevil.wav",
    "會議記錄" * 20 + ".wav",
    os.fsdecode(b"bad-\xff\xfe-utf8.wav"),
    "CON.wav",
    "a b.wav",
    "a_b.wav",
    " leading space.flac",
    "quote\"'<>|.wav",
]
BAD = {"corrupt.wav": "truncated", "garbage.flac": "decod", "empty.wav": "empty",
       "notaudio.mp3": "readable"}
LONG_PARTS = ("en_jfk_whisper", "en_sensevoice_en")


def shortest_clips(clips, count: int):
    import csv

    with open(next(iter(clips.values())).path.parents[1] / "MANIFEST.tsv", newline="", encoding="utf-8") as handle:
        durations = {Path(row["file"]).stem: float(row["duration_s"])
                     for row in csv.DictReader(handle, delimiter="\t")}
    usable = [c for c in clips.values() if c.path.parent.name in ("en", "zh", "yue") and c.name in durations]
    return sorted(usable, key=lambda c: (durations[c.name], c.name))[:count]


def build_batch(root: Path, clips) -> dict:
    """33 inputs: 16 real clips, 11 two-second slices of speech under hostile names, silence,
    4 broken files, and one recording long enough (20 s) to go in pieces of 6 s."""
    from sanyu.audio import decode_audio
    from sanyu.evaluation.dataset import join_clips, write_wav

    chosen = shortest_clips(clips, 16)
    for clip in chosen:
        (root / clip.path.parent.name).mkdir(parents=True, exist_ok=True)
        shutil.copy(clip.path, root / clip.path.parent.name / clip.path.name)
    hostile_dir = root / "hostile names"
    hostile_dir.mkdir()
    for name, clip in zip(HOSTILE, chosen[-11:]):
        samples = decode_audio(clip.path).samples
        write_wav(hostile_dir / name, samples[8000:40000])  # WAV data, whatever the name says
    bad_dir = root / "bad"
    bad_dir.mkdir()
    (bad_dir / "corrupt.wav").write_bytes(clips["yue_sherpa_yue-6"].path.read_bytes()[:20000])
    (bad_dir / "garbage.flac").write_bytes(np.random.default_rng(0).bytes(50_000))
    (bad_dir / "empty.wav").write_bytes(b"")
    (bad_dir / "notaudio.mp3").write_text("this is not audio\n")
    write_silence(root / "silent.wav", 5.0)
    parts = join_clips([clips[name] for name in LONG_PARTS], root / "long.wav", gap_s=1.0)
    return {"chosen": chosen, "long_parts": parts}


def outputs_of(out: Path) -> dict[str, tuple[bytes, int]]:
    """Every file under ``out`` but the per-run dataset files (and the lock a run holds):
    bytes and mtime."""
    skip = {"index.parquet", "errors.jsonl", "summary.json", "lock"}
    return {
        p.relative_to(out).as_posix(): (p.read_bytes(), p.stat().st_mtime_ns)
        for p in out.rglob("*")
        if p.is_file() and p.name not in skip and p.parent.name != "errors"
    }


# ---- the big batch ---------------------------------------------------------------------------


def test_batch_of_33_accounts_for_every_input_then_resumes(ray_local, clips, tmp_path):
    from sanyu.evaluation.text import score
    from sanyu.inputs import list_inputs
    from sanyu.storage import Storage

    inputs, out = tmp_path / "in", tmp_path / "out"
    built = build_batch(inputs, clips)
    items = list_inputs(str(inputs))
    assert len(items) == 33

    summary = batch(str(inputs), out, piece_seconds=6.0)
    assert [f.stem for f in summary.files] == [item.stem for item in items]
    by_name = {Path(item.uri).name: f for item, f in zip(items, summary.files)}
    assert len(summary.files) == 33 and summary.ok + summary.failed == 33
    failed = {Path(f.path).name: f for f in summary.files if f.status == "failed"}
    assert set(failed) == set(BAD)
    for name, word in BAD.items():
        assert failed[name].stage == "decode" and word in failed[name].reason, failed[name]
    assert by_name["silent.wav"].status == "ok"

    storage = Storage(str(out))
    names = {p.name for p in out.iterdir()}
    for f in summary.files:
        if f.status == "ok":
            assert storage.done_record(f.stem)["key"] == f.key
            assert {f"{f.stem}.{fmt}" for fmt in FORMATS} <= names
        else:
            assert storage.done_record(f.stem) is None
            assert storage.error_record(f.stem)["stage"] == "decode"
    # Output names are safe whatever the input was called, and never collide.
    assert len({f.stem for f in summary.files}) == 33
    for name in names:
        assert "\n" not in name and not name.startswith(("-", " ")) and len(name.encode()) <= 255
        name.encode("utf-8")  # valid UTF-8 even for an input name that is not
    # The errors file lists exactly the failures; the index every segment of the rest.
    errors = read_errors(storage)
    assert sorted(Path(e["path"]).name for e in errors) == sorted(BAD)
    assert {e["stage"] for e in errors} == {"decode"}
    index = read_index(storage).to_pylist()
    ok_stems = {f.stem for f in summary.files if f.status == "ok"}
    assert {row["stem"] for row in index} <= ok_stems
    assert sum(storage.done_record(s)["segments"] for s in ok_stems) == len(index)
    assert json.loads((out / "summary.json").read_text())["failed"] == 4

    # Hostile names were transcribed like any other (each slice holds speech).
    hostile = [f for item, f in zip(items, summary.files) if "hostile names" in item.uri]
    assert len(hostile) == 11 and all(f.status == "ok" for f in hostile)
    assert sum(bool(storage.read_transcript(stem=f.stem).text) for f in hostile) >= 8

    # The long recording went through in pieces and came back whole, in order.
    long = storage.read_transcript(stem=by_name["long.wav"].stem)
    assert long.duration == pytest.approx(built["long_parts"][-1].end + 1.0, abs=0.1)
    starts = [s.start for s in long.segments]
    assert starts == sorted(starts) and long.segments[-1].end > 15
    reference = " ".join(p.reference for p in built["long_parts"])
    assert score(reference, long.text, "en").rate < 0.35, long.text

    # Re-run: nothing is done again but the failures; a transcript whose files went missing
    # is rendered again from the stored transcript, without a model.
    before = outputs_of(out)
    victim = by_name[built["chosen"][-1].path.name].stem
    (out / f"{victim}.srt").unlink()
    again = batch(str(inputs), out, piece_seconds=6.0)  # the piece length is part of the key
    assert (again.ok, again.reused, again.skipped, again.failed) == (0, 1, 28, 4)
    assert {f.stem for f in again.files if f.status == "failed"} == {
        f.stem for f in summary.files if f.status == "failed"}
    after = outputs_of(out)
    changed = {name for name in before if before[name] != after.get(name)}
    assert changed == {f"{victim}.{fmt}" for fmt in FORMATS} | {
        f"_sanyu/done/{victim}.json", f"_sanyu/segments/{victim}.parquet"}
    assert after[f"{victim}.json"][0] == before[f"{victim}.json"][0]  # same bytes
    assert after[f"{victim}.srt"][0] == before[f"{victim}.srt"][0]


def test_cli_exit_code_and_summary(ray_local, tmp_path):
    from click.testing import CliRunner

    from sanyu.cli import main

    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "broken.wav").write_text("not audio")
    result = CliRunner().invoke(main, ["batch", str(tmp_path / "in"), "-o", str(tmp_path / "out"),
                                       "-f", "txt", "--no-progress"])
    assert result.exit_code == 1, result.output
    assert "failed" in result.output and "broken.wav" in result.output
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert (summary["files"], summary["failed"]) == (1, 1)
    assert summary["failures"][0]["stage"] == "decode"
    result = CliRunner().invoke(main, ["batch", str(tmp_path / "nowhere"), "-o", str(tmp_path / "out")])
    assert result.exit_code == 2 and "nowhere" in result.output


def test_a_job_beside_other_work_on_the_cluster_runs_on_what_is_left(ray_local, clips, tmp_path):
    """An actor of something else (a Serve replica, another job) holds part of the CPUs: the job
    plans its workers on what is left instead of waiting for ever for what the actor keeps."""
    import threading

    @ray_local.remote(num_cpus=0.75)
    class Holder:
        def ping(self) -> int:
            return 1

    holder = Holder.remote()
    ray_local.get(holder.ping.remote())
    (tmp_path / "in").mkdir()
    shutil.copy(clips["en_jfk_whisper"].path, tmp_path / "in")
    done: list = []
    try:
        job = threading.Thread(target=lambda: done.append(batch(str(tmp_path / "in"), tmp_path / "out")),
                               daemon=True)
        job.start()
        job.join(timeout=300)
        assert done, "the job waited for CPUs another actor holds"
        assert (done[0].ok, done[0].failed) == (1, 0)
    finally:
        ray_local.kill(holder)


def test_transcribe_and_batch_name_the_same_inputs_alike(ray_local, clips, tmp_path):
    from click.testing import CliRunner

    from sanyu.cli import main

    inputs = tmp_path / "in"
    for name in ("x/a.wav", "y/a.wav"):
        (inputs / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(clips["en_speechrecognition_english"].path, inputs / name)
    common = ["-f", "txt,json", "--beam-size", "1", "--language", "en"]
    for command, extra in (("transcribe", []), ("batch", ["--no-progress"])):
        result = CliRunner().invoke(main, [command, str(inputs), "-o", str(tmp_path / command), *common, *extra])
        assert result.exit_code == 0, result.output

    def transcripts(out: Path) -> list[str]:
        return sorted(p.name for p in out.iterdir() if p.suffix in (".txt", ".json") and p.name != "summary.json")

    assert transcripts(tmp_path / "transcribe") == transcripts(tmp_path / "batch")
    assert len(transcripts(tmp_path / "batch")) == 4


# ---- kill -9 and resume ----------------------------------------------------------------------


def test_kill_9_mid_batch_then_rerun_loses_and_repeats_nothing_finished(ray_local, clips, tmp_path):
    from sanyu.storage import Storage

    inputs, out = tmp_path / "in", tmp_path / "out"
    inputs.mkdir()
    english = sorted((c for c in clips.values() if c.path.parent.name == "en"), key=lambda c: c.name)
    for clip in english:
        shutil.copy(clip.path, inputs / clip.path.name)
    env = dict(os.environ)
    set_offline_local_defaults(env)
    command = [sys.executable, "-m", "sanyu.cli", "batch", str(inputs), "-o", str(out),
               "--language", "en", "--beam-size", "1", "-f", "txt,json", "--files-per-batch", "1",
               "--workers", "1",
               "--no-progress"]
    log = open(tmp_path / "cli.log", "wb")
    process = subprocess.Popen(command, cwd=REPO, env=env, stdout=log, stderr=log, start_new_session=True)
    done_dir = out / "_sanyu" / "done"
    deadline = time.time() + 400
    try:
        while len(list(done_dir.glob("*.json"))) < 2:
            assert process.poll() is None, (tmp_path / "cli.log").read_text(errors="replace")[-3000:]
            assert time.time() < deadline, "no transcript finished in time"
            time.sleep(0.05)
        family = descendants(process.pid) | {process.pid}
        os.killpg(process.pid, signal.SIGKILL)
        for pid in family:  # Ray's processes of that run, wherever they went
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        process.wait(timeout=30)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
        log.close()
    time.sleep(1.0)
    assert not [pid for pid in family if _alive(pid)], "processes of the killed run survived"

    storage = Storage(str(out))
    finished = {p.stem for p in done_dir.glob("*.json")}
    assert 2 <= len(finished) < len(english), "the kill came too late to test anything"
    first_run = {stem: storage.done_record(stem)["run_id"] for stem in finished}
    before = {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in out.iterdir() if p.is_file()}

    summary = batch(str(inputs), out, TranscribeOptions(language="en", beam_size=1), ("txt", "json"),
                    files_per_batch=1)
    assert summary.failed == 0 and len(summary.files) == len(english)
    assert {f.stem for f in summary.files if f.status == "skipped"} == finished
    assert {f.stem for f in summary.files if f.status in ("ok", "reused")} == {
        f.stem for f in summary.files} - finished
    for stem in finished:  # untouched: same bytes, same mtime, the first run's marker
        for fmt in ("txt", "json"):
            name = f"{stem}.{fmt}"
            assert (out / name).read_bytes() == before[name][0]
            assert (out / name).stat().st_mtime_ns == before[name][1]
        assert storage.done_record(stem)["run_id"] == first_run[stem]
    for f in summary.files:
        if f.stem not in finished:
            assert storage.done_record(f.stem)["run_id"] == summary.run_id
    assert not list(out.rglob(".*.tmp"))


# ---- local and S3, and a worker crash ---------------------------------------------------------


def test_local_and_s3_give_the_same_transcripts_and_a_crashed_worker_is_retried(
    ray_local, clips, tmp_path, s3_server,  # noqa: F811  (the imported fixture)
):
    from sanyu.storage import Storage

    inputs = tmp_path / "in"
    (inputs / "sub").mkdir(parents=True)
    for name in ("en_jfk_whisper", "zh_aishell_BAC009S0724W0121"):
        shutil.copy(clips[name].path, inputs / clips[name].path.name)
    shutil.copy(clips["yue_sherpa_yue-0"].path, inputs / "sub" / "粵語 會議 1.wav")
    (inputs / "sub" / "broken.mp3").write_text("not audio")
    fs = s3fs_of(s3_server)
    prefix = f"{BUCKET}/{tmp_path.name}"
    fs.put(str(inputs), f"{prefix}/in", recursive=True)

    crash = tmp_path / "crashed"
    local = batch(str(inputs), tmp_path / "out", workers=1, crash_once=str(crash))
    assert crash.exists(), "the fault was not injected"
    remote = batch(f"s3://{prefix}/in/", f"s3://{prefix}/out", storage_options=s3_server)
    for summary in (local, remote):
        assert (summary.ok, summary.failed) == (3, 1)
    assert sorted((f.stem, f.status, f.stage) for f in local.files) == sorted(
        (f.stem, f.status, f.stage) for f in remote.files)

    local_store, remote_store = Storage(str(tmp_path / "out")), Storage(f"s3://{prefix}/out", s3_server)
    for f in local.files:
        if f.status != "ok":
            continue
        for fmt in ("txt", "srt"):
            assert local_store.get(f"{f.stem}.{fmt}") == remote_store.get(f"{f.stem}.{fmt}")
        a = json.loads(local_store.get(f"{f.stem}.json"))
        b = json.loads(remote_store.get(f"{f.stem}.json"))
        assert b["source"].startswith("s3://") and a["source"] == f.path
        a.pop("source"), b.pop("source")
        assert a == b
    order = [("stem", "ascending"), ("segment", "ascending")]
    assert read_index(local_store).drop_columns(["file"]).sort_by(order).equals(
        read_index(remote_store).drop_columns(["file"]).sort_by(order))
    [error] = read_errors(remote_store)
    assert error["path"].startswith("s3://") and error["stage"] == "decode"

    # The S3 re-run skips everything finished there.
    again = batch(f"s3://{prefix}/in/", f"s3://{prefix}/out", storage_options=s3_server)
    assert (again.ok, again.skipped, again.failed) == (0, 3, 1)


# ---- diarization of a long input, in pieces ----------------------------------------------------


def test_diarized_recording_in_pieces_gets_speakers_across_the_whole(ray_local, clips, tmp_path):
    """A real two-speaker recording in pieces: the stored transcript carries the diarizer's turns
    of the whole recording, with the segments' labels; RTTM and the minutes are made from it."""
    import io

    import docx

    from sanyu.audio import decode_audio
    from sanyu.evaluation.dataset import write_wav
    from sanyu.output import parse_rttm
    from sanyu.storage import Storage

    inputs = tmp_path / "in"
    inputs.mkdir()
    write_wav(inputs / "sample.wav", decode_audio(clips["pyannote_sample"].path).samples[: 20 * 16000])
    options = FAST.with_(diarize=True, word_timestamps=True, speaker_names=("SPEAKER_00=Diane",))
    summary = batch(str(inputs), tmp_path / "out", options, ("json", "rttm", "docx", "md"), piece_seconds=8.0)
    [result] = summary.files
    assert result.status == "ok", result
    transcript = Storage(str(tmp_path / "out")).read_transcript(stem=result.stem)
    assert len(transcript.speakers) >= 2
    assert all(segment.speaker for segment in transcript.segments)
    assert transcript.segments[-1].end > 16  # every piece is there
    # Turns of the whole recording (not of the first piece), under the segments' labels.
    turns = transcript.turns
    assert turns[0].start < 8.0 < turns[-1].end and turns[-1].end > 16
    assert {s.speaker for s in transcript.segments} <= {t.speaker for t in turns}
    rttm = (tmp_path / "out" / f"{result.stem}.rttm").read_text()
    assert parse_rttm(rttm) == turns
    document = docx.Document(io.BytesIO((tmp_path / "out" / f"{result.stem}.docx").read_bytes()))
    proceedings = [p.text for p in document.paragraphs if p.text.startswith("[00:00:")]
    assert len(proceedings) >= 3
    assert {p.split("] ", 1)[1].split(":")[0] for p in proceedings} == {"Diane", "SPEAKER_01"}
    assert "new jersey" in " ".join(proceedings).lower()
    markdown = (tmp_path / "out" / f"{result.stem}.md").read_text(encoding="utf-8")
    assert markdown.count("**\\[00:00:") == len(proceedings)


# ---- units: cutting long recordings -------------------------------------------------------------


def test_long_recordings_stream_in_pieces_cut_at_pauses(clips, tmp_path):
    from sanyu.audio import decode_audio
    from sanyu.evaluation.dataset import join_clips
    from sanyu.pieces import split_audio

    parts = join_clips([clips[name] for name in LONG_PARTS], tmp_path / "long.wav", gap_s=1.0)
    whole = decode_audio(tmp_path / "long.wav").samples
    pieces = list(split_audio(str(tmp_path / "long.wav"), piece_seconds=5.0))
    assert len(pieces) >= 3
    assert [p[0] for p in pieces] == list(range(len(pieces)))
    assert [p[1] for p in pieces] == [False] * (len(pieces) - 1) + [True]
    assert np.array_equal(np.concatenate([p[3] for p in pieces]), whole)  # nothing lost or doubled
    for (_, _, offset, samples), (_, _, next_offset, _) in zip(pieces, pieces[1:]):
        assert next_offset == pytest.approx(offset + len(samples) / 16000)
        assert 2.5 <= len(samples) / 16000 <= 6.25  # cut in the last half before 5 s
        cut = int(next_offset * 16000)
        around = whole[max(0, cut - 800): cut + 800]
        assert np.sqrt(np.mean(around ** 2)) < 0.02  # a pause, not the middle of a word
    assert parts[-1].end <= len(whole) / 16000

    # A file that ends early is an error, and never yields its last piece.
    data = (tmp_path / "long.wav").read_bytes()
    (tmp_path / "cut.wav").write_bytes(data[: len(data) * 9 // 20])  # 9 s of the 20 s it declares
    from sanyu.errors import AudioError

    seen = []
    with pytest.raises(AudioError, match="truncated"):
        for piece in split_audio(str(tmp_path / "cut.wav"), piece_seconds=3.0):
            seen.append(piece)
    assert seen and not any(last for _, last, _, _ in seen)


def test_per_input_manifest_settings_change_the_result_key(tmp_path):
    from sanyu.inputs import InputItem
    from sanyu.pipeline.driver import input_rows

    rows = input_rows(
        [InputItem("a.wav", "a-1", language="yue", num_speakers=3), InputItem("b.wav", "b-1")],
        TranscribeOptions(language="auto"),
    )
    a, b = (TranscribeOptions.from_dict(json.loads(r["options"])) for r in rows)
    assert (a.language, a.num_speakers, b.language, b.num_speakers) == ("yue", 3, "auto", None)
    from sanyu.options import settings_key

    assert settings_key(ModelOptions(), a) != settings_key(ModelOptions(), b)
