"""The results layout (sanyu.storage) (done-markers, errors, index, pieces) and input listing, on a local
folder and on a real S3-compatible server process (moto) on 127.0.0.1. No models, no Ray."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from conftest import read_errors, read_index, read_summary
from sanyu.inputs import list_inputs, local_copy
from sanyu.storage import Storage, content_hash, result_key
from sanyu.schema import Segment, Transcript, Word

BUCKET = "sanyu-test"


# ---- a real S3-compatible server on loopback ----------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_for(url: str, process: subprocess.Popen, log_name: str) -> None:
    deadline = time.time() + 60
    while True:
        try:
            urllib.request.urlopen(url, timeout=2).read()
            return
        except OSError:
            if process.poll() is not None or time.time() > deadline:
                pytest.fail(f"moto_server did not start (see {log_name})")
            time.sleep(0.2)


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory):
    """moto's standalone server in a subprocess on 127.0.0.1; yields fsspec storage options."""
    executable = Path(sys.executable).with_name("moto_server")
    if not executable.exists():
        pytest.skip("moto_server is not installed (pip install 'moto[server]')")
    port = _free_port()
    log = open(tmp_path_factory.mktemp("moto") / "moto.log", "wb")
    env = {**os.environ, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
    process = subprocess.Popen(
        [str(executable), "-H", "127.0.0.1", "-p", str(port)], stdout=log, stderr=log, env=env
    )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_for(url, process, log.name)
        import boto3

        boto3.client(
            "s3", endpoint_url=url, aws_access_key_id="testing", aws_secret_access_key="testing",
            region_name="us-east-1",
        ).create_bucket(Bucket=BUCKET)
    except BaseException:
        process.kill()
        process.wait()
        log.close()
        raise
    options = {
        "endpoint_url": url,
        "key": "testing",
        "secret": "testing",
        "client_kwargs": {"region_name": "us-east-1"},
    }
    try:
        yield options
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()


def s3fs_of(options):
    import fsspec

    return fsspec.filesystem("s3", **options)


# ---- helpers ---------------------------------------------------------------------------------


def sample_transcript(source: str = "meeting.wav", text: str = "你好 world") -> Transcript:
    return Transcript(
        source=source,
        duration=12.5,
        segments=[
            Segment(0.5, 2.0, text, "yue", [Word(0.5, 1.0, "你好"), Word(1.1, 2.0, " world")],
                    speaker="SPEAKER_00"),
            Segment(3.0, 4.5, "second line", "en", speaker="SPEAKER_01"),
        ],
        model="base",
        languages=["yue", "en"],
        speakers=["SPEAKER_00", "SPEAKER_01"],
    )


KEY = result_key("a" * 64, "0123456789abcdef")
KEY2 = result_key("b" * 64, "0123456789abcdef")


@pytest.fixture(params=["local", "s3"])
def storage(request, tmp_path):
    if request.param == "local":
        return Storage(tmp_path / "out")
    options = request.getfixturevalue("s3_server")
    return Storage(f"s3://{BUCKET}/{tmp_path.name}/out", options)


def listing(storage: Storage) -> set[str]:
    """Every file under the storage root, relative, '/'-separated."""
    if storage.is_local:
        root = Path(storage.root)
        return {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()}
    fs = storage.fs
    fs.invalidate_cache()
    return {p[len(storage.root) + 1:] for p in fs.find(storage.root)}


# ---- results ---------------------------------------------------------------------------------


def test_write_result_lays_out_files_and_marks_done_last(storage):
    stem = "meeting-0123456789ab"
    assert not storage.is_done(stem, KEY, ["txt"])
    record = storage.write_result(stem, KEY, sample_transcript(), ["txt", "srt", "json"],
                                  speaker_names=["Chair"], input_path="in/meeting.wav", run_id="r1")
    files = listing(storage)
    assert {f"{stem}.txt", f"{stem}.srt", f"{stem}.json", f"_sanyu/done/{stem}.json",
            f"_sanyu/transcripts/{KEY}.json", f"_sanyu/segments/{stem}.parquet"} <= files
    assert not any(name.endswith(".tmp") for name in files)
    assert record["key"] == KEY and record["formats"] == ["txt", "srt", "json"]
    assert record["input"] == "in/meeting.wav" and record["run_id"] == "r1"
    assert len(record["outputs"]) == 3
    assert "[00:00:00] Chair:" in storage.get(f"{stem}.txt").decode()
    # Done only for the same key, for formats it wrote, and while its files exist.
    assert storage.is_done(stem, KEY, ["txt", "json"])
    assert not storage.is_done(stem, KEY2, ["txt"])
    assert not storage.is_done(stem, KEY, ["vtt"])
    storage.delete(f"{stem}.srt")
    assert not storage.is_done(stem, KEY, ["srt"])
    # The transcript reads back by key or by stem.
    assert storage.read_transcript(KEY).text == sample_transcript().text
    assert storage.read_transcript(stem=stem).segments[0].speaker == "SPEAKER_00"
    assert storage.read_transcript(stem="other-0123456789ab") is None


def test_reuse_result_renders_a_stored_transcript_under_a_new_name(storage):
    storage.write_result("a-000000000001", KEY, sample_transcript("a.wav"), ["json"])
    record = storage.reuse_result("b-000000000002", KEY, ["txt", "json"], input_path="b.wav")
    assert record["reused"] is True
    assert storage.is_done("b-000000000002", KEY, ["txt", "json"])
    assert json.loads(storage.get("b-000000000002.json"))["source"] == "b.wav"
    assert storage.reuse_result("c-000000000003", KEY2, ["txt"]) is None


def test_errors_are_recorded_and_cleared_by_a_later_success(storage):
    stem = "bad-0123456789ab"
    storage.write_error(stem, "in/bad.wav", "decode", "not audio", key=KEY, run_id="r1")
    assert storage.error_record(stem)["stage"] == "decode"
    storage.write_errors([storage.error_record(stem)])
    errors = read_errors(storage)
    assert [(e["path"], e["stage"], e["reason"]) for e in errors] == [("in/bad.wav", "decode", "not audio")]
    storage.write_result(stem, KEY, sample_transcript(), ["txt"])
    assert storage.error_record(stem) is None


def test_index_holds_every_segment_of_the_given_stems(storage):
    storage.write_result("one-000000000001", KEY, sample_transcript("one.wav"), ["txt"], input_path="one.wav")
    storage.write_result("two-000000000002", KEY2, sample_transcript("two.wav", "bye"), ["txt"],
                         input_path="two.wav")
    storage.write_index(["one-000000000001", "two-000000000002", "never-done-000000000003"])
    table = read_index(storage)
    assert table.column_names == ["file", "stem", "key", "segment", "start", "end", "speaker",
                                  "language", "text"]
    rows = table.to_pylist()
    assert len(rows) == 4
    assert rows[0] == {"file": "one.wav", "stem": "one-000000000001", "key": KEY, "segment": 0,
                       "start": 0.5, "end": 2.0, "speaker": "SPEAKER_00", "language": "yue",
                       "text": "你好 world"}
    assert rows[3]["file"] == "two.wav" and rows[3]["text"] == "second line"
    storage.write_index([])
    assert read_index(storage).num_rows == 0


def test_pieces_are_complete_only_when_every_one_and_the_last_exist(storage):
    piece = sample_transcript()
    storage.write_part("one", KEY, 1, False, piece)
    assert storage.complete_parts("one", KEY) is None
    storage.write_part("one", KEY, 2, True, piece)
    assert storage.complete_parts("one", KEY) is None  # piece 0 missing
    storage.write_part("one", KEY, 0, False, piece)
    parts = storage.complete_parts("one", KEY)
    assert [(p.index, p.last) for p in parts] == [(0, False), (1, False), (2, True)]
    storage.delete_parts("one", KEY)
    assert storage.complete_parts("one", KEY) is None
    assert not any("/parts/" in name for name in listing(storage))


def test_two_inputs_with_the_same_bytes_keep_their_pieces_apart(storage):
    # Two copies of one recording in a run have one result key; their pieces arrive interleaved,
    # and the copy finished first removes its pieces while the other still needs its own.
    a, b = sample_transcript(), sample_transcript()
    b.segments = b.segments[:1]
    storage.write_part("copy-a", KEY, 0, False, a)
    storage.write_part("copy-b", KEY, 0, False, b)
    storage.write_part("copy-a", KEY, 1, True, a)
    assert [len(p.transcript.segments) for p in storage.complete_parts("copy-a", KEY)] == [2, 2]
    assert storage.complete_parts("copy-b", KEY) is None
    storage.delete_parts("copy-a", KEY)
    storage.write_part("copy-b", KEY, 1, True, b)
    assert [len(p.transcript.segments) for p in storage.complete_parts("copy-b", KEY)] == [1, 1]
    assert storage.clear_parts() == 1
    assert storage.complete_parts("copy-b", KEY) is None


def test_summary_round_trips(storage):
    storage.write_summary({"files": 3, "failed": 1})
    assert read_summary(storage) == {"files": 3, "failed": 1}


def test_unsafe_stems_and_keys_are_refused(tmp_path):
    storage = Storage(tmp_path)
    for stem in ("../x", "a/b", "", ".hidden", "_sanyu", "a\0b"):
        with pytest.raises(ValueError):
            storage.write_result(stem, KEY, sample_transcript(), ["txt"])
    with pytest.raises(ValueError):
        storage.read_transcript("../../etc/passwd")
    assert list(tmp_path.iterdir()) == []


def test_local_writes_are_atomic_and_stale_temporaries_are_cleaned(tmp_path, monkeypatch):
    storage = Storage(tmp_path)
    storage.put("a.txt", b"old")
    stale = tmp_path / ".a.txt.x1y2.tmp"
    stale.write_bytes(b"half")

    def boom(fd):  # the process dies between writing the temporary file and renaming it
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "fsync", boom)
    with pytest.raises(KeyboardInterrupt):
        storage.put("a.txt", b"new")
    monkeypatch.undo()
    assert (tmp_path / "a.txt").read_bytes() == b"old"
    assert storage.cleanup_temp() == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt"]


