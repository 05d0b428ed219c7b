"""The HTTP endpoint with real parts: Ray Serve on loopback, the official `openai` client and
plain HTTP against real clips, every error case, async jobs written to storage.

Serve starts once for the session (conftest's `server`: a free port, 127.0.0.1 only) with an API
key, a 16 MB upload limit, a private spool folder (checked empty after requests: temp files are
removed) and a job output folder; tests/test_abuse.py uses the same server.
"""

from __future__ import annotations

import json
import os
import struct
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from conftest import API_KEY, AUTH, MAX_UPLOAD_MB, SHARED_EVAL, eval_clip, read_index, read_summary
from process_watch import is_loopback, listening_addresses
from sanyu.processes import descendants

JFK = "en/en_jfk_whisper.flac"  # 11 s, "ask not what your country can do for you"
ONE_TWO_THREE = "en/en_speechrecognition_english.wav"  # 2.7 s, "one two three"
TWO_SPEAKERS = "multi/en_fasterwhisper_stereo_diarization_mono.wav"  # 5 s, two speakers


def _words(text: str) -> str:
    """Lower case, punctuation dropped, single spaces: for matching phrases in transcripts."""
    import re

    return " ".join(re.sub(r"[^\w\s]", " ", text.lower()).split())


def _post(server, files=None, data=None, headers=AUTH, **kwargs):
    import requests

    return requests.post(
        f"{server.url}/v1/audio/transcriptions", files=files, data=data, headers=headers,
        timeout=240, **kwargs,
    )


def _assert_error(response, status: int, code: str | None = None, contains: str = ""):
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    error = response.json()["error"]
    assert set(error) >= {"message", "type", "code"}
    assert error["message"] and error["type"]
    if code:
        assert error["code"] == code, error
    assert contains.lower() in error["message"].lower(), error
    return error


# ---- health -----------------------------------------------------------------------------


@pytest.mark.slow
def test_health_ready_and_loopback(server):
    import requests

    assert requests.get(f"{server.url}/healthz", timeout=10).json() == {"status": "ok"}
    ready = requests.get(f"{server.url}/readyz", timeout=30)
    assert ready.status_code == 200 and ready.json()["model"] == "base"
    assert server.url.startswith("http://127.0.0.1:")
    if server.own_ray:  # every port this session's Ray and Serve processes opened is loopback
        sockets = listening_addresses(descendants(os.getpid()))
        assert f"127.0.0.1:{server.port}" in sockets, sockets
        assert [address for address in sockets if not is_loopback(address)] == [], sockets
    models = requests.get(f"{server.url}/v1/models", headers=AUTH, timeout=10).json()
    assert {m["id"] for m in models["data"]} >= {"base", "whisper-1"}


# ---- the OpenAI client ----------------------------------------------------------------------


@pytest.mark.slow
def test_openai_client_json(server, client):
    with open(eval_clip(JFK), "rb") as audio:
        result = client.audio.transcriptions.create(model="whisper-1", file=audio)
    assert "ask not what your country can do for you" in _words(result.text)
    assert server.leftovers() == []


@pytest.mark.slow
def test_openai_client_verbose_json_words_speakers_languages(server, client):
    with open(eval_clip(TWO_SPEAKERS), "rb") as audio:
        result = client.audio.transcriptions.create(
            model="large-v3",  # any name: the loaded model answers
            file=audio,
            response_format="verbose_json",
            timestamp_granularities=["word", "segment"],
            extra_body={"diarize": "true", "num_speakers": 2},
        )
    data = result.model_dump()
    assert data["task"] == "transcribe"
    assert data["language"] == "english" and data["languages"] == ["en"]
    assert data["model"] == "base"
    assert 4.9 <= data["duration"] <= 5.1
    assert data["text"].strip()
    assert data["segments"] and data["words"]
    for segment in data["segments"]:
        for key in ("id", "seek", "start", "end", "text", "tokens", "temperature", "avg_logprob",
                    "compression_ratio", "no_speech_prob"):
            assert key in segment, key
        assert segment["language"] == "en"
        assert segment["speaker"] and segment["speaker"].startswith("SPEAKER_")
        assert 0 <= segment["start"] <= segment["end"] <= data["duration"] + 0.5
    for word in data["words"]:
        assert word["word"].strip() and 0 <= word["start"] <= word["end"] <= data["duration"] + 0.5
        assert word["language"] == "en" and word["speaker"].startswith("SPEAKER_")
    assert set(data["speakers"]) >= {s["speaker"] for s in data["segments"]}


