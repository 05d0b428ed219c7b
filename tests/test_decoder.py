"""The one decoder under hostile and careless inputs: lying headers, playlists, FIFOs, hung or
cancelled ffmpeg, awkward names; real ffmpeg on files generated here, no models."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import tempfile
import threading
import time
import tracemalloc
from pathlib import Path

import numpy as np
import pytest

from abuse_cases import flac_declaring
from conftest import eval_clip, write_wav
from sanyu.audio import (
    SAMPLE_RATE,
    Cancel,
    MediaFile,
    decode_audio,
    decode_audio_async,
    probe,
    stream_audio,
)
from sanyu.errors import AudioError, DecodeCancelled

BYTES_PER_SECOND = SAMPLE_RATE * 4  # float32 mono


def ffmpeg(*args: str) -> None:
    subprocess.run(["ffmpeg", "-nostdin", "-loglevel", "error", "-y", *args], check=True)


@pytest.fixture(scope="module")
def long_silence(tmp_path_factory) -> Path:
    """30 minutes of 48 kHz stereo silence: a few hundred KB of FLAC, about a second of work
    for ffmpeg (resampling included), so a running ffmpeg can be caught and stopped."""
    path = tmp_path_factory.mktemp("long") / "silence.flac"
    ffmpeg("-f", "lavfi", "-i", "anullsrc=r=48000:cl=stereo", "-t", "1800", "-c:a", "flac", str(path))
    return path


# ---- our children -------------------------------------------------------------------------------


def ffmpeg_children() -> dict[int, str]:
    """ffmpeg/ffprobe processes whose parent is this test process (zombies included: a child
    that was killed but never reaped counts as left behind)."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            status = dict(
                line.split(":\t", 1) for line in (entry / "status").read_text().splitlines() if ":\t" in line
            )
        except OSError:
            continue
        if int(status.get("PPid", "0")) == os.getpid() and status.get("Name") in ("ffmpeg", "ffprobe"):
            found[int(entry.name)] = f"{status['Name']} {status['State'].strip()}"
    return found


@pytest.fixture
def children(tmp_path, monkeypatch):
    """Checks that a test starts with no ffmpeg children, and kills any it leaves (the old
    decoder left stopped ones), after the test has made its own assertions; and that the
    decoder's private links to open files are all removed."""
    assert ffmpeg_children() == {}
    links = tmp_path / "tmp"
    links.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(links))
    yield ffmpeg_children
    for pid in ffmpeg_children():
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    assert list(links.iterdir()) == []


def catch_ffmpeg(then=None, seconds: float = 20.0) -> threading.Thread:
    """A thread that waits for this process's ffmpeg child, stops it (SIGSTOP: a hung decoder
    that writes nothing more), and then calls ``then(pid)``."""

    def watch():
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            for pid, what in ffmpeg_children().items():
                if what.startswith("ffmpeg ") and " Z" not in what:
                    try:
                        os.kill(pid, signal.SIGSTOP)
                    except ProcessLookupError:  # it finished first
                        continue
                    if then is not None:
                        then(pid)
                    return
            time.sleep(0.002)

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return thread


def finishes_within(seconds: float, function):
    """``function()``'s result or exception, or a failure if it has not returned in time (the
    stopped ffmpeg is then killed, so that a hanging decoder does not hang the suite)."""
    box: dict = {}

    def run():
        try:
            box["result"] = function()
        except BaseException as exc:  # noqa: BLE001
            box["error"] = exc

    thread = threading.Thread(target=run, daemon=True)
    started = time.monotonic()
    thread.start()
    thread.join(seconds)
    if thread.is_alive():
        for pid in ffmpeg_children():
            os.kill(pid, signal.SIGKILL)
        thread.join(10)
        pytest.fail(f"still decoding after {seconds} s: the caller hangs")
    return box, time.monotonic() - started


# ---- length: a header that lies ------------------------------------------------------------------


