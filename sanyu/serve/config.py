"""The server's settings, fixed at start (``sanyu serve`` options map onto these fields)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from sanyu.options import ModelOptions, TranscribeOptions


@dataclass(frozen=True)
class ServeConfig:
    model_options: ModelOptions = field(default_factory=ModelOptions)
    # Options every request starts from; request fields override language, script, diarize...
    default_options: TranscribeOptions = field(default_factory=TranscribeOptions)

    host: str = "127.0.0.1"
    port: int = 8000
    app_name: str = "sanyu"
    route_prefix: str = "/"

    api_key: str | None = None  # when set, every /v1 call needs `Authorization: Bearer <key>`
    max_upload_mb: float = 200.0  # whole request body, checked while it streams in
    request_timeout_s: float = 900.0  # /v1/audio/transcriptions, upload to answer -> 504
    max_audio_s: float = 12 * 3600.0  # longest recording a job decodes
    max_request_audio_s: float = 2 * 3600.0  # longest for /v1/audio/transcriptions (else: a job)
    allow_diarize: bool = True
    preload_diarizer: bool = True  # load pyannote at start (readyz waits for it)

    # Model replicas: a number, or "auto" (autoscaling from 1 to max_replicas).
    replicas: int | str = 1
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
    storage_options: tuple[tuple[str, str], ...] = ()  # fsspec options for output and inputs
    input_roots: tuple[str, ...] = ()
    max_running_jobs: int = 1
    job_formats: tuple[str, ...] = ("json", "txt", "srt", "vtt")

    # Where uploads are written while they are read and decoded (a private folder per request,
    # always removed). None: the system temporary folder.
    spool_dir: str | None = None

    def __post_init__(self) -> None:
        if self.replicas != "auto" and (not isinstance(self.replicas, int) or self.replicas < 1):
            raise ValueError(f"replicas must be a positive number or 'auto', not {self.replicas!r}")
        if self.max_batch_size < 1:
            raise ValueError("max_batch_size must be at least 1")
        if self.max_upload_mb <= 0:
            raise ValueError("max_upload_mb must be positive")
        if self.max_batch_audio_s <= 0 or self.request_timeout_s <= 0:
            raise ValueError("max_batch_audio_s and request_timeout_s must be positive")

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * 1024 * 1024)

    @property
    def model_max_ongoing_requests(self) -> int:
        # At least a batch, and room for the next batch to gather while one runs.
        return max(2 * self.max_batch_size, 2)

    def resolved_output(self) -> str:
        if "://" in self.output:
            return self.output
        return os.path.abspath(self.output)