@pytest.mark.slow
def test_concurrent_requests_are_batched_in_every_text_format(server, client):
    """A long request keeps the model busy while three short ones arrive: they are decoded as
    one batch, and each comes back in its own format."""
    import requests

    before = requests.get(f"{server.url}/v1/stats", headers=AUTH, timeout=30).json()

    def call(fmt: str, clip: str):
        with open(eval_clip(clip), "rb") as audio:
            return client.audio.transcriptions.create(model="whisper-1", file=audio, response_format=fmt)

    with ThreadPoolExecutor(4) as pool:
        first = pool.submit(call, "json", JFK)
        time.sleep(1.0)
        futures = {fmt: pool.submit(call, fmt, ONE_TWO_THREE) for fmt in ("text", "srt", "vtt")}
        results = {fmt: future.result() for fmt, future in futures.items()}
    assert "country" in _words(first.result().text)
    text, srt, vtt = results["text"], results["srt"], results["vtt"]
    assert isinstance(text, str) and text.strip() and "-->" not in text
    assert srt.startswith("1\n") and " --> " in srt and "," in srt.split("\n")[1]
    assert vtt.startswith("WEBVTT") and " --> " in vtt
    for body in (text, srt, vtt):
        normalized = body.lower().replace(",", " ").replace(".", " ")
        assert ("1" in normalized and "3" in normalized) or "one" in normalized
    after = requests.get(f"{server.url}/v1/stats", headers=AUTH, timeout=30).json()
    assert after["items"] - before["items"] == 4
    new_sizes = {
        int(size): count - before["sizes"].get(size, 0) for size, count in after["sizes"].items()
    }
    assert any(size >= 2 and count > 0 for size, count in new_sizes.items()), (before, after)
    assert server.leftovers() == []


# ---- plain HTTP ---------------------------------------------------------------------------


@pytest.mark.slow
def test_plain_http_multipart(server):
    with open(eval_clip(ONE_TWO_THREE), "rb") as audio:
        response = _post(
            server,
            files={"file": ("one two three.wav", audio, "audio/wav")},
            data={"model": "base", "language": "en", "response_format": "verbose_json",
                  "timestamp_granularities[]": ["segment", "word"], "script": "original"},
        )
    assert response.status_code == 200, response.text
    data = response.json()
    assert data["language"] == "english" and data["segments"] and data["words"]
    assert all(s["speaker"] is None for s in data["segments"])


@pytest.mark.slow
def test_minutes_as_docx_and_markdown(server):
    """The two-speaker recording as Word minutes (an attachment) and as Markdown, names given."""
    import io

    import docx

    answers = {}
    for fmt in ("docx", "md"):
        with open(eval_clip(TWO_SPEAKERS), "rb") as audio:
            answers[fmt] = _post(
                server,
                files={"file": ("two readers.wav", audio, "audio/wav")},
                data={"response_format": fmt, "diarize": "true", "num_speakers": "2",
                      "language": "en", "speaker_names": "SPEAKER_00=Left,SPEAKER_01=Right"},
            )
    response = answers["docx"]
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == (
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
    )
    assert 'filename="two_readers.docx"' in response.headers["content-disposition"]
    document = docx.Document(io.BytesIO(response.content))
    assert document.core_properties.title == "Minutes: two readers.wav"
    _, speakers = document.tables
    assert {row.cells[0].text for row in speakers.rows[1:]} == {"Left", "Right"}
    proceedings = [p.text for p in document.paragraphs if p.text.startswith("[00:00:0")]
    assert proceedings and all(p.split("] ", 1)[1].split(":")[0] in ("Left", "Right") for p in proceedings)
    said = _words(" ".join(p.split(": ", 1)[1] for p in proceedings))
    assert "wizard" in said and "curtain" in said  # the reader on the left (Whisper drops the overlap)
    markdown = answers["md"]
    assert markdown.status_code == 200 and markdown.headers["content-type"].startswith("text/markdown")
    assert markdown.text.startswith("# Minutes: two readers.wav\n")
    assert "| Left | SPEAKER\\_00 |" in markdown.text or "| Left | SPEAKER\\_01 |" in markdown.text


# ---- errors, and the server keeps serving afterwards ---------------------------------------------


