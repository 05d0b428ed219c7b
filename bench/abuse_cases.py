"""The hostile and careless clients of #15, as functions against a live `sanyu serve`.

`bench/abuse.py` runs them all and prints a table; tests/test_abuse.py runs each against the
test suite's server and asserts on what it returns. Each case takes a `Target` and returns a
`Finding`: the HTTP statuses it got, what it saw, and whether that is what a hardened server
must answer. `watch_rss` samples the resident memory of every Ray process of the server while a
case runs.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

import requests

from sanyu.processes import command_line, descendants

# ---- the server under test --------------------------------------------------------------------


@dataclass
class Target:
    url: str
    key: str | None
    work: Path  # a folder for the files the cases make
    speech: Path  # a short real recording: what a normal request sends
    limits: dict  # the server's ServeConfig fields the cases need (see `limits_of`)
    root_pid: int | None = None  # the process below which every Ray process of the server runs
    input_root: Path | None = None  # a folder the server takes job URIs from (local cases)
    spool: Path | None = None  # the server's upload folder

    @property
    def auth(self) -> dict:
        return {"Authorization": f"Bearer {self.key}"} if self.key else {}


LIMITS = ("max_upload_mb", "max_pending_requests", "max_queued_jobs", "max_spool_mb",
          "upload_timeout_s", "max_request_audio_s", "piece_seconds")


def limits_of(config) -> dict:
    """The limits the cases need, from a ServeConfig."""
    return {name: getattr(config, name) for name in LIMITS}


@dataclass
class Finding:
    case: str
    statuses: list[int]
    seen: str
    passed: bool
    peak_rss: dict[str, int] = field(default_factory=dict)  # "pid name" -> bytes
    answers_after: bool | None = None


def ffmpeg(*args: str) -> None:
    subprocess.run(["ffmpeg", "-nostdin", "-loglevel", "error", "-y", *args], check=True)


# ---- memory and processes ------------------------------------------------------------------------


def _tree(root: int) -> dict[int, str]:
    return {pid: command_line(pid) for pid in descendants(root)}


def ray_processes(root: int) -> dict[int, str]:
    """Ray's processes below ``root`` (GCS, raylet, agents, workers: Serve's replicas), not
    counting a replica's child between fork and exec (it shows its parent's name and pages)."""
    tree = _tree(root)
    parents = {}
    for pid in tree:
        try:
            parents[pid] = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
        except OSError:
            continue
    return {pid: cmd for pid, cmd in tree.items()
            if "ray" in cmd.lower() and tree.get(parents.get(pid)) != cmd}


def ffmpeg_processes(root: int) -> dict[int, str]:
    return {pid: cmd for pid, cmd in _tree(root).items() if cmd.split(" ", 1)[0].endswith(("ffmpeg", "ffprobe"))}


def _memory(pid: int) -> tuple[int, int]:
    """(RSS, PSS) of a process in bytes: PSS shares each page among the processes that map
    it, so PSS adds up across processes where RSS counts shared pages in each."""
    rss = pss = 0
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Rss:"):
                rss = int(line.split()[1]) * 1024
            elif line.startswith("Pss:"):
                pss = int(line.split()[1]) * 1024
    except OSError:
        pass
    return rss, pss


def _label(pid: int, cmd: str) -> str:
    """A process's name for the tables: Ray's own (``ray::ServeReplica:sanyu:SanyuModel``,
    without the method it runs now) or its program's."""
    name = cmd.split(" ", 1)[0]
    if name.startswith("ray::"):
        return f"{pid} {name.split('.', 1)[0][5:]}"
    script = next((part for part in cmd.split(" ")[1:] if part.endswith(".py")), "")
    return f"{pid} {os.path.basename(name)} {os.path.basename(script)}".strip()