# ---- listing inputs --------------------------------------------------------------------------


def make_tree(root: Path) -> None:
    (root / "sub" / "deeper").mkdir(parents=True)
    for name in ("a.wav", "B.MP3", "notes.txt", "sub/c.flac", "sub/deeper/d.m4a", "sub/x.json",
                 "a b.wav", "a_b.wav"):
        (root / name).write_bytes(b"x" * 10)
    (root / "dir.wav").mkdir()  # a folder with an audio extension is not an input


def test_directory_listing_is_recursive_by_extension_with_unique_stable_stems(tmp_path):
    make_tree(tmp_path / "in")
    items = list_inputs(str(tmp_path / "in"))
    names = sorted(Path(i.uri).relative_to(tmp_path / "in").as_posix() for i in items)
    assert names == ["B.MP3", "a b.wav", "a.wav", "a_b.wav", "sub/c.flac", "sub/deeper/d.m4a"]
    stems = [i.stem for i in items]
    assert len(set(stems)) == len(stems)
    assert all(i.size == 10 for i in items)
    # The same tree elsewhere (or listed by a relative path) gives the same stems.
    shutil.copytree(tmp_path / "in", tmp_path / "moved")
    assert sorted(i.stem for i in list_inputs(str(tmp_path / "moved"))) == sorted(stems)