def _truncated_wav(path: Path) -> Path:
    """A real WAV whose header declares 15 s but holds 1 s of samples (a cut copy)."""
    from sanyu.audio import decode_audio
    from sanyu.evaluation.dataset import write_wav

    full = path.with_name("full.wav")
    write_wav(full, decode_audio(eval_clip("yue/yue_sherpa_yue-1.wav")).samples)
    data = full.read_bytes()
    path.write_bytes(data[: 44 + 16000 * 2])  # header keeps the full data size
    assert struct.unpack("<I", data[40:44])[0] > 16000 * 2 * 10
    return path


@pytest.mark.slow
def test_errors_are_json_and_the_server_keeps_serving(server, tmp_path):
    clip = eval_clip(ONE_TWO_THREE)
    audio = clip.read_bytes()

    # 401: no key, a wrong key, a key in the wrong scheme
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Basic {API_KEY}"}):
        response = _post(server, files={"file": ("a.wav", audio, "audio/wav")}, headers=headers)
        _assert_error(response, 401, "invalid_api_key", "api key")
        assert response.headers["www-authenticate"].startswith("Bearer")

    # 413: over the limit, refused as it streams in (with and without Content-Length)
    big = os.urandom((MAX_UPLOAD_MB + 1) * 1024 * 1024)
    _assert_error(_post(server, files={"file": ("big.wav", big, "audio/wav")}), 413, "file_too_large")

    def chunks():  # a valid multipart body, sent chunked (no Content-Length)
        yield (b'--xyz\r\nContent-Disposition: form-data; name="file"; filename="big.wav"\r\n'
               b"Content-Type: audio/wav\r\n\r\n")
        for start in range(0, len(big), 256 * 1024):
            yield big[start : start + 256 * 1024]
        yield b"\r\n--xyz--\r\n"

    import requests

    chunked = requests.post(
        f"{server.url}/v1/audio/transcriptions", data=chunks(), timeout=60,
        headers={**AUTH, "Content-Type": "multipart/form-data; boundary=xyz"},
    )
    assert "content-length" not in {k.lower() for k in chunked.request.headers}
    _assert_error(chunked, 413, "file_too_large")

    # 415: declared non-media, text content under an audio name, a body that is not multipart
    error = _assert_error(
        _post(server, files={"file": ("notes.txt", b"minutes of the meeting\n", "text/plain")}),
        415, "unsupported_media_type", "text/plain",
    )
    assert "notes.txt" in error["message"]
    playlist = b"#EXTM3U\n#EXTINF:10,\nfile:/etc/passwd\n#EXT-X-ENDLIST\n"
    _assert_error(
        _post(server, files={"file": ("trick.wav", playlist, "audio/wav")}), 415,
        "unsupported_media_type", "text file",
    )
    _assert_error(
        _post(server, data=b"raw", headers={**AUTH, "Content-Type": "audio/wav"}), 415,
        "unsupported_content_type",
    )

    # 400: undecodable bytes, empty file, truncated recording, missing file, bad fields
    _assert_error(
        _post(server, files={"file": ("noise.mp3", os.urandom(4096), "audio/mpeg")}), 400,
        "invalid_audio", "noise.mp3: not a readable media file",
    )
    _assert_error(
        _post(server, files={"file": ("empty.wav", b"", "audio/wav")}), 400, "empty_file", "empty"
    )
    truncated = _truncated_wav(tmp_path / "cut.wav").read_bytes()
    _assert_error(
        _post(server, files={"file": ("cut.wav", truncated, "audio/wav")}), 400, "invalid_audio",
        "truncated",
    )
    _assert_error(_post(server, files={"model": (None, "whisper-1")}), 400, "missing_file")
    for field, value in (("response_format", "pdf"), ("language", "klingon"),
                         ("num_speakers", "zero"), ("script", "cyrillic")):
        response = _post(server, files={"file": ("a.wav", audio, "audio/wav")}, data={field: value})
        assert _assert_error(response, 400)["param"] == field

    # 504: the request runs past its deadline (a client may shorten the server's timeout)
    jfk = eval_clip(JFK).read_bytes()
    response = _post(
        server, files={"file": ("jfk.flac", jfk, "audio/flac")},
        headers={**AUTH, "X-Sanyu-Timeout": "0.05"},
    )
    _assert_error(response, 504, "timeout")

    # unknown route: JSON too
    _assert_error(requests.get(f"{server.url}/v1/nothing", timeout=10), 404)

    # every temporary file is gone, and the server still transcribes
    assert server.leftovers() == []
    response = _post(server, files={"file": ("again.wav", audio, "audio/wav")}, data={"response_format": "text"})
    assert response.status_code == 200 and response.text.strip()
    assert requests.get(f"{server.url}/readyz", timeout=30).status_code == 200
    assert server.leftovers() == []