def test_header_declaring_less_than_it_holds_is_refused_in_bounded_memory(tmp_path, children):
    # 30 minutes of silence whose header says 60 s, against a 120 s limit: the old decoder took
    # the header's word and decoded all 30 minutes (115 MB of float32) into memory.
    path = tmp_path / "lying.flac"
    ffmpeg("-f", "lavfi", "-i", "anullsrc=r=16000:cl=mono", "-t", "1800", "-c:a", "flac", str(path))
    flac_declaring(path, 60.0)
    assert probe(path).duration == pytest.approx(60.0)
    limit = 120.0
    bound = 2.2 * (limit + 1.0) * BYTES_PER_SECOND  # the buffer, grown once, plus its copy

    tracemalloc.start()
    try:
        with pytest.raises(AudioError) as info:
            decode_audio(path, max_duration=limit)
        whole_left, whole_peak = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        with pytest.raises(AudioError) as streamed:
            for block in stream_audio(path, max_duration=limit, block_seconds=10.0):
                del block
        stream_left, stream_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert info.value.reason.startswith("too long") and str(path) in str(info.value)
    assert "2.0 min limit" in info.value.reason and "declares 60.0 s" in info.value.reason
    assert whole_peak < bound, f"{whole_peak / 1e6:.1f} MB for a {limit:.0f} s limit"
    assert whole_left < BYTES_PER_SECOND and stream_left < BYTES_PER_SECOND  # the error holds no samples
    assert streamed.value.reason.startswith("too long")
    assert stream_peak < 3 * 10.0 * BYTES_PER_SECOND, f"{stream_peak / 1e6:.1f} MB streaming in 10 s blocks"
    assert children() == {}


def test_header_declaring_more_than_it_holds_is_refused(tmp_path):
    # 55 s of audio whose header says 100 s: the old decoder accepted anything over half.
    path = tmp_path / "short.flac"
    ffmpeg("-f", "lavfi", "-i", "sine=f=300:r=16000:d=55", "-c:a", "flac", str(path))
    flac_declaring(path, 100.0)
    with pytest.raises(AudioError) as info:
        decode_audio(path)
    assert info.value.reason == "truncated: the file declares 100.0 s but only 55.0 s can be decoded"
    seen = []
    with pytest.raises(AudioError, match="truncated"):
        for block in stream_audio(path, block_seconds=20.0):
            seen.append(block)
    assert sum(map(len, seen)) == 40 * SAMPLE_RATE  # the short last block is never given out


def test_headers_a_little_off_still_decode(tmp_path):
    # Within max(1 s, 2%): a header 1.3% longer than the audio.
    path = tmp_path / "off.flac"
    ffmpeg("-f", "lavfi", "-i", "sine=f=300:r=16000:d=60", "-c:a", "flac", str(path))
    flac_declaring(path, 60.8)
    assert decode_audio(path).duration == pytest.approx(60.0, abs=0.01)
    # A VBR MP3 without a VBR header: ffmpeg estimates its length from the first frames'
    # bitrate (here, quiet ones) and is far off; that figure is not held against the decode.
    mp3 = tmp_path / "vbr.mp3"
    ffmpeg("-f", "lavfi", "-i", "anullsrc=r=16000:cl=mono:d=10", "-f", "lavfi", "-i",
           "anoisesrc=r=16000:d=20:a=0.5", "-filter_complex", "[0][1]concat=n=2:v=0:a=1",
           "-c:a", "libmp3lame", "-q:a", "2", "-write_xing", "0", str(mp3))
    info = probe(mp3)
    assert not info.exact and abs(info.duration - 30.0) > 3.0
    assert decode_audio(mp3).duration == pytest.approx(30.0, abs=0.2)


# ---- formats: nothing that makes ffmpeg open other files ------------------------------------------


def _playlists(tmp_path: Path) -> dict[str, Path]:
    ffmpeg("-f", "lavfi", "-i", "sine=f=440:r=16000:d=5", str(tmp_path / "other.mp3"))
    ffmpeg("-f", "lavfi", "-i", "sine=f=440:r=16000:d=5", "-c:a", "aac", "-f", "mpegts",
           str(tmp_path / "other.ts"))
    cases = {
        "hls-mp3": "#EXTM3U\n#EXT-X-TARGETDURATION:10\n#EXTINF:5,\nother.mp3\n#EXT-X-ENDLIST\n",
        "hls-ts": "#EXTM3U\n#EXT-X-TARGETDURATION:10\n#EXTINF:5,\nother.ts\n#EXT-X-ENDLIST\n",
        "ffconcat": "ffconcat version 1.0\nfile other.mp3\nfile other.ts\n",
    }
    paths = {}
    for case, text in cases.items():
        folder = tmp_path / case
        folder.mkdir()
        for media in ("other.mp3", "other.ts"):
            os.link(tmp_path / media, folder / media)
        (folder / "meeting.wav").write_text(text)
        paths[case] = folder / "meeting.wav"
    return paths