def test_glob_listing(tmp_path):
    make_tree(tmp_path / "in")
    items = list_inputs(str(tmp_path / "in" / "**" / "*.flac"))
    assert [Path(i.uri).name for i in items] == ["c.flac"]
    assert items[0].stem.startswith("sub__c-")


def test_manifests_give_per_input_settings_and_report_bad_rows(tmp_path):
    make_tree(tmp_path / "in")
    (tmp_path / "in" / "list.csv").write_text(
        "path,language,num_speakers\na.wav,Cantonese,2\nsub/c.flac,,\n,en,\nB.MP3,en,zero\n"
        "sub/deeper/d.m4a,klingon,\n", encoding="utf-8"
    )
    items = list_inputs(str(tmp_path / "in" / "list.csv"))
    assert [(Path(i.uri).name, i.language, i.num_speakers, bool(i.problem)) for i in items] == [
        ("a.wav", "yue", 2, False), ("c.flac", None, None, False), ("list.csv line 4", None, None, True),
        ("B.MP3", None, None, True), ("d.m4a", None, None, True),
    ]
    assert "no path" in items[2].problem and "num_speakers" in items[3].problem
    assert "unsupported language 'klingon'" in items[4].problem
    assert os.path.isabs(items[0].uri)
    (tmp_path / "m.jsonl").write_text(
        json.dumps({"path": str(tmp_path / "in" / "a.wav"), "language": "zh"}) + "\n\nnot json\n",
        encoding="utf-8",
    )
    items = list_inputs(str(tmp_path / "m.jsonl"))
    assert items[0].language == "zh" and items[0].problem is None
    assert "not valid JSON" in items[1].problem