# ---- async jobs -----------------------------------------------------------------------------


def _wait_for_job(server, job_id: str, timeout: float = 300) -> dict:
    import requests

    deadline = time.time() + timeout
    seen = set()
    while True:
        response = requests.get(f"{server.url}/v1/jobs/{job_id}", headers=AUTH, timeout=30)
        assert response.status_code == 200, response.text
        job = response.json()
        seen.add(job["status"])
        assert job["status"] in ("queued", "running", "done", "failed")
        if job["status"] in ("done", "failed"):
            job["seen"] = seen
            return job
        assert time.time() < deadline, f"job {job_id} still {job['status']}"
        time.sleep(1.0)


@pytest.mark.slow
def test_job_on_a_two_minute_recording(server):
    """~2 minutes joined from the English clips (language fixed to keep the test short on a
    small CPU); the result is read back from GET /v1/jobs/{id} and from storage."""
    import requests

    from sanyu.audio import decode_audio
    from sanyu.evaluation.dataset import join_clips, load_clips
    from sanyu.schema import Transcript

    clips = load_clips(SHARED_EVAL, ("en",))
    seconds = {clip.path: decode_audio(clip.path).duration for clip in clips}
    chosen, length = [], 0.0
    while length < 110:
        for clip in clips:
            chosen.append(clip)
            length += seconds[clip.path] + 1.0  # join_clips puts 1 s of silence after each
            if length >= 110:
                break
    total = join_clips(chosen, server.inputs / "meeting.wav")[-1].end
    assert total >= 100

    response = requests.post(
        f"{server.url}/v1/jobs", headers=AUTH, timeout=30,
        json={"uri": str(server.inputs / "meeting.wav"), "language": "en"},
    )
    assert response.status_code == 202, response.text
    job = response.json()
    assert job["id"].startswith("job_") and job["status"] in ("queued", "running")

    done = _wait_for_job(server, job["id"])
    assert done["status"] == "done", done
    result = done["result"]
    assert result["duration"] == pytest.approx(total, abs=1.5)
    assert "ask not what your country can do for you" in _words(result["text"])
    assert result["segments"][-1]["end"] > 90
    assert result["words"]

    # the same transcript, read from storage in the batch job's layout
    from sanyu.storage import Storage

    location = server.output / job["id"]
    assert done["outputs"]["location"] == job["id"]  # relative: no server path in a record
    assert str(server.output) not in json.dumps({k: v for k, v in done.items() if k != "seen"})
    storage = Storage(location)
    stem = done["stem"]
    from sanyu.inputs import list_inputs

    # the name `sanyu transcribe` and `sanyu batch` give the same file listed from the input root
    [listed] = [item for item in list_inputs(str(server.inputs)) if item.uri.endswith("/meeting.wav")]
    assert stem == listed.stem and stem.startswith("meeting-")
    transcript = storage.read_transcript(stem=stem)
    assert transcript.text == result["text"]
    assert storage.is_done(stem, done["key"], ["json", "srt"])
    stored = done["outputs"]["files"]
    assert set(stored) >= {f"{stem}.json", f"{stem}.srt"}
    assert all((location / name).is_file() for name in stored)
    assert Transcript.from_json((location / f"{stem}.json").read_text(encoding="utf-8")).text == result["text"]
    index = read_index(storage)
    assert index.num_rows == len(result["segments"]) and set(index.column("stem").to_pylist()) == {stem}
    summary = read_summary(storage)
    assert (summary["ok"], summary["failed"], summary["run_id"]) == (1, 0, job["id"])
    assert server.leftovers() == []


# "+", a full-width comma and a space: kept or replaced alike by the CLI's naming, whatever the
# message label makes of them
UPLOAD_NAME = "numbers 1+2 會議，第一次.wav"


