"""Where jobs live: each job's results and record in storage, and which jobs are still active.

Each job's results go under ``<output>/<job id>/``, in the batch job's layout
(:mod:`sanyu.storage`), as if ``sanyu batch`` had run on that one input, with its record beside
them::

    <output>/<job id>/<stem>.json|txt|srt|vtt   the transcript files
    <output>/<job id>/_sanyu/transcripts/<key>.json, _sanyu/done/<stem>.json, ...
    <output>/<job id>/index.parquet, errors.jsonl, summary.json
    <output>/<job id>/_sanyu/job.json           status, times, input, options, outputs
    <output>/_sanyu/active/<job id>.json        while the job is queued or running

A job's record names its files relative to its own folder (a client sees no server path). The
server that owns a queued or running job renews its record's ``heartbeat``; a job whose server
stopped (a crash, ``kill -9``, a restart) stops being renewed, and `JobStorage.stale_jobs` finds
it, so the next server (or another ingress replica) marks it failed and removes its files.
"""

from __future__ import annotations

import json
import time
from typing import Any

from sanyu.options import TranscribeOptions
from sanyu.results import FAILED, OK, BatchSummary, FileResult
from sanyu.schema import Transcript
from sanyu.serve.config import ServeConfig
from sanyu.serve.job_inputs import JobInput
from sanyu.storage import META, Storage

RECORD = f"{META}/job.json"
ACTIVE = f"{META}/active"
ACTIVE_STATUSES = ("queued", "running")


class JobStorage:
    """Jobs' results and records under the server's ``output`` (see the module doc)."""

    def __init__(self, config: ServeConfig):
        self.config = config
        self.root = Storage(config.resolved_output(), dict(config.storage_options))

    def job(self, job_id: str) -> Storage:
        return Storage(self.root.url(job_id), dict(self.config.storage_options))

    def save_record(self, job_id: str, record: dict[str, Any]) -> None:
        data = json.dumps(record, ensure_ascii=False, indent=1).encode("utf-8")
        self.root.put(f"{job_id}/{RECORD}", data)
        if record.get("status") in ACTIVE_STATUSES:
            if not self.root.exists(f"{ACTIVE}/{job_id}.json"):
                self.root.put_json(f"{ACTIVE}/{job_id}.json", {"id": job_id})
        else:
            self.root.delete(f"{ACTIVE}/{job_id}.json")

    def load_record(self, job_id: str) -> dict[str, Any] | None:
        data = self.root.get(f"{job_id}/{RECORD}")
        return json.loads(data) if data is not None else None

    def stale_jobs(self, owner: str, stale_after_s: float) -> list[dict[str, Any]]:
        """Records of jobs still queued or running that no live server renews: another owner's,
        not renewed for ``stale_after_s``. Markers of jobs that ended are removed."""
        stale = []
        now = time.time()
        for name in self.root.listdir(ACTIVE):
            job_id = name.removesuffix(".json")
            record = self.load_record(job_id)
            if record is None or record.get("status") not in ACTIVE_STATUSES:
                self.root.delete(f"{ACTIVE}/{name}")
                continue
            renewed = float(record.get("heartbeat") or record.get("created_at") or 0)
            if record.get("owner") != owner and now - renewed > stale_after_s:
                stale.append(record)
        return stale

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
            job_id, job_id,
            [FileResult(job_input.label, job_input.stem, OK, transcript.duration, key=key)],
            seconds,
        )
        summary.errors = storage.write_errors([])
        summary.index = storage.write_index([job_input.stem])
        storage.write_summary(summary.to_dict())
        return {
            "location": job_id,
            "stem": job_input.stem,
            "key": key,
            "files": [f"{job_input.stem}.{fmt}" for fmt in done["formats"]],
            "index": "index.parquet",
            "summary": "summary.json",
        }

    def write_failure(
        self, job_id: str, job_input: JobInput, stage: str, reason: str, key: str, seconds: float
    ) -> dict[str, Any]:
        storage = self.job(job_id)
        error = storage.write_error(job_input.stem, job_input.label, stage, reason, key, job_id)
        summary = BatchSummary(
            job_id, job_id,
            [FileResult(job_input.label, job_input.stem, FAILED, 0.0, stage, reason, key)],
            seconds,
        )
        summary.errors = storage.write_errors([error])
        summary.index = storage.write_index([])
        storage.write_summary(summary.to_dict())
        return {"location": job_id, "stem": job_input.stem, "errors": "errors.jsonl"}

    def read_transcript(self, job_id: str, stem: str) -> Transcript | None:
        return self.job(job_id).read_transcript(stem=stem)
