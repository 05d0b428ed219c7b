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

import fsspec
from starlette.requests import Request

from sanyu.audio import Audio
from sanyu.options import TranscribeOptions
from sanyu.output.naming import file_stem, output_stem
from sanyu.paths import is_url, local_path, split_url
from sanyu.results import FAILED, OK, BatchSummary, FileResult
from sanyu.schema import Transcript
from sanyu.serve.config import ServeConfig
from sanyu.serve.errors import APIError, bad_request
from sanyu.serve.formats import to_verbose_json
from sanyu.serve.params import TranscriptionRequest, parse_request
from sanyu.serve.upload import Form, check_content_type, load_audio, read_form, safe_label
from sanyu.storage import Storage, input_key

log = logging.getLogger("sanyu.serve.jobs")

JOB_ID = re.compile(r"^job_[0-9a-f]{32}$")
RECORD = "_sanyu/job.json"
MAX_JSON_BYTES = 64 * 1024
COPY_CHUNK = 4 * 1024 * 1024
MAX_REMOTE_BYTES = 8 * 1024**3

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
    stem: str  # output file stem, as `sanyu batch` names it (sanyu.output.naming)


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
    uri = local_path(uri)
    if is_url(uri):
        scheme, rest = split_url(uri)
        if ".." in rest.split("/") or "?" in rest or "#" in rest:
            raise forbidden(f"{uri!r} is not under an allowed input root")
        normalized = f"{scheme}://{posixpath.normpath(rest)}"
        for root in roots:
            if is_url(root):
                r_scheme, r_rest = split_url(root)
                root_url = f"{r_scheme}://{posixpath.normpath(r_rest)}"
                if _under(normalized, root_url):
                    return JobInput("remote", normalized, posixpath.basename(normalized),
                                    output_stem(normalized, root_url))
        raise forbidden(f"{uri!r} is not under an allowed input root")
    if not os.path.isabs(uri):
        raise bad_request("a local path must be absolute", param="uri")
    real = os.path.realpath(uri)
    for root in roots:
        if is_url(root):
            continue
        root_real = os.path.realpath(local_path(root))
        if os.path.commonpath([real, root_real]) == root_real:
            return JobInput("local", real, os.path.basename(real), output_stem(real, root_real))
    raise forbidden(f"{uri!r} is not under an allowed input root")