@pytest.mark.slow
def test_job_from_an_upload_and_refused_uris(server, tmp_path):
    import requests

    clip = eval_clip(ONE_TWO_THREE)
    with open(clip, "rb") as audio:
        response = requests.post(
            f"{server.url}/v1/jobs", headers=AUTH, timeout=60,
            files={"file": (UPLOAD_NAME, audio, "audio/wav")}, data={"language": "en"},
        )
    assert response.status_code == 202, response.text
    job_id = response.json()["id"]

    # refused before anything is read: outside the roots, a symlink out of a root, relative
    outside = tmp_path / "outside.wav"
    outside.write_bytes(clip.read_bytes())
    link = server.inputs / "link.wav"
    link.symlink_to(outside)
    for uri in (str(outside), str(link), "/etc/passwd", f"{server.inputs}/../{outside.name}",
                "s3://some-bucket/x.wav", "http://169.254.169.254/latest/meta-data"):
        response = requests.post(f"{server.url}/v1/jobs", headers=AUTH, json={"uri": uri}, timeout=30)
        _assert_error(response, 403, "uri_not_allowed")
    _assert_error(
        requests.post(f"{server.url}/v1/jobs", headers=AUTH, json={"uri": "meeting.wav"}, timeout=30),
        400,
    )
    _assert_error(requests.post(f"{server.url}/v1/jobs", json={"uri": str(outside)}, timeout=30), 401)
    _assert_error(requests.get(f"{server.url}/v1/jobs/job_{'0' * 32}", headers=AUTH, timeout=30), 404)
    _assert_error(requests.get(f"{server.url}/v1/jobs/..%2Fetc", headers=AUTH, timeout=30), 404)

    # a job whose input is not audio is refused before it is accepted, with the reason
    bad = server.inputs / "notes.wav"
    bad.write_bytes(os.urandom(2048))
    jobs_before = set(os.listdir(server.output))
    response = requests.post(f"{server.url}/v1/jobs", headers=AUTH, json={"uri": str(bad)}, timeout=30)
    _assert_error(response, 400, "invalid_audio", "notes.wav: not a readable media file")
    assert str(server.inputs) not in response.text  # the client is told the name only
    assert set(os.listdir(server.output)) == jobs_before

    done = _wait_for_job(server, job_id)
    assert done["status"] == "done", done
    assert done["input"] == {"kind": "upload", "name": "numbers 1_2 會議_第一次.wav"}
    from sanyu.inputs import list_inputs

    lone = tmp_path / UPLOAD_NAME  # the name `sanyu transcribe` gives a file of that name
    lone.write_bytes(clip.read_bytes())
    assert done["stem"] == list_inputs(str(lone))[0].stem
    assert done["result"]["text"].strip()
    record = json.loads((server.output / job_id / "_sanyu" / "job.json").read_text())
    assert record["status"] == "done" and record["outputs"]["files"]
    assert server.leftovers() == []


# ---- the parts without a server ----------------------------------------------------------------


def test_batches_are_cut_by_options_and_audio_seconds():
    from sanyu.serve.batching import BatchStats, plan_batches, run_planned, split_by_seconds

    assert split_by_seconds([10, 10, 10, 500, 5, 5], 25) == [[0, 1], [2], [3], [4, 5]]
    assert split_by_seconds([], 25) == []
    assert plan_batches(["a", "b", "a", "a"], [10, 10, 10, 10], 25) == [[0, 2], [3], [1]]

    calls = []

    def call(items, key):
        calls.append((key, list(items)))
        if "bad" in items:
            raise ValueError("bad input")
        return [f"{key}:{item}" for item in items]

    stats = BatchStats()
    results = run_planned(["x", "bad", "y", "z"], ["k", "k", "k", "j"], [1, 1, 1, 1], 10, call, stats)
    assert results[0] == "k:x" and results[2] == "k:y" and results[3] == "j:z"
    assert isinstance(results[1], ValueError)  # one bad request fails alone
    assert stats.to_dict()["sizes"] == {1: 3}


def test_batches_waiting_for_a_busy_model_are_merged():
    """Requests that arrive while the model is busy run together in its next call, up to the
    count and audio caps (an oversize recording runs alone)."""
    import asyncio

    from sanyu.serve.batching import Coalescer

    calls = []

    def run(items):
        calls.append(list(items))
        time.sleep(0.2)
        return [f"done {item}" for item in items]

    async def scenario():
        coalescer = Coalescer(run, max_items=3, max_seconds=60,
                              seconds=lambda item: 600 if item == "long" else 10)
        first = coalescer.enqueue(["a"])
        await asyncio.sleep(0.05)  # the model is now busy with "a"
        later = [coalescer.enqueue([x]) for x in ("b", "c", "d", "long", "e")]
        return await asyncio.gather(*(asyncio.gather(*futures) for futures in [first, *later]))

    results = asyncio.run(scenario())
    assert [r[0] for r in results] == ["done a", "done b", "done c", "done d", "done long", "done e"]
    assert calls == [["a"], ["b", "c", "d"], ["long"], ["e"]]


