"""Asynchronous jobs: ``POST /v1/jobs`` answers at once with an id; the transcript is written to
storage in the batch job's layout, and ``GET /v1/jobs/{id}`` reports the status and the result.

A job's input is an upload (multipart ``file``) or a ``uri``: a local path or a storage URL
(``s3://...``) that lies under one of the server's ``input_roots``. Anything else is refused
with 403; a local path is resolved (symlinks included) before it is checked, and a remote object
is copied to a private temporary folder first, so ffmpeg only ever reads a file the server
chose. Uploads wait in the same kind of private folder until their job ends, then it is removed.

Statuses: ``queued`` → ``running`` → ``done`` | ``failed``. The job's record is kept in storage
with the results, so any ingress replica (or a restarted server) can answer for it. Jobs run in
the ingress process, at most ``max_running_jobs`` at once, through the same model deployment
(and batching) as synchronous requests. A job still running when its ingress replica stops is
lost: its record stays ``running``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import posixpath
import re
import shutil
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from starlette.requests import Request

from sanyu.audio import Audio
from sanyu.options import TranscribeOptions
from sanyu.schema import Transcript
from sanyu.serve.config import ServeConfig
from sanyu.serve.errors import APIError, bad_request
from sanyu.serve.formats import to_verbose_json
from sanyu.serve.params import TranscriptionRequest, parse_request
from sanyu.serve.upload import Form, check_content_type, load_audio, read_form

log = logging.getLogger("sanyu.serve.jobs")

JOB_ID = re.compile(r"^job_[0-9a-f]{32}$")
MAX_JSON_BYTES = 64 * 1024
COPY_CHUNK = 4 * 1024 * 1024

Transcribe = Callable[[Audio, TranscribeOptions], Awaitable[Transcript]]


def forbidden(message: str) -> APIError:
    return APIError(403, message, code="uri_not_allowed", param="uri")


def not_found(job_id: str) -> APIError:
    return APIError(404, f"no job {job_id!r}", code="job_not_found")


# ---- inputs -----------------------------------------------------------------------------


@dataclass(frozen=True)
class JobInput:
    kind: str  # upload | local | remote
    location: str  # a path (upload, local) or a URL (remote)
    label: str  # the name reported back and kept in the transcript


def _is_url(value: str) -> bool:
    return re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*://", value) is not None


def _under(child: str, root: str) -> bool:
    return child == root or child.startswith(root.rstrip("/") + "/")


def resolve_input(uri: str, roots: tuple[str, ...]) -> JobInput:
    """Check a job's ``uri`` against the allowed roots; 403 unless it lies under one."""
    uri = (uri or "").strip()
    if not uri:
        raise bad_request("uri is empty", param="uri")
    if any(ord(c) < 32 for c in uri):
        raise bad_request("uri holds control characters", param="uri")
    if not roots:
        raise forbidden("this server accepts no storage URIs or paths: upload the file instead")
    if uri.startswith("file://"):
        uri = uri[len("file://"):]
    if _is_url(uri):
        scheme, rest = uri.split("://", 1)
        if ".." in rest.split("/") or "?" in rest or "#" in rest:
            raise forbidden(f"{uri!r} is not under an allowed input root")
        normalized = f"{scheme.lower()}://{posixpath.normpath(rest)}"
        for root in roots:
            if _is_url(root) and not root.startswith("file://"):
                r_scheme, r_rest = root.split("://", 1)
                if _under(normalized, f"{r_scheme.lower()}://{posixpath.normpath(r_rest)}"):
                    return JobInput("remote", normalized, posixpath.basename(normalized))
        raise forbidden(f"{uri!r} is not under an allowed input root")
    if not os.path.isabs(uri):
        raise bad_request("a local path must be absolute", param="uri")
    real = os.path.realpath(uri)
    for root in roots:
        if _is_url(root) and not root.startswith("file://"):
            continue
        root_real = os.path.realpath(root[len("file://"):] if root.startswith("file://") else root)
        if os.path.commonpath([real, root_real]) == root_real:
            return JobInput("local", real, os.path.basename(real))
    raise forbidden(f"{uri!r} is not under an allowed input root")