def fetch_remote(url: str, directory: Path, max_bytes: int, storage_options: dict | None = None) -> Path:
    """Copy a storage object into ``directory`` (never handing the URL to ffmpeg)."""
    suffix = Path(posixpath.basename(url)).suffix.lower()
    if not re.fullmatch(r"\.[a-z0-9]{1,5}", suffix):
        suffix = ".bin"
    target = directory / f"input{suffix}"
    copied = 0
    try:
        with fsspec.open(url, "rb", **(storage_options or {})) as source, open(target, "wb") as sink:
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
    """Each job's results under ``<output>/<job id>/``, in the batch job's layout
    (:mod:`sanyu.storage`): as if ``sanyu batch`` had run on that one input, with the
    job's record beside them at ``_sanyu/job.json``::

        <output>/<job id>/<stem>.json|txt|srt|vtt   the transcript files
        <output>/<job id>/_sanyu/transcripts/<key>.json, _sanyu/done/<stem>.json, ...
        <output>/<job id>/index.parquet, errors.jsonl, summary.json
        <output>/<job id>/_sanyu/job.json           status, times, input, options, outputs
    """

    def __init__(self, config: ServeConfig):
        self.config = config
        self.root = Storage(config.resolved_output(), dict(config.storage_options))

    def job(self, job_id: str) -> Storage:
        return Storage(self.root.url(job_id), dict(self.config.storage_options))

    def save_record(self, job_id: str, record: dict[str, Any]) -> None:
        data = json.dumps(record, ensure_ascii=False, indent=1).encode("utf-8")
        self.root.put(f"{job_id}/{RECORD}", data)

    def load_record(self, job_id: str) -> dict[str, Any] | None:
        data = self.root.get(f"{job_id}/{RECORD}")
        return json.loads(data) if data is not None else None

    def write_result(
        self, job_id: str, job_input: JobInput, key: str, transcript: Transcript,
        options: TranscribeOptions, seconds: float,
    ) -> dict[str, Any]:
        storage = self.job(job_id)
        done = storage.write_result(
            job_input.stem, key, transcript, self.config.job_formats, options.speaker_names,
            input_path=job_input.label, run_id=job_id, seconds=seconds,
        )
        summary = BatchSummary(
            storage.uri, job_id,
            [FileResult(job_input.label, job_input.stem, OK, transcript.duration, key=key)],
            seconds,
        )
        summary.errors = storage.write_errors([])
        summary.index = storage.write_index([job_input.stem])
        storage.write_summary(summary.to_dict())
        return {
            "location": storage.uri,
            "stem": job_input.stem,
            "key": key,
            "files": done["outputs"],
            "index": summary.index,
            "summary": storage.url("summary.json"),
        }

    def write_failure(
        self, job_id: str, job_input: JobInput, stage: str, reason: str, key: str, seconds: float
    ) -> dict[str, Any]:
        storage = self.job(job_id)
        error = storage.write_error(job_input.stem, job_input.label, stage, reason, key, job_id)
        summary = BatchSummary(
            storage.uri, job_id,
            [FileResult(job_input.label, job_input.stem, FAILED, 0.0, stage, reason, key)],
            seconds,
        )
        summary.errors = storage.write_errors([error])
        summary.index = storage.write_index([])
        storage.write_summary(summary.to_dict())
        return {"location": storage.uri, "stem": job_input.stem, "errors": summary.errors}

    def read_transcript(self, job_id: str, stem: str) -> Transcript | None:
        return self.job(job_id).read_transcript(stem=stem)


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
            "stem": job_input.stem,
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
            label = safe_label(form.file.filename)
            check_content_type(form.file.content_type, label)
            job_input = JobInput("upload", str(form.file.path), label, file_stem(label))
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
        stage, key, started = "job", "", time.perf_counter()
        try:
            async with self._slots:
                await asyncio.to_thread(self._update, job_id, status="running", started_at=time.time())
                stage = "fetch" if job_input.kind == "remote" else "decode"
                path = await asyncio.to_thread(self._local_path, job_input, directory)
                stage = "decode"
                key = await asyncio.to_thread(self._result_key, path, params.options)
                audio = await asyncio.to_thread(
                    load_audio, path, job_input.label, self.config.max_audio_s
                )
                stage = "transcribe"
                transcript = await self.transcribe(audio, params.options)
                stage = "write"
                outputs = await asyncio.to_thread(
                    self.storage.write_result, job_id, job_input, key, transcript, params.options,
                    time.perf_counter() - started,
                )
                await asyncio.to_thread(
                    self._update, job_id, status="done", finished_at=time.time(), key=key,
                    outputs=outputs, duration=transcript.duration, languages=transcript.languages,
                    speakers=transcript.speakers,
                )
        except asyncio.CancelledError:
            self._fail(job_id, job_input, stage, key, started, "cancelled: the server stopped", "cancelled")
            raise
        except APIError as exc:
            await asyncio.to_thread(
                self._fail, job_id, job_input, stage, key, started, exc.message, exc.code
            )
        except Exception as exc:
            log.exception("job %s failed", job_id)
            await asyncio.to_thread(
                self._fail, job_id, job_input, stage, key, started,
                f"{type(exc).__name__}: {str(exc)[:500]}", "job_failed",
            )
        finally:
            shutil.rmtree(directory, ignore_errors=True)
            # Finished: storage holds the record now (keeps memory flat on a long-running server).
            if self.records.get(job_id, {}).get("status") in ("done", "failed"):
                self.records.pop(job_id, None)

    def _fail(
        self, job_id: str, job_input: JobInput, stage: str, key: str, started: float,
        message: str, code: str | None,
    ) -> None:
        outputs = None
        try:
            outputs = self.storage.write_failure(
                job_id, job_input, stage, message, key, time.perf_counter() - started
            )
        except Exception:
            log.exception("could not write the failure of job %s", job_id)
        self._update(
            job_id, status="failed", finished_at=time.time(), outputs=outputs,
            error={"message": message, "code": code, "stage": stage},
        )

    def _local_path(self, job_input: JobInput, directory: Path) -> Path:
        if job_input.kind == "remote":
            return fetch_remote(
                job_input.location, directory, MAX_REMOTE_BYTES, dict(self.config.storage_options)
            )
        return Path(job_input.location)

    def _result_key(self, path: Path, options: TranscribeOptions) -> str:
        """The batch job's result key: the input's content hash and the settings' key."""
        try:
            return input_key(path, self.config.model_options, options)
        except OSError:
            raise bad_request(f"{path.name}: cannot be read", code="invalid_audio") from None

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
            transcript = await asyncio.to_thread(self.storage.read_transcript, job_id, answer["stem"])
            if transcript is not None:
                answer["result"] = to_verbose_json(transcript, segments=True, words=True)
        return answer