def test_job_uris_only_under_allowed_roots(tmp_path):
    from sanyu.serve.errors import APIError
    from sanyu.serve.jobs import resolve_input

    root = tmp_path / "in"
    root.mkdir()
    (root / "a.wav").write_bytes(b"x")
    (tmp_path / "secret.wav").write_bytes(b"x")
    (root / "escape.wav").symlink_to(tmp_path / "secret.wav")
    roots = (str(root), "s3://bucket/meetings")

    assert resolve_input(str(root / "a.wav"), roots).kind == "local"
    assert resolve_input(f"file://{root}/a.wav", roots).location == str(root / "a.wav")
    assert resolve_input("s3://bucket/meetings/2024/x.m4a", roots).kind == "remote"
    for uri in (str(tmp_path / "secret.wav"), str(root / "escape.wav"), f"{root}/../secret.wav",
                "s3://bucket/meetings/../private/x.wav", "s3://bucket/meetings-other/x.wav",
                "s3://other/meetings/x.wav", "https://example.com/a.wav", "/etc/passwd"):
        with pytest.raises(APIError) as refused:
            resolve_input(uri, roots)
        assert refused.value.status == 403, uri
    with pytest.raises(APIError) as no_roots:
        resolve_input(str(root / "a.wav"), ())
    assert no_roots.value.status == 403
    with pytest.raises(APIError):
        resolve_input("a.wav", roots)
    # JSON can carry a lone surrogate ("\\udcff"): a 400 that can be sent back, not a 500
    for uri in (f"{root}/\udcff.wav", "s3://bucket/meetings/\udce9.wav"):
        with pytest.raises(APIError) as odd:
            resolve_input(uri, roots)
        assert odd.value.status == 400
        odd.value.response()


def test_request_fields_become_options():
    from sanyu.options import TranscribeOptions
    from sanyu.serve.errors import APIError
    from sanyu.serve.params import parse_request
    from sanyu.serve.upload import Form

    form = Form(fields={
        "model": ["whisper-1"], "language": ["Cantonese"], "response_format": ["verbose_json"],
        "timestamp_granularities[]": ["word", "segment", "word"], "diarize": ["true"],
        "num_speakers": ["3"], "known_speaker_names[]": ["Chan", "Lee"], "keywords[]": ["LegCo"],
        "script": ["traditional"], "temperature": ["0"],
    })
    request = parse_request(form, TranscribeOptions())
    assert request.granularities == ("word", "segment")
    assert request.options.language == "yue" and request.options.diarize
    assert request.options.num_speakers == 3 and request.options.speaker_names == ("Chan", "Lee")
    assert request.options.hotwords == "LegCo" and request.options.script == "traditional"
    assert parse_request(Form(), TranscribeOptions()).response_format == "json"
    for fields in ({"stream": ["true"]}, {"timestamp_granularities[]": ["word"]},
                   {"diarize": ["maybe"]}, {"min_speakers": ["3"], "max_speakers": ["2"]},
                   {"temperature": ["7"]}):
        with pytest.raises(APIError) as bad:
            parse_request(Form(fields=fields), TranscribeOptions())
        assert bad.value.status == 400
    with pytest.raises(APIError):
        parse_request(Form(fields={"diarize": ["1"]}), TranscribeOptions(), allow_diarize=False)


