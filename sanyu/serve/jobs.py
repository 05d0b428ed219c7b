"""Asynchronous jobs: ``POST /v1/jobs`` answers with an id once the input is checked; the
transcript is written to storage in the batch job's layout (`sanyu.serve.job_store`), and
``GET /v1/jobs/{id}`` reports the status and the result.

A job's input is an upload (multipart ``file``) or a ``uri`` under one of the server's
``input_roots`` (`sanyu.serve.job_inputs`). Before a job is accepted (202), its upload has
arrived within ``upload_timeout_s`` and been probed, or its local file has been opened (once:
the job hashes and decodes that descriptor) and probed; a storage object is fetched and probed
when the job runs. A job is refused with 429 when ``max_queued_jobs`` are queued or running, or
the upload space is full (`sanyu.serve.admission`).

Statuses: ``queued`` → ``running`` → ``done`` | ``failed``. Jobs run in the ingress process, at
most ``max_running_jobs`` at once, each within ``job_timeout_s``, through the same model
deployment as synchronous requests but as bulk work, in pieces (`sanyu.serve.recording`): a
short request is never stuck behind a job. Uploads wait in a private folder until their job
ends. A job whose server stopped is marked failed, and its folder removed, by the next server
(see `sanyu.serve.job_store`).
"""

from __future__ import annotations

import asyncio
import json
import logging
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

from sanyu.audio import MediaFile, MediaInfo
from sanyu.output.naming import file_stem
from sanyu.serve.admission import Admission, Slot, SpoolShare
from sanyu.serve.config import ServeConfig
from sanyu.serve.errors import APIError, bad_request
from sanyu.serve.formats import to_verbose_json
from sanyu.serve.job_inputs import MAX_REMOTE_BYTES, JobInput, fetch_remote, open_local, resolve_input
from sanyu.serve.job_store import ACTIVE_STATUSES, JobStorage
from sanyu.serve.params import TranscriptionRequest, parse_request
from sanyu.serve.recording import Recordings
from sanyu.serve.upload import (
    Form, check_content_type, check_media, make_spool_folder, open_upload, read_form, safe_label,
    upload_name,
)
from sanyu.storage import input_key

log = logging.getLogger("sanyu.serve.jobs")

JOB_ID = re.compile(r"^job_[0-9a-f]{32}$")
MAX_JSON_BYTES = 64 * 1024
DECODE_CODES = ("invalid_audio", "empty_file", "unsupported_media_type")
# A queued or running job not renewed for this many heartbeats has lost its server.
STALE_HEARTBEATS = 3

Fingerprint = Callable[[], Awaitable[dict]]


def not_found(job_id: str) -> APIError:
    return APIError(404, f"no job {job_id!r}", code="job_not_found")


@dataclass
class _Job:
    """What a queued or running job holds: its input (open, for an upload or a local file),
    its private folder, its share of the upload space, its place in the queue."""

    id: str
    input: JobInput
    params: TranscriptionRequest
    directory: Path
    share: SpoolShare
    slot: Slot
    media: MediaFile | None = None
    stage: str = "job"
    key: str = ""

    def close(self) -> None:
        if self.media is not None:
            self.media.close()
        shutil.rmtree(self.directory, ignore_errors=True)
        self.share.release()
        self.slot.release()