@contextmanager
def watch_rss(root: int | None, every_s: float = 0.2):
    """Peak RSS of every Ray process below ``root`` while the block runs, filled into the
    dict it yields ("pid name" -> bytes), plus "total": the peak of their summed PSS (what
    they hold together, shared pages counted once)."""
    peaks: dict[str, int] = {}
    if root is None:
        yield peaks
        return
    stop = threading.Event()

    def sample():
        while True:
            total = 0
            for pid, cmd in ray_processes(root).items():
                rss, pss = _memory(pid)
                total += pss
                label = _label(pid, cmd)
                peaks[label] = max(peaks.get(label, 0), rss)
            peaks["total"] = max(peaks.get("total", 0), total)
            if stop.wait(every_s):
                return

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    try:
        yield peaks
    finally:
        stop.set()
        thread.join()


# ---- clients ------------------------------------------------------------------------------------


def transcribe(target: Target, path: Path, name: str | None = None, data: dict | None = None,
               headers: dict | None = None, timeout: float = 600) -> requests.Response:
    with open(path, "rb") as handle:
        return requests.post(f"{target.url}/v1/audio/transcriptions",
                             files={"file": (name or path.name, handle, "application/octet-stream")},
                             data=data or {"response_format": "json"},
                             headers={**target.auth, **(headers or {})}, timeout=timeout)


def normal_request(target: Target) -> int:
    return transcribe(target, target.speech, data={"language": "en"}).status_code


class SlowUpload:
    """A raw HTTP request whose body arrives a little at a time, held open until closed: an
    upload in progress, as a slow client or a slowloris makes it."""

    def __init__(self, target: Target, path: str, declared: int, headers: dict | None = None,
                 content_type: str = "multipart/form-data; boundary=slow"):
        url = urlparse(target.url)
        self.sock = socket.create_connection((url.hostname, url.port), timeout=120)
        lines = [f"POST {path} HTTP/1.1", f"Host: {url.hostname}:{url.port}",
                 f"Content-Type: {content_type}", f"Content-Length: {declared}"]
        lines += [f"{k}: {v}" for k, v in {**target.auth, **(headers or {})}.items()]
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        self.sock.sendall(b'--slow\r\nContent-Disposition: form-data; name="file"; filename="slow.wav"\r\n'
                          b"Content-Type: audio/wav\r\n\r\n")

    def send(self, count: int) -> bool:
        """Send ``count`` more bytes; False once the server has closed the connection."""
        try:
            self.sock.sendall(b"\0" * count)
        except OSError:
            return False
        return True

    def response(self, timeout: float) -> tuple[int, dict, str]:
        """(status, headers, body) of the answer, once it comes (0 when the server closed)."""
        self.sock.settimeout(timeout)
        data = b""
        try:
            while b"\r\n\r\n" not in data:
                chunk = self.sock.recv(65536)
                if not chunk:
                    break
                data += chunk
        except OSError:
            pass
        if not data:
            return 0, {}, ""
        head, _, body = data.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        headers = dict(line.split(": ", 1) for line in lines[1:] if ": " in line)
        return int(lines[0].split()[1]), {k.lower(): v for k, v in headers.items()}, body.decode("utf-8", "replace")

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass


# ---- files ----------------------------------------------------------------------------------------


def flac_declaring(path: Path, seconds: float) -> Path:
    """Rewrite a FLAC's STREAMINFO total samples so its header declares ``seconds``."""
    data = bytearray(path.read_bytes())
    assert data[:4] == b"fLaC" and data[4] & 0x7F == 0
    field_at = 8 + 10
    packed = int.from_bytes(data[field_at:field_at + 8], "big")
    rate = packed >> 44
    packed = (packed & ~((1 << 36) - 1)) | round(seconds * rate)
    data[field_at:field_at + 8] = packed.to_bytes(8, "big")
    path.write_bytes(bytes(data))
    return path