def test_request_speaker_fields_keep_commas_and_fall_back_to_the_servers():
    from sanyu.options import TranscribeOptions
    from sanyu.serve.errors import APIError
    from sanyu.serve.params import parse_request
    from sanyu.serve.upload import Form

    # Each array element is one name, as in OpenAI's API: Hong Kong names carry commas.
    named = parse_request(Form(fields={
        "known_speaker_names[]": ["CHAN, Tai-man", "LEE, Ka-chun"], "keywords[]": ["Legislative Council"],
    }), TranscribeOptions())
    assert named.options.speaker_names == ("CHAN, Tai-man", "LEE, Ka-chun")
    assert named.options.hotwords == "Legislative Council"
    # Sanyu's own speaker_names field is comma-separated, like --speaker-names.
    listed = parse_request(Form(fields={"speaker_names": ["Chair, Secretary"]}), TranscribeOptions())
    assert listed.options.speaker_names == ("Chair", "Secretary")
    # `sanyu serve --diarize --num-speakers 3`: a request that names no count gets the server's;
    # one that names any gets its own.
    server = TranscribeOptions(diarize=True, num_speakers=3)
    assert parse_request(Form(), server).options.num_speakers == 3
    own = parse_request(Form(fields={"max_speakers": ["2"]}), server).options
    assert (own.num_speakers, own.max_speakers) == (None, 2)
    with pytest.raises(APIError) as bad:
        parse_request(Form(fields={"diarize": ["1"], "num_speakers": ["9"], "max_speakers": ["2"]}),
                      TranscribeOptions())
    assert bad.value.status == 400


def test_the_servers_language_is_checked_once_and_kept_for_requests_that_name_none():
    from pydantic import ValidationError

    from sanyu.serve.config import ServeConfig
    from sanyu.serve.params import parse_request
    from sanyu.serve.upload import Form

    config = ServeConfig(language="Cantonese")
    assert config.default_options.language == "yue"
    for fields in ({}, {"language": [""]}, {"language": ["  "]}):
        assert parse_request(Form(fields=fields), config.default_options).options.language == "yue"
    assert parse_request(Form(fields={"language": ["auto"]}), config.default_options).options.language == "auto"
    with pytest.raises(ValidationError, match="unsupported language 'xx'"):
        ServeConfig(language="xx")


def test_text_is_refused_before_ffmpeg_and_cli_maps_options(tmp_path, monkeypatch):
    from click.testing import CliRunner

    import sanyu.serve.server
    from sanyu.cli import main
    from sanyu.serve.upload import _looks_like_text

    assert _looks_like_text(b"#EXTM3U\n#EXTINF:1,\nfile:/etc/passwd\n")
    assert _looks_like_text("ffconcat version 1.0\nfile 'a.wav'\n".encode())
    assert not _looks_like_text(b"RIFF\x24\x00\x00\x00WAVEfmt ")
    assert not _looks_like_text(b"\xff\xfb\x90\x64" + bytes(100))

    seen = {}
    monkeypatch.setattr(sanyu.serve.server, "serve_forever", lambda config, host, port, address, echo: seen.update(
        config=config, host=host, port=port, address=address))
    result = CliRunner().invoke(main, [
        "serve", "--port", "8123", "--replicas", "auto", "--api-key", "k", "--max-upload-mb", "5",
        "--input-root", str(tmp_path), "--max-batch-size", "4", "--language", "yue",
    ])
    assert result.exit_code == 0, result.output
    config = seen["config"]
    assert (seen["host"], seen["port"], config.replicas, config.api_key) == ("127.0.0.1", 8123, "auto", "k")
    assert config.max_upload_bytes == 5 * 2**20 and config.input_roots == (str(tmp_path),)
    assert config.max_batch_size == 4 and config.default_options.language == "yue"
    assert CliRunner().invoke(main, ["serve", "--replicas", "many"]).exit_code != 0


def test_serve_run_arguments_build_the_application():
    """What `serve run sanyu.serve:app key=value ...` does with its arguments (Serve's own call)."""
    import inspect

    from pydantic import ValidationError
    from ray.serve import Application
    from ray.serve._private.api import call_user_app_builder_with_args_if_necessary

    import sanyu.serve
    from sanyu.serve import ServeConfig

    assert inspect.signature(sanyu.serve.app).parameters["args"].annotation is ServeConfig
    app = call_user_app_builder_with_args_if_necessary(
        sanyu.serve.app, {"model": "base", "replicas": "2", "diarize": "true", "input_roots": "/a,/b"})
    assert isinstance(app, Application)
    for bad in ({"modle": "base"}, {"replicas": "many"}, {"script": "klingon"}):
        with pytest.raises(ValidationError):
            call_user_app_builder_with_args_if_necessary(sanyu.serve.app, bad)
    config = ServeConfig.model_validate({"replicas": "2", "diarize": "true", "input_roots": "/a,/b",
                                         "speaker_names": "Chan,Lee"})
    assert (config.replicas, config.default_options.diarize, config.input_roots) == (2, True, ("/a", "/b"))
    assert config.default_options.speaker_names == ("Chan", "Lee")
