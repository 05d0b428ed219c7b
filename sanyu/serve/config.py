"""The server's settings, fixed at start: the arguments of the Serve application.

One flat, typed record, so the same names work everywhere the application is started:

* ``serve run sanyu.serve:app model=base diarize=true api_key=...`` (``key=value`` strings);
* the ``args:`` of an application in a Serve config file (``serve run config.yaml``,
  ``serve deploy config.yaml``, a KubeRay RayService): see docs/serve-config.yaml;
* ``sanyu serve --model base --diarize ...``, whose options map onto these fields.

The fields of `ModelOptions` and `TranscribeOptions` come first (what loads, and every request's
defaults: requests may override language, prompt, script, diarization and speaker counts); the
rest shape the server.
"""

# No `from __future__ import annotations`: pydantic and Ray Serve read the annotations.
import os
from typing import Literal

from pydantic import BaseModel, ConfigDict, field_validator, model_validator

from sanyu.options import ModelOptions, TranscribeOptions, language_code
from sanyu.paths import split_url

_MODEL = ModelOptions()
_OPTIONS = TranscribeOptions()


class ServeConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", protected_namespaces=())

    # What loads (ModelOptions).
    model: str = _MODEL.model
    device: Literal["auto", "cpu", "cuda"] = _MODEL.device
    compute_type: str = _MODEL.compute_type
    cpu_threads: int = _MODEL.cpu_threads  # 0: every core the replica may use

    # Every request's defaults (TranscribeOptions).
    language: str = _OPTIONS.language
    script: str = _OPTIONS.script
    mandarin_script: str = _OPTIONS.mandarin_script
    prompt: str | None = None
    hotwords: str | None = None
    glossary: tuple[str, ...] = ()  # terms
    beam_size: int = _OPTIONS.beam_size
    batch_size: int | None = _OPTIONS.batch_size
    vad: bool = _OPTIONS.vad
    diarize: bool = _OPTIONS.diarize
    num_speakers: int | None = None
    min_speakers: int | None = None
    max_speakers: int | None = None
    speaker_names: tuple[str, ...] = ()

    api_key: str | None = None  # when set, every /v1 call needs `Authorization: Bearer <key>`
    max_upload_mb: float = 200.0  # whole request body, checked while it streams in
    request_timeout_s: float = 900.0  # /v1/audio/transcriptions, upload to answer -> 504
    max_audio_s: float = 12 * 3600.0  # longest recording a job decodes
    max_request_audio_s: float = 2 * 3600.0  # longest for /v1/audio/transcriptions (else: a job)
    max_diarize_audio_s: float = 2 * 3600.0  # longest recording diarized (decoded whole for it)
    allow_diarize: bool = True

    # Admission (sanyu.serve.admission), per ingress replica: over a bound, 429 + Retry-After.
    max_pending_requests: int = 128  # /v1/audio/transcriptions in progress
    max_queued_jobs: int = 32  # jobs queued or running
    max_spool_mb: float = 2048.0  # uploads held on disk, requests and jobs together
    max_long_recordings: int = 2  # recordings of several pieces in progress; the rest wait
    retry_after_s: float = 10.0  # what a 429 tells the client to wait
    upload_timeout_s: float = 600.0  # a job's upload (or JSON body) must arrive within this
    job_timeout_s: float = 12 * 3600.0  # a job's deadline, from when it starts running
    # Long recordings are transcribed in pieces of about this length (sanyu.pieces), each a
    # turn on the model: a short request waits for at most one piece.
    piece_seconds: float = 180.0
    job_heartbeat_s: float = 30.0  # a queued or running job's record is renewed this often
    preload_diarizer: bool = True  # load pyannote at start (readyz waits for it)

    # Model replicas: a number, or "auto" (autoscaling from 1 to max_replicas).
    replicas: int | Literal["auto"] = 1
    max_replicas: int = 4
    replica_cpus: float = 0.5  # Ray logical CPUs reserved per model replica (fractional is fine)
    replica_gpus: float | None = None  # None: 1 when the model runs on CUDA, else 0
    ingress_cpus: float = 0.1
    ingress_replicas: int = 1

    # @serve.batch: up to max_batch_size requests wait at most batch_wait_timeout_s to be
    # batched; a batch is then cut into model calls of at most max_batch_audio_s of audio.
    max_batch_size: int = 8
    batch_wait_timeout_s: float = 0.1
    max_batch_audio_s: float = 300.0

    # Async jobs: results go to `output` (local folder or fsspec URL) in the batch job's layout;
    # a job may name a storage URI or local path only under one of `input_roots`.
    output: str = "sanyu-jobs"
    storage_options: dict[str, str | int | float | bool] = {}  # fsspec options for output and inputs
    input_roots: tuple[str, ...] = ()
    max_running_jobs: int = 1
    job_formats: tuple[str, ...] = ("json", "txt", "srt", "vtt")

    # Where uploads are written while they are read and decoded (a private folder per request,
    # always removed). None: the system temporary folder.
    spool_dir: str | None = None

    @field_validator("glossary", "speaker_names", "input_roots", "job_formats", mode="before")
    @classmethod
    def _comma_separated(cls, value):
        """``key=a,b`` on the `serve run` command line gives a list like a YAML list does."""
        if value is None:
            return ()
        if isinstance(value, str):
            return tuple(part.strip() for part in value.split(",") if part.strip())
        return value

    @field_validator("language")
    @classmethod
    def _language(cls, value: str) -> str:
        """As the CLI and requests take it ("Cantonese", "zh-HK"); a code Whisper lacks is refused
        here, not blamed on every request that leaves the language to the server."""
        return language_code(value)

    @model_validator(mode="after")
    def _check(self) -> "ServeConfig":
        if self.replicas != "auto" and self.replicas < 1:
            raise ValueError(f"replicas must be a positive number or 'auto', not {self.replicas!r}")
        if self.max_batch_size < 1 or self.max_replicas < 1:
            raise ValueError("max_batch_size and max_replicas must be at least 1")
        if self.max_upload_mb <= 0:
            raise ValueError("max_upload_mb must be positive")
        positive = ("max_batch_audio_s", "request_timeout_s", "upload_timeout_s", "job_timeout_s",
                    "max_spool_mb", "retry_after_s", "job_heartbeat_s", "max_audio_s",
                    "max_request_audio_s", "max_diarize_audio_s")
        if bad := [name for name in positive if getattr(self, name) <= 0]:
            raise ValueError(f"{', '.join(bad)} must be positive")
        if min(self.max_pending_requests, self.max_queued_jobs, self.max_long_recordings) < 1:
            raise ValueError("max_pending_requests, max_queued_jobs and max_long_recordings must be at least 1")
        if self.piece_seconds < 10:
            raise ValueError("piece_seconds must be at least 10")
        self.default_options  # noqa: B018 - TranscribeOptions checks its own fields
        return self

    @property
    def model_options(self) -> ModelOptions:
        return ModelOptions(
            model=self.model, device=self.device, compute_type=self.compute_type,
            cpu_threads=self.cpu_threads,
        )

    @property
    def default_options(self) -> TranscribeOptions:
        return TranscribeOptions(
            language=self.language, script=self.script, mandarin_script=self.mandarin_script,
            prompt=self.prompt, hotwords=self.hotwords, glossary=self.glossary,
            beam_size=self.beam_size, batch_size=self.batch_size, vad=self.vad,
            diarize=self.diarize, num_speakers=self.num_speakers, min_speakers=self.min_speakers,
            max_speakers=self.max_speakers, speaker_names=self.speaker_names,
        )

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * 1024 * 1024)

    @property
    def model_max_ongoing_requests(self) -> int:
        # At least a batch, and room for the next batch to gather while one runs.
        return max(2 * self.max_batch_size, 2)

    def resolved_output(self) -> str:
        return self.output if split_url(self.output) else os.path.abspath(self.output)