def lying_flac(work: Path, holds_s: float, declares_s: float) -> Path:
    path = work / f"lying-{int(holds_s)}-{int(declares_s)}.flac"
    if not path.exists():
        ffmpeg("-f", "lavfi", "-i", "anullsrc=r=16000:cl=mono", "-t", str(holds_s), "-c:a", "flac", str(path))
        flac_declaring(path, declares_s)
    return path


def two_hour_recording(work: Path, speech: Path) -> Path:
    """Two hours (less a minute, under the server's 2-hour limit) of an Opus voice recording at
    8 kb/s, under 3 MB: 30-minute stretches of ``speech`` then silence, made once (one stretch
    encoded, four joined without re-encoding)."""
    out = work / "two-hours.opus"
    if out.exists():
        return out
    stretch = work / "stretch.opus"
    ffmpeg("-i", str(speech), "-f", "lavfi", "-t", "1780", "-i", "anullsrc=r=16000:cl=mono",
           "-filter_complex", "[0:a]aresample=16000,aformat=channel_layouts=mono[s];[s][1:a]concat=n=2:v=0:a=1",
           "-c:a", "libopus", "-b:a", "8k", "-application", "voip", "-compression_level", "0", str(stretch))
    listing = work / "stretches.txt"
    listing.write_text(f"file '{stretch}'\n" * 4)
    ffmpeg("-f", "concat", "-safe", "0", "-i", str(listing), "-c", "copy", str(out))
    return out


# ---- the cases --------------------------------------------------------------------------------------


def case_lying_header(target: Target, as_job: bool = False) -> Finding:
    """1: a FLAC whose header says 60 s but holds 3 h of audio, to the synchronous endpoint
    (or as a job: the same decoding, against the jobs' limit)."""
    path = lying_flac(target.work, 3 * 3600, 60)
    if not as_job:
        response = transcribe(target, path, "short.flac")
        seen = response.text[:200]
        return Finding("1 header says 60 s, holds 3 h", [response.status_code], seen,
                       response.status_code == 400 and "too long" in seen)
    with open(path, "rb") as handle:
        response = requests.post(f"{target.url}/v1/jobs", headers=target.auth, timeout=60,
                                 files={"file": ("short.flac", handle, "audio/flac")})
    job = wait_for_job(target, response.json()["id"]) if response.status_code == 202 else {}
    seen = json.dumps(job.get("error"))[:200]
    return Finding("1 header says 60 s, holds 3 h (a job)", [response.status_code], seen,
                   job.get("status") == "failed" and "too long" in seen)


def case_short_of_header(target: Target) -> Finding:
    """1: a FLAC that declares 100 s and decodes 55 s."""
    path = lying_flac(target.work, 55, 100)
    response = transcribe(target, path, "cut.flac")
    return Finding("1 header says 100 s, holds 55 s", [response.status_code], response.text[:200],
                   response.status_code == 400 and "truncated" in response.text)


def case_cancelled_decode(target: Target, long_recording: Path) -> Finding:
    """1: a client that gives up (its deadline: 2 s) while its 2-hour recording decodes; the
    server's ffmpeg must not go on."""
    response = transcribe(target, long_recording, "long.opus", headers={"X-Sanyu-Timeout": "2"})
    left = {}
    if target.root_pid is not None:
        deadline = time.time() + 10
        while (left := ffmpeg_processes(target.root_pid)) and time.time() < deadline:
            time.sleep(0.2)
    return Finding("1 client gone mid-decode", [response.status_code],
                   f"ffmpeg left: {len(left)}", response.status_code == 504 and not left)


def case_junk_jobs(target: Target) -> Finding:
    """2: 20 uploads to /v1/jobs that are not audio: each refused at submission."""
    statuses = []
    for number in range(20):
        junk = os.urandom(400_000) if number % 2 else b"minutes of the meeting\n" * 1000
        response = requests.post(f"{target.url}/v1/jobs", headers=target.auth, timeout=60,
                                 files={"file": (f"junk-{number}.wav", junk, "audio/wav")})
        statuses.append(response.status_code)
    left = sorted(p.name for p in target.spool.iterdir()) if target.spool else []
    return Finding("2 twenty junk job uploads", sorted(set(statuses)), f"spool left: {left}",
                   all(s in (400, 415) for s in statuses) and not left)