@pytest.mark.parametrize("case", ["hls-mp3", "hls-ts", "ffconcat"])
def test_playlists_and_scripts_are_refused(tmp_path, case, children):
    path = _playlists(tmp_path)[case]
    for attempt in (lambda: decode_audio(path), lambda: list(stream_audio(path)), lambda: probe(path)):
        with pytest.raises(AudioError) as info:
            attempt()
        assert "not a plain audio or video format" in info.value.reason and str(path) in str(info.value)
    assert children() == {}


# ---- time: FIFOs, swapped names, hung ffmpeg --------------------------------------------------------


def test_a_fifo_never_hangs_the_caller(tmp_path):
    fifo = tmp_path / "meeting.wav"
    os.mkfifo(fifo)
    for function in (decode_audio, lambda p: list(stream_audio(p)), probe):
        box, took = finishes_within(10, lambda: function(fifo))
        assert isinstance(box.get("error"), AudioError) and box["error"].reason == "not a regular file"


def test_a_name_swapped_for_a_fifo_after_opening_is_not_read(tmp_path):
    path = write_wav(tmp_path / "meeting.wav", np.full(SAMPLE_RATE, 0.25, dtype=np.float32))
    with MediaFile.open(path) as media:
        path.unlink()
        os.mkfifo(path)  # whoever opens the name now blocks until a writer comes
        box, _ = finishes_within(10, lambda: decode_audio(media))
    assert "error" not in box and np.allclose(box["result"].samples, 0.25, atol=1e-3)


def test_hung_ffmpeg_is_killed_at_the_timeout(long_silence, children):
    catch_ffmpeg()
    box, took = finishes_within(30, lambda: decode_audio(long_silence, timeout=3.0))
    error = box.get("error")
    assert isinstance(error, AudioError) and error.reason == "timed out: ffmpeg did not finish within 3 s"
    assert 2.5 < took < 10
    assert children() == {}


def test_stream_timeout_counts_ffmpeg_time_not_the_consumers(tmp_path, children):
    path = write_wav(tmp_path / "six.wav", np.zeros(6 * SAMPLE_RATE, dtype=np.float32))
    blocks = []
    for block in stream_audio(path, block_seconds=1.0, timeout=3.0):
        blocks.append(block)
        time.sleep(0.6)  # 3.6 s in all, longer than the timeout
    assert len(blocks) == 6 and children() == {}


# ---- cancellation: no ffmpeg outlives its caller ----------------------------------------------------


def test_closing_a_stream_kills_ffmpeg(long_silence, children):
    stream = stream_audio(long_silence, block_seconds=1.0)
    next(stream)
    pid = stream.pid
    assert pid in children()
    stream.close()
    assert children() == {} and not Path(f"/proc/{pid}").exists()


def test_an_exception_in_the_consumer_kills_ffmpeg(long_silence, children):
    with pytest.raises(KeyboardInterrupt):
        for _ in stream_audio(long_silence, block_seconds=1.0):
            assert children()
            raise KeyboardInterrupt
    assert children() == {}
    with pytest.raises(ValueError):
        with stream_audio(long_silence, block_seconds=1.0) as stream:
            next(stream)
            raise ValueError("the consumer failed")
    assert children() == {}


def blocked_waiting(thread: threading.Thread, seconds: float = 10.0) -> None:
    """Wait until ``thread`` sleeps in epoll_wait (the decoder waiting for ffmpeg's output),
    not in the middle of starting ffmpeg, where an interrupt is Python's to handle."""
    wchan = Path(f"/proc/self/task/{thread.native_id}/wchan")
    end = time.monotonic() + seconds
    while time.monotonic() < end and "epoll" not in wchan.read_text():
        time.sleep(0.002)


def test_ctrl_c_during_a_whole_file_decode_kills_ffmpeg(long_silence, children):
    main = threading.main_thread()

    def interrupt(pid):
        blocked_waiting(main)
        signal.pthread_kill(main.ident, signal.SIGINT)

    catch_ffmpeg(then=interrupt)
    with pytest.raises(KeyboardInterrupt):
        decode_audio(long_silence)
    assert children() == {}