def fetch_remote(url: str, directory: Path, max_bytes: int) -> Path:
    """Copy a storage object into ``directory`` (never handing the URL to ffmpeg)."""
    import fsspec

    suffix = Path(posixpath.basename(url)).suffix.lower()
    if not re.fullmatch(r"\.[a-z0-9]{1,5}", suffix):
        suffix = ".bin"
    target = directory / f"input{suffix}"
    copied = 0
    try:
        with fsspec.open(url, "rb") as source, open(target, "wb") as sink:
            while chunk := source.read(COPY_CHUNK):
                copied += len(chunk)
                if copied > max_bytes:
                    raise bad_request(f"{url}: larger than {max_bytes / 1e9:g} GB", param="uri")
                sink.write(chunk)
    except FileNotFoundError:
        raise bad_request(f"{url}: not found", code="invalid_audio", param="uri") from None
    except APIError:
        raise
    except Exception as exc:
        raise bad_request(f"{url}: cannot be read ({type(exc).__name__})", param="uri") from None
    return target


# ---- storage -----------------------------------------------------------------------------


class JobStorage:
    """Where job records and results go: the batch job's storage layout under ``config.output``."""

    def __init__(self, config: ServeConfig):
        self.config = config
        self.root = config.resolved_output()

    def _fs(self):
        import fsspec

        return fsspec.core.url_to_fs(self.root)

    def _path(self, job_id: str, name: str) -> str:
        return posixpath.join(self.root, "jobs", job_id, name) if _is_url(self.root) else os.path.join(
            self.root, "jobs", job_id, name
        )

    def save_record(self, job_id: str, record: dict[str, Any]) -> None:
        from sanyu.output.writers import _write_local

        data = json.dumps(record, ensure_ascii=False, indent=2).encode("utf-8")
        path = self._path(job_id, "job.json")
        if _is_url(path):
            fs, p = self._fs()[0], path
            fs.pipe_file(p, data)
        else:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            _write_local(path, data)

    def load_record(self, job_id: str) -> dict[str, Any] | None:
        import fsspec

        try:
            with fsspec.open(self._path(job_id, "job.json"), "rb") as handle:
                return json.loads(handle.read())
        except FileNotFoundError:
            return None

    def write_result(self, job_id: str, transcript: Transcript, options: TranscribeOptions) -> dict:
        from sanyu.output import write_outputs

        directory = self._path(job_id, "")
        written = write_outputs(
            transcript, directory.rstrip("/\\"), "transcript", self.config.job_formats,
            options.speaker_names,
        )
        return {"directory": directory.rstrip("/\\"), "files": written}

    def load_transcript(self, record: dict[str, Any]) -> Transcript | None:
        import fsspec

        for path in record.get("outputs", {}).get("files", []):
            if path.endswith(".json"):
                with fsspec.open(path, "rb") as handle:
                    return Transcript.from_json(handle.read().decode("utf-8"))
        return None


# ---- the manager -------------------------------------------------------------------------