def test_missing_input_is_an_error(tmp_path):
    with pytest.raises(FileNotFoundError):
        list_inputs(str(tmp_path / "nothing-here"))


def test_s3_prefix_listing_and_download(tmp_path, s3_server):
    fs = s3fs_of(s3_server)
    prefix = f"{BUCKET}/{tmp_path.name}/in"
    fs.pipe({f"{prefix}/a.wav": b"aaa", f"{prefix}/sub/b.flac": b"bb", f"{prefix}/readme.txt": b"r"})
    items = list_inputs(f"s3://{prefix}/", s3_server)
    assert [i.uri for i in items] == [f"s3://{prefix}/a.wav", f"s3://{prefix}/sub/b.flac"]
    assert [i.size for i in items] == [3, 2]
    # The same relative layout gives the same stems as a local folder.
    (tmp_path / "local" / "sub").mkdir(parents=True)
    (tmp_path / "local" / "a.wav").write_bytes(b"aaa")
    (tmp_path / "local" / "sub" / "b.flac").write_bytes(b"bb")
    assert [i.stem for i in items] == [i.stem for i in list_inputs(str(tmp_path / "local"))]
    with local_copy(items[0].uri, s3_server) as path:
        assert Path(path).read_bytes() == b"aaa"
        assert content_hash(path) == content_hash(str(tmp_path / "local" / "a.wav"))
    assert not Path(path).exists()  # the download is removed afterwards
    globbed = list_inputs(f"s3://{prefix}/sub/*.flac", s3_server)
    assert [i.uri for i in globbed] == [f"s3://{prefix}/sub/b.flac"]


def test_new_files_follow_the_umask_and_rewritten_ones_keep_their_mode(tmp_path):
    """#15 case 7: results were forced to 0644 whatever the umask (readable by every user on a
    machine whose administrator set 077)."""
    script = ("import os, sys; os.umask(int(sys.argv[2], 8)); from sanyu.location import Location; "
              "Location(sys.argv[1]).put('a/new.txt', b'x')")
    for umask, mode in (("077", 0o600), ("002", 0o664), ("022", 0o644)):
        target = tmp_path / umask
        subprocess.run([sys.executable, "-c", script, str(target), umask], check=True)
        assert os.stat(target / "a" / "new.txt").st_mode & 0o777 == mode, umask
    kept = tmp_path / "077" / "a" / "new.txt"
    os.chmod(kept, 0o640)
    subprocess.run([sys.executable, "-c", script, str(tmp_path / "077"), "022"], check=True)
    assert os.stat(kept).st_mode & 0o777 == 0o640


def test_transcript_files_go_to_the_s3_endpoint_given(s3_server):
    # `sanyu transcribe -o s3://... --storage-option endpoint_url=...`: the files reach that
    # server, not the default S3 endpoint.
    from sanyu.output.writers import write_outputs

    paths = write_outputs(sample_transcript(), f"s3://{BUCKET}/single", "meeting", ["txt", "json"],
                          storage_options=s3_server)
    assert paths == [f"s3://{BUCKET}/single/meeting.txt", f"s3://{BUCKET}/single/meeting.json"]
    fs = s3fs_of(s3_server)
    assert Transcript.from_json(fs.cat_file(f"{BUCKET}/single/meeting.json").decode()) == sample_transcript()