def _hold(target: Target, path: str, count: int, declared: int) -> list[SlowUpload]:
    holders = []
    for _ in range(count):
        holder = SlowUpload(target, path, declared)
        holder.send(1024)
        holders.append(holder)
    time.sleep(1.0)  # every one of them admitted by now
    return holders


def case_job_queue_full(target: Target) -> Finding:
    """2: more jobs than the queue holds (uploads in progress hold their place): 429."""
    limit = int(target.limits["max_queued_jobs"])
    holders = _hold(target, "/v1/jobs", limit, 10 * 2**20)
    try:
        with open(target.speech, "rb") as handle:
            response = requests.post(f"{target.url}/v1/jobs", headers=target.auth, timeout=60,
                                     files={"file": ("one-more.wav", handle, "audio/wav")})
    finally:
        for holder in holders:
            holder.close()
    retry = response.headers.get("retry-after")
    return Finding("2 job queue full", [response.status_code], f"Retry-After: {retry}",
                   response.status_code == 429 and retry is not None and int(retry) > 0)


def case_requests_full(target: Target) -> Finding:
    """2: more synchronous requests than the server admits at once: 429 with Retry-After."""
    limit = int(target.limits["max_pending_requests"])
    holders = _hold(target, "/v1/audio/transcriptions", limit, 2**20)
    try:
        response = transcribe(target, target.speech)
    finally:
        for holder in holders:
            holder.close()
    retry = response.headers.get("retry-after")
    return Finding("2 requests in progress full", [response.status_code], f"Retry-After: {retry}",
                   response.status_code == 429 and retry is not None)