class JobManager:
    def __init__(self, config: ServeConfig, recordings: Recordings, admission: Admission,
                 fingerprint: Fingerprint):
        self.config = config
        self.recordings = recordings
        self.admission = admission
        self.fingerprint = fingerprint
        self.storage = JobStorage(config)
        self.owner = uuid.uuid4().hex  # this manager, in the records of the jobs it runs
        self.records: dict[str, dict[str, Any]] = {}
        self.tasks: dict[str, asyncio.Task] = {}
        self._running = asyncio.Semaphore(max(1, config.max_running_jobs))
        self._keeper: asyncio.Task | None = None
        self.sweep()

    # ---- jobs of stopped servers -----------------------------------------------------------

    def _spool_root(self) -> Path:
        return Path(self.config.spool_dir or tempfile.gettempdir())

    def sweep(self) -> int:
        """Mark failed the jobs no live server runs any more, and remove their folders; remove
        upload folders a stopped server left. Returns how many jobs were marked."""
        stale = self.storage.stale_jobs(self.owner, STALE_HEARTBEATS * self.config.job_heartbeat_s)
        for record in stale:
            job_id = record["id"]
            job_input = JobInput(record["input"]["kind"], "", record["input"]["name"], record["stem"])
            message = "the server stopped before this job finished; submit it again"
            try:
                outputs = self.storage.write_failure(job_id, job_input, "job", message,
                                                     record.get("key") or "", 0.0)
            except Exception:
                log.exception("could not write the failure of job %s", job_id)
                outputs = None
            record.update(status="failed", finished_at=time.time(), outputs=outputs,
                          error={"message": message, "code": "server_stopped", "stage": "job"})
            self.storage.save_record(job_id, record)
            for folder in self._spool_root().glob(f"sanyu-{job_id}-*"):
                shutil.rmtree(folder, ignore_errors=True)
            log.warning("job %s was left unfinished by a stopped server: marked failed", job_id)
        too_old = time.time() - 2 * self.config.request_timeout_s
        for folder in self._spool_root().glob("sanyu-upload-*"):
            try:
                if folder.stat().st_mtime < too_old:
                    shutil.rmtree(folder, ignore_errors=True)
            except OSError:
                pass
        return len(stale)

    def _keep(self) -> None:
        if self._keeper is None or self._keeper.done():
            self._keeper = asyncio.get_running_loop().create_task(self._heartbeat())

    async def _heartbeat(self) -> None:
        """Renew this manager's active jobs; sweep for jobs of stopped servers."""
        while True:
            await asyncio.sleep(self.config.job_heartbeat_s)
            now = time.time()
            for job_id, record in list(self.records.items()):
                if record["status"] in ACTIVE_STATUSES:
                    record["heartbeat"] = now
                    await asyncio.to_thread(self._save, job_id, record)
            try:
                await asyncio.to_thread(self.sweep)
            except Exception:
                log.exception("sweeping for stale jobs failed")

    # ---- submission ----------------------------------------------------------------------

    async def create(self, request: Request) -> dict[str, Any]:
        self._keep()
        job_id = f"job_{uuid.uuid4().hex}"
        slot = self.admission.jobs.take()
        try:
            directory = make_spool_folder(self.config.spool_dir, f"sanyu-{job_id}-")
        except BaseException:
            slot.release()
            raise
        job = _Job(job_id, None, None, directory, self.admission.spool.reserve(), slot)
        try:
            try:
                await asyncio.wait_for(self._parse(request, job), self.config.upload_timeout_s)
            except TimeoutError:
                raise APIError(408, f"the request did not arrive within {self.config.upload_timeout_s:g} s",
                               code="upload_timeout") from None
            now = time.time()
            record = {
                "id": job_id,
                "object": "transcription.job",
                "status": "queued",
                "created_at": now,
                "started_at": None,
                "finished_at": None,
                "input": {"kind": job.input.kind, "name": job.input.label},
                "stem": job.input.stem,
                "options": job.params.options.to_dict(),
                "error": None,
                "owner": self.owner,
                "heartbeat": now,
            }
            await asyncio.to_thread(self.storage.save_record, job_id, record)
        except BaseException:
            job.close()
            raise
        self.records[job_id] = record
        task = asyncio.create_task(self._run(job))
        self.tasks[job_id] = task
        task.add_done_callback(lambda _: self.tasks.pop(job_id, None))
        return self._public(record)

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

    async def _parse(self, request: Request, job: _Job) -> None:
        """The job's input (checked, and opened and probed unless it is a storage object) and
        its options."""
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
            form = await read_form(request, job.directory, self.config.max_upload_bytes, job.share)
        uri = form.get("uri")
        if form.file is not None and uri:
            raise bad_request("send either a file or a uri, not both", param="uri")
        # Jobs keep every timestamp: the stored transcript serves all formats.
        job.params = parse_request(form, self.config.default_options, self.config.allow_diarize)
        if form.file is not None:
            label = safe_label(form.file.filename)
            check_content_type(form.file.content_type, label)
            stem = file_stem(upload_name(form.file.filename))
            job.input = JobInput("upload", str(form.file.path), label, stem)
            job.media, info = await asyncio.to_thread(open_upload, form.file.path, label)
            self._check_length(info, label)
        elif uri:
            job.input = resolve_input(uri, self.config.input_roots)
            if job.input.kind == "local":
                job.media = await asyncio.to_thread(self._open_local, job.input)
        else:
            raise bad_request(
                "no audio: send a multipart 'file', or a 'uri' under an allowed input root",
                code="missing_file", param="file",
            )

    def _open_local(self, job_input: JobInput) -> MediaFile:
        media = open_local(job_input, self.config.input_roots)
        try:
            self._check_length(check_media(media), job_input.label)
        except BaseException:
            media.close()
            raise
        return media

    def _check_length(self, info: MediaInfo, label: str) -> None:
        """400 at once for a file whose (exact) declared length is over the jobs' limit; one
        whose header understates its length fails when the decode passes the limit."""
        limit = self.config.max_audio_s
        if info.exact and info.duration is not None and info.duration > limit:
            raise bad_request(f"{label}: too long: {info.duration / 3600:.1f} h exceeds the "
                              f"{limit / 3600:g} h limit", code="invalid_audio", param="file")

    # ---- running -------------------------------------------------------------------------

    def _save(self, job_id: str, record: dict[str, Any]) -> None:
        try:
            self.storage.save_record(job_id, record)
        except Exception:
            log.exception("could not save the record of job %s", job_id)

    def _update(self, job_id: str, **changes: Any) -> None:
        record = self.records[job_id]
        record.update(changes, heartbeat=time.time())
        self._save(job_id, record)

    async def _run(self, job: _Job) -> None:
        started = time.perf_counter()
        try:
            async with self._running:
                await asyncio.to_thread(self._update, job.id, status="running", started_at=time.time())
                try:
                    await asyncio.wait_for(self._work(job, started), self.config.job_timeout_s)
                except TimeoutError:
                    raise APIError(504, f"the job did not finish within {self.config.job_timeout_s:g} s",
                                   code="job_timeout") from None
        except asyncio.CancelledError:
            self._fail(job, started, "cancelled: the server stopped", "cancelled")
            raise
        except APIError as exc:
            if exc.code in DECODE_CODES:
                job.stage = "decode"
            await asyncio.to_thread(self._fail, job, started, exc.message, exc.code)
        except Exception as exc:
            log.exception("job %s failed", job.id)
            await asyncio.to_thread(self._fail, job, started,
                                    f"{type(exc).__name__}: {str(exc)[:500]}", "job_failed")
        finally:
            job.close()
            # Finished: storage holds the record now (keeps memory flat on a long-running server).
            if self.records.get(job.id, {}).get("status") in ("done", "failed"):
                self.records.pop(job.id, None)

    async def _work(self, job: _Job, started: float) -> None:
        options = job.params.options
        if job.media is None:  # a storage object: fetched now, into the job's folder
            job.stage = "fetch"
            room = min(MAX_REMOTE_BYTES, job.share.room())
            path = await asyncio.to_thread(fetch_remote, job.input.location, job.directory, room,
                                           dict(self.config.storage_options))
            job.share.take(path.stat().st_size)
            job.stage = "decode"
            job.media, _ = await asyncio.to_thread(open_upload, path, job.input.label)
        job.stage = "decode"
        fingerprint = await self.fingerprint()
        job.key = await asyncio.to_thread(input_key, job.media.fd, self.config.model_options,
                                          options, fingerprint)
        job.stage = "transcribe"
        transcript = await self.recordings.transcribe(job.media, options, self.config.max_audio_s,
                                                      bulk=True)
        job.stage = "write"
        outputs = await asyncio.to_thread(
            self.storage.write_result, job.id, job.input, job.key, transcript, options,
            time.perf_counter() - started,
        )
        await asyncio.to_thread(
            self._update, job.id, status="done", finished_at=time.time(), key=job.key,
            outputs=outputs, duration=transcript.duration, languages=transcript.languages,
            speakers=transcript.speakers,
        )

    def _fail(self, job: _Job, started: float, message: str, code: str | None) -> None:
        outputs = None
        try:
            outputs = self.storage.write_failure(job.id, job.input, job.stage, message, job.key,
                                                 time.perf_counter() - started)
        except Exception:
            log.exception("could not write the failure of job %s", job.id)
        self._update(job.id, status="failed", finished_at=time.time(), outputs=outputs,
                     error={"message": message, "code": code, "stage": job.stage})

    # ---- status --------------------------------------------------------------------------

    @staticmethod
    def _public(record: dict[str, Any]) -> dict[str, Any]:
        """What a client is shown of a record (not the server's bookkeeping)."""
        return {k: v for k, v in record.items() if k not in ("owner", "heartbeat")}

    async def get(self, job_id: str) -> dict[str, Any]:
        self._keep()
        if not JOB_ID.match(job_id):
            raise not_found(job_id)
        record = self.records.get(job_id)
        if record is None:
            record = await asyncio.to_thread(self.storage.load_record, job_id)
        if record is None:
            raise not_found(job_id)
        answer = self._public(record)
        if answer["status"] == "done":
            transcript = await asyncio.to_thread(self.storage.read_transcript, job_id, answer["stem"])
            if transcript is not None:
                answer["result"] = to_verbose_json(transcript, segments=True, words=True)
        return answer