class JobManager:
    def __init__(self, config: ServeConfig, transcribe: Transcribe):
        self.config = config
        self.transcribe = transcribe
        self.storage = JobStorage(config)
        self.records: dict[str, dict[str, Any]] = {}
        self.tasks: dict[str, asyncio.Task] = {}
        self._slots = asyncio.Semaphore(max(1, config.max_running_jobs))

    def _spool_root(self) -> str:
        root = self.config.spool_dir or tempfile.gettempdir()
        os.makedirs(root, exist_ok=True)
        return root

    async def _read_json(self, request: Request) -> dict[str, Any]:
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > MAX_JSON_BYTES:
                raise APIError(413, "JSON body too large", code="body_too_large")
        try:
            data = json.loads(body or b"{}")
        except ValueError:
            raise bad_request("the body is not valid JSON", code="invalid_json") from None
        if not isinstance(data, dict):
            raise bad_request("the JSON body must be an object", code="invalid_json")
        return data

    async def create(self, request: Request) -> dict[str, Any]:
        job_id = f"job_{uuid.uuid4().hex}"
        directory = Path(tempfile.mkdtemp(prefix=f"sanyu-{job_id}-", dir=self._spool_root()))
        try:
            job_input, params = await self._parse(request, directory)
        except BaseException:
            shutil.rmtree(directory, ignore_errors=True)
            raise
        now = time.time()
        record = {
            "id": job_id,
            "object": "transcription.job",
            "status": "queued",
            "created_at": now,
            "started_at": None,
            "finished_at": None,
            "input": {"kind": job_input.kind, "name": job_input.label},
            "options": params.options.to_dict(),
            "error": None,
        }
        try:
            await asyncio.to_thread(self.storage.save_record, job_id, record)
        except BaseException:
            shutil.rmtree(directory, ignore_errors=True)
            raise
        self.records[job_id] = record
        task = asyncio.create_task(self._run(job_id, job_input, params, directory))
        self.tasks[job_id] = task
        task.add_done_callback(lambda _: self.tasks.pop(job_id, None))
        return dict(record)

    async def _parse(self, request: Request, directory: Path) -> tuple[JobInput, TranscriptionRequest]:
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if content_type == "application/json":
            data = await self._read_json(request)
            form = Form(
                fields={
                    k: [v if isinstance(v, str) else json.dumps(v) if isinstance(v, bool) else str(v)]
                    for k, v in data.items()
                    if v is not None and not isinstance(v, (list, dict))
                }
            )
            for key, value in data.items():
                if isinstance(value, list):
                    form.fields[key] = [str(v) for v in value]
        else:
            form = await read_form(request, directory, self.config.max_upload_bytes)
        uri = form.get("uri")
        if form.file is not None and uri:
            raise bad_request("send either a file or a uri, not both", param="uri")
        if form.file is not None:
            from sanyu.serve.app import _label

            label = _label(form.file.filename)
            check_content_type(form.file.content_type, label)
            job_input = JobInput("upload", str(form.file.path), label)
        elif uri:
            job_input = resolve_input(uri, self.config.input_roots)
        else:
            raise bad_request(
                "no audio: send a multipart 'file', or a 'uri' under an allowed input root",
                code="missing_file", param="file",
            )
        # Jobs keep every timestamp: the stored transcript serves all formats.
        params = parse_request(form, self.config.default_options, self.config.allow_diarize)
        return job_input, params

    def _update(self, job_id: str, **changes: Any) -> dict[str, Any]:
        record = self.records[job_id]
        record.update(changes)
        try:
            self.storage.save_record(job_id, record)
        except Exception:
            log.exception("could not save the record of job %s", job_id)
        return record

    async def _run(self, job_id: str, job_input: JobInput, params: TranscriptionRequest, directory: Path):
        try:
            async with self._slots:
                await asyncio.to_thread(self._update, job_id, status="running", started_at=time.time())
                audio = await asyncio.to_thread(self._load, job_input, directory)
                transcript = await self.transcribe(audio, params.options)
                outputs = await asyncio.to_thread(
                    self.storage.write_result, job_id, transcript, params.options
                )
                await asyncio.to_thread(
                    self._update, job_id, status="done", finished_at=time.time(), outputs=outputs,
                    duration=transcript.duration, languages=transcript.languages,
                    speakers=transcript.speakers,
                )
        except asyncio.CancelledError:
            self._update(job_id, status="failed", finished_at=time.time(),
                         error={"message": "cancelled: the server stopped", "code": "cancelled"})
            raise
        except APIError as exc:
            await asyncio.to_thread(
                self._update, job_id, status="failed", finished_at=time.time(),
                error={"message": exc.message, "code": exc.code},
            )
        except Exception as exc:
            log.exception("job %s failed", job_id)
            await asyncio.to_thread(
                self._update, job_id, status="failed", finished_at=time.time(),
                error={"message": f"{type(exc).__name__}: {str(exc)[:500]}", "code": "job_failed"},
            )
        finally:
            shutil.rmtree(directory, ignore_errors=True)

    def _load(self, job_input: JobInput, directory: Path) -> Audio:
        if job_input.kind == "remote":
            path = fetch_remote(job_input.location, directory, 8 * 1024**3)
        else:
            path = Path(job_input.location)
        return load_audio(path, job_input.label, self.config.max_audio_s)

    async def get(self, job_id: str) -> dict[str, Any]:
        if not JOB_ID.match(job_id):
            raise not_found(job_id)
        record = self.records.get(job_id)
        if record is None:
            record = await asyncio.to_thread(self.storage.load_record, job_id)
        if record is None:
            raise not_found(job_id)
        answer = dict(record)
        if answer["status"] == "done":
            transcript = await asyncio.to_thread(self.storage.load_transcript, answer)
            if transcript is not None:
                answer["result"] = to_verbose_json(transcript, segments=True, words=True)
        return answer
