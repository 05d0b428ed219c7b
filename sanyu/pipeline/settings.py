"""What a batch job is asked to do (`BatchSettings`), and what its workers are told (`JobSpec`)."""

from __future__ import annotations

from dataclasses import dataclass, field

from sanyu.options import ModelOptions, TranscribeOptions

DEFAULT_PIECE_SECONDS = 600.0
DEFAULT_FORMATS = ("txt", "srt", "json")


@dataclass(frozen=True)
class BatchSettings:
    """Everything `run_batch` needs besides the inputs; ``sanyu batch``'s options map onto it."""

    output: str
    model: ModelOptions = field(default_factory=ModelOptions)
    options: TranscribeOptions = field(default_factory=TranscribeOptions)
    formats: tuple[str, ...] = DEFAULT_FORMATS
    storage_options: dict = field(default_factory=dict)  # fsspec options for inputs and output
    address: str | None = None  # None: a local Ray on 127.0.0.1; else the cluster to join
    workers: int | None = None  # Whisper workers; None: planned from the cluster's resources
    files_per_batch: int | None = None  # recordings (or pieces) per worker call; None: see driver
    piece_seconds: float = DEFAULT_PIECE_SECONDS  # longer recordings are cut into pieces
    progress: bool = True  # live progress on stderr
    crash_once: str | None = None  # testing only: see JobSpec


@dataclass(frozen=True)
class JobSpec:
    """What every stage needs to know; sent to the Ray workers."""

    output: str
    model: ModelOptions  # with the threads the plan gives each worker
    formats: tuple[str, ...]
    run_id: str
    storage_options: dict = field(default_factory=dict)
    piece_seconds: float = DEFAULT_PIECE_SECONDS
    # What else goes into every result key (sanyu.models.fingerprint.result_fingerprint).
    fingerprint: dict = field(default_factory=dict)
    crash_once: str | None = None  # testing only: a marker file; the first transcribe call
    # that does not find it creates it and kills its worker process (a crash Ray must retry)