def test_cancel_from_another_thread_kills_ffmpeg(long_silence, children):
    cancel = Cancel()
    catch_ffmpeg(then=lambda pid: cancel.cancel())
    box, _ = finishes_within(30, lambda: decode_audio(long_silence, cancel=cancel))
    assert isinstance(box.get("error"), DecodeCancelled)
    assert children() == {}


def test_cancelled_asyncio_task_kills_ffmpeg(long_silence, children):
    async def main():
        # a task cancelled by its caller (a client that went away)
        task = asyncio.create_task(decode_audio_async(long_silence))
        caught = catch_ffmpeg()
        while caught.is_alive():
            await asyncio.sleep(0.01)
        assert children()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert children() == {}
        # a deadline
        catch_ffmpeg()
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(decode_audio_async(long_silence), timeout=2.0)
        assert children() == {}
        # and an uncancelled one decodes
        audio = await decode_audio_async(eval_clip("en/en_jfk_whisper.flac"))
        assert audio.duration == pytest.approx(11.0, abs=0.05)

    asyncio.run(main())


# ---- names -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", [b"-y.wav", b"-i", b"a:b.wav", b"file:x.wav", b"caf\xe9 \xff.wav"])
def test_awkward_names_decode(tmp_path, name, monkeypatch):
    monkeypatch.chdir(tmp_path)
    source = eval_clip("en/en_ljspeech_LJ002-0020.wav")
    path = os.path.join(os.fsencode(tmp_path), name)
    with open(path, "wb") as handle:
        handle.write(source.read_bytes())
    relative = os.fsdecode(name)  # as a command line hands it over (surrogate escapes)
    for given in (relative, path, Path(relative)):
        assert decode_audio(given).duration == pytest.approx(1.54, abs=0.05)
        assert sum(map(len, stream_audio(given, block_seconds=0.5))) / SAMPLE_RATE == pytest.approx(1.54, abs=0.05)
    missing = os.fsdecode(os.path.join(os.fsencode(tmp_path), b"gone-" + name))
    with pytest.raises(AudioError) as info:
        decode_audio(missing)
    assert info.value.reason == "file not found"
    str(info.value).encode("utf-8")  # printable, whatever bytes the name held


# ---- the streaming API -----------------------------------------------------------------------------


@pytest.mark.parametrize("clip", ["en/en_jfk_whisper.flac", "yue/yue_sherpa_yue-6.wav"])
def test_stream_yields_the_whole_decode(clip, children):
    path = eval_clip(clip)  # a stereo 44.1 kHz FLAC, and a 30 s WAV
    whole = decode_audio(path).samples
    with stream_audio(path, block_seconds=2.0) as stream:
        blocks = list(stream)
        assert stream.decoded == len(whole)
    assert all(len(block) == 2 * SAMPLE_RATE for block in blocks[:-1])
    assert 0 < len(blocks[-1]) <= 2 * SAMPLE_RATE
    assert np.array_equal(np.concatenate(blocks), whole)
    assert children() == {}


def test_stream_of_a_truncated_file_fails_before_its_end(tmp_path):
    whole = eval_clip("yue/yue_sherpa_yue-6.wav").read_bytes()  # 30 s
    cut = tmp_path / "cut.wav"
    cut.write_bytes(whole[: len(whole) // 2])
    seen = []
    with pytest.raises(AudioError, match="truncated"):
        for block in stream_audio(cut, block_seconds=5.0):
            seen.append(block)
    assert len(seen) <= 3


def test_declared_too_long_is_refused_before_ffmpeg_runs(long_silence, children):
    with pytest.raises(AudioError) as info:
        stream_audio(long_silence, max_duration=600.0)
    assert info.value.reason == "too long: 30.0 min exceeds the 10.0 min limit"
    assert children() == {}


def test_errors_name_the_callers_label(tmp_path):
    # A server spools an upload under its own name; messages name what the client sent.
    spooled = tmp_path / "upload.bin"
    spooled.write_text("#EXTM3U\n#EXTINF:5,\nother.mp3\n")
    with MediaFile.open(spooled, name="meeting.m4a") as media, pytest.raises(AudioError) as info:
        decode_audio(media)
    assert str(info.value).startswith("meeting.m4a: not a readable media file")