def case_spool_full(target: Target) -> Finding:
    """2: uploads that together fill the server's upload space: the next one gets 429."""
    declared = int(target.limits["max_upload_mb"] * 2**20) - 4096
    held = declared - 2 * 2**20  # each holder stops short of its body's end, so it stays open
    count = int(target.limits["max_spool_mb"] * 2**20 // held)
    holders = [SlowUpload(target, "/v1/audio/transcriptions", declared) for _ in range(count)]
    try:
        for holder in holders:
            for _ in range(held // 2**20):
                holder.send(2**20)
        time.sleep(1.0)
        over = SlowUpload(target, "/v1/audio/transcriptions", declared)
        status, headers, body = over.response(30)
        over.close()
    finally:
        for holder in holders:
            holder.close()
    used = count * held / 2**20
    return Finding("2 upload space full", [status], f"{used:.0f} MB held by slow uploads; {body[:100]}",
                   status == 429 and "retry-after" in headers)


def case_timeout_header(target: Target) -> Finding:
    """2: a slow upload that asks Ray's proxy for no timeout (x-request-timeout-seconds: 0)
    is still cut off at the server's upload deadline."""
    deadline = float(target.limits["upload_timeout_s"])
    holder = SlowUpload(target, "/v1/jobs", 2**20, headers={"x-request-timeout-seconds": "0",
                                                             "x-request-disconnect-disabled": "?1"})
    started = time.monotonic()
    try:
        holder.sock.settimeout(1.0)
        while time.monotonic() < started + deadline + 30 and holder.send(16):
            try:
                if holder.sock.recv(1, socket.MSG_PEEK):
                    break
            except OSError:
                continue
        status, _, _ = holder.response(10)
    finally:
        holder.close()
    took = time.monotonic() - started
    return Finding("2 no-timeout header, slow upload", [status], f"answered after {took:.1f} s",
                   status == 408 and took < deadline + 10)


def case_swapped_input(target: Target, blocker: Path, outside: Path) -> Finding:
    """3: a job input under the root swapped for a link to a file outside it while the job
    waits in the queue: the job transcribes what was submitted, not the outside file."""
    if target.input_root is None:
        return Finding("3 input swapped for a link", [], "skipped: no input root", True)
    expected = transcribe(target, target.speech, data={"language": "en"}).json()["text"]
    inside = target.input_root / f"swap-{uuid.uuid4().hex[:8]}.wav"
    inside.write_bytes(target.speech.read_bytes())
    with open(blocker, "rb") as handle:  # a job ahead of it, so it waits
        first = requests.post(f"{target.url}/v1/jobs", headers=target.auth, timeout=60,
                              files={"file": (blocker.name, handle, "audio/wav")}, data={"language": "en"})
    response = requests.post(f"{target.url}/v1/jobs", headers=target.auth, timeout=60,
                             json={"uri": str(inside), "language": "en"})
    inside.unlink()
    inside.symlink_to(outside)
    job = wait_for_job(target, response.json()["id"]) if response.status_code == 202 else {}
    if first.status_code == 202:
        wait_for_job(target, first.json()["id"])
    text = (job.get("result") or {}).get("text", "")
    return Finding("3 input swapped for a link", [first.status_code, response.status_code],
                   f"transcribed: {text[:60]!r}", job.get("status") == "done" and text == expected)


def case_fifo_input(target: Target) -> Finding:
    """3: a FIFO under the input root: refused at once, and the next job still runs."""
    if target.input_root is None:
        return Finding("3 FIFO as input", [], "skipped: no input root", True)
    fifo = target.input_root / f"pipe-{uuid.uuid4().hex[:8]}.wav"
    os.mkfifo(fifo)
    started = time.monotonic()
    response = requests.post(f"{target.url}/v1/jobs", headers=target.auth, timeout=60,
                             json={"uri": str(fifo)})
    took = time.monotonic() - started
    fifo.unlink()
    with open(target.speech, "rb") as handle:
        after = requests.post(f"{target.url}/v1/jobs", headers=target.auth, timeout=60,
                              files={"file": ("after.wav", handle, "audio/wav")}, data={"language": "en"})
    job = wait_for_job(target, after.json()["id"], 300) if after.status_code == 202 else {}
    return Finding("3 FIFO as input", [response.status_code, after.status_code],
                   f"refused in {took:.1f} s: {response.text[:80]}",
                   response.status_code == 400 and took < 10 and job.get("status") == "done")


def case_playlist_upload(target: Target) -> Finding:
    """4: an HLS playlist named meeting.wav naming a local file."""
    playlist = (f"#EXTM3U\n#EXT-X-TARGETDURATION:10\n#EXTINF:10,\nfile:{target.speech}\n"
                "#EXT-X-ENDLIST\n").encode()
    response = requests.post(f"{target.url}/v1/audio/transcriptions", headers=target.auth, timeout=60,
                             files={"file": ("meeting.wav", playlist, "audio/wav")})
    return Finding("4 playlist named meeting.wav", [response.status_code], response.text[:120],
                   response.status_code == 415)


def case_open_routes(target: Target) -> Finding:
    """7: the API schema and Serve's route table without the key."""
    statuses, open_paths = [], []
    for path in ("/docs", "/redoc", "/openapi.json", "/-/routes"):
        status = requests.get(f"{target.url}{path}", timeout=30).status_code
        statuses.append(status)
        if status == 200:
            open_paths.append(path)
    with_key = requests.get(f"{target.url}/openapi.json", headers=target.auth, timeout=30).status_code
    return Finding("7 schema and routes without key", statuses + [with_key],
                   f"open: {open_paths or 'none'}", not open_paths and with_key == 200)


def wait_for_job(target: Target, job_id: str, timeout: float = 600) -> dict:
    deadline = time.time() + timeout
    while True:
        job = requests.get(f"{target.url}/v1/jobs/{job_id}", headers=target.auth, timeout=30).json()
        if job.get("status") in ("done", "failed") or time.time() > deadline:
            return job
        time.sleep(1.0)


class RawUpload:
    """A whole multipart upload sent on a raw socket, whose client may walk away before the
    answer (``close``); ``status()`` waits for the answer until then."""

    def __init__(self, target: Target, path: Path, fields: dict | None = None):
        url = urlparse(target.url)
        boundary = uuid.uuid4().hex
        head = b"".join(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode()
            for k, v in (fields or {}).items())
        head += (f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{path.name}"'
                 "\r\nContent-Type: application/octet-stream\r\n\r\n").encode()
        tail = f"\r\n--{boundary}--\r\n".encode()
        size = len(head) + path.stat().st_size + len(tail)
        lines = ["POST /v1/audio/transcriptions HTTP/1.1", f"Host: {url.hostname}:{url.port}",
                 f"Content-Type: multipart/form-data; boundary={boundary}", f"Content-Length: {size}",
                 *(f"{k}: {v}" for k, v in target.auth.items())]
        self.sock = socket.create_connection((url.hostname, url.port), timeout=600)
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode() + head + path.read_bytes() + tail)
        self.closed = threading.Event()

    def status(self) -> int | None:
        """The answer's status, or None when the client walked away first."""
        self.sock.settimeout(1.0)
        data = b""
        while not self.closed.is_set() and b"\r\n" not in data:
            try:
                chunk = self.sock.recv(4096)
            except TimeoutError:
                continue
            except OSError:
                break
            if not chunk:
                break
            data += chunk
        return int(data.split()[1]) if data.startswith(b"HTTP/") else None

    def close(self) -> None:
        self.closed.set()
        self.sock.close()


def case_load(target: Target, long_recording: Path, normal_clients: int = 50,
              long_clients: int = 5) -> Finding:
    """2: 50 clients sending a short recording while 5 send 2-hour ones. The normal requests
    must all be answered 200 while the 2-hour ones are still in progress (they are not stuck
    behind them); the 2-hour clients then walk away, and the server must let go of them."""
    def normal(_):
        sent = time.monotonic()
        try:
            status = normal_request(target)
        except requests.RequestException:
            status = 0
        return status, time.monotonic() - sent

    started = time.monotonic()
    longs = [RawUpload(target, long_recording, {"language": "en"}) for _ in range(long_clients)]
    with ThreadPoolExecutor(normal_clients + long_clients) as pool:
        long_answers = [pool.submit(upload.status) for upload in longs]
        time.sleep(2.0)  # the 2-hour recordings are decoding
        normals = list(pool.map(normal, range(normal_clients)))
        finished = [answer.result() for answer in long_answers if answer.done()]
        for upload in longs:
            upload.close()
    took = time.monotonic() - started
    statuses = [s for s, _ in normals]
    slowest = max(t for _, t in normals)
    left = {}
    if target.root_pid is not None:  # the abandoned 2-hour requests stop decoding
        deadline = time.time() + 30
        while (left := ffmpeg_processes(target.root_pid)) and time.time() < deadline:
            time.sleep(0.5)
    seen = (f"{statuses.count(200)}/{len(statuses)} normal answered 200 in {took:.0f} s, slowest "
            f"{slowest:.1f} s, while {long_clients - len(finished)} of {long_clients} two-hour "
            f"requests were still in progress; ffmpeg left after they walked away: {len(left)}")
    return Finding(f"2 {normal_clients} normal + {long_clients} two-hour clients",
                   sorted(set(statuses + [s for s in finished if s])), seen,
                   all(s == 200 for s in statuses) and not left and len(finished) < long_clients)


def run(case, target: Target, *args) -> Finding:
    """One case with the Ray processes' memory watched, then a normal request."""
    with watch_rss(target.root_pid) as peaks:
        finding = case(target, *args)
    finding.peak_rss = dict(peaks)
    try:
        finding.answers_after = normal_request(target) == 200
    except requests.RequestException:
        finding.answers_after = False
    return finding
