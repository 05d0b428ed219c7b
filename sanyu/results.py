"""What became of each input of a run, and the run's summary (``summary.json``).

Shared by the batch job and the HTTP jobs, which write the same layout (`sanyu.storage`).
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import asdict, dataclass, field

# Final statuses of an input.
OK, REUSED, SKIPPED, FAILED = "ok", "reused", "skipped", "failed"
FINAL = (OK, REUSED, SKIPPED, FAILED)


@dataclass
class FileResult:
    path: str
    stem: str
    status: str  # ok | reused | skipped | failed
    duration: float = 0.0
    stage: str = ""
    reason: str = ""
    key: str = ""
    seconds: float = 0.0  # model time spent on it in this run (its share of its batches)
    nodes: tuple[str, ...] = ()  # the Ray node that transcribed each of its pieces in this run


@dataclass
class Phases:
    """Where a batch's fixed costs go: starting or joining Ray; from the dataset's start to its
    first transcribed piece (actors starting, models loading, the first calls); and the tail,
    while the last Whisper worker still ran and every other one was done."""

    ray_s: float = 0.0
    first_piece_s: float | None = None
    tail_s: float | None = None
    _started: float = 0.0
    _last: dict[str, float] = field(default_factory=dict)

    def start(self) -> None:
        self._started = time.time()

    def saw(self, worker: str, finished: float) -> None:
        """A row from the dataset: the Whisper worker that transcribed it, and when."""
        if not worker:
            return
        if self.first_piece_s is None:
            self.first_piece_s = finished - self._started
        self._last[worker] = max(finished, self._last.get(worker, 0.0))
        ends = sorted(self._last.values())
        self.tail_s = ends[-1] - ends[-2] if len(ends) > 1 else None

    def to_dict(self) -> dict:
        def seconds(value: float | None) -> float | None:
            return None if value is None else round(value, 3)

        return {"ray_s": seconds(self.ray_s), "first_piece_s": seconds(self.first_piece_s),
                "tail_s": seconds(self.tail_s), "workers": len(self._last)}


@dataclass
class BatchSummary:
    output: str
    run_id: str
    files: list[FileResult]
    wall_seconds: float
    index: str | None = None
    errors: str | None = None
    phases: Phases = field(default_factory=lambda: Phases())

    def _count(self, status: str) -> int:
        return sum(1 for f in self.files if f.status == status)

    @property
    def ok(self) -> int:
        return self._count(OK)

    @property
    def reused(self) -> int:
        return self._count(REUSED)

    @property
    def skipped(self) -> int:
        return self._count(SKIPPED)

    @property
    def failed(self) -> int:
        return self._count(FAILED)

    @property
    def audio_seconds(self) -> float:
        """Audio transcribed in this run."""
        return sum(f.duration for f in self.files if f.status == OK)

    @property
    def rtf(self) -> float | None:
        """Wall time over audio transcribed in this run."""
        return self.wall_seconds / self.audio_seconds if self.audio_seconds else None

    def pieces_by_node(self) -> dict[str, int]:
        """How many pieces each Ray node transcribed in this run."""
        return dict(sorted(Counter(node for f in self.files for node in f.nodes).items()))

    def to_dict(self) -> dict:
        return {
            "output": self.output,
            "run_id": self.run_id,
            "files": len(self.files),
            "ok": self.ok,
            "reused": self.reused,
            "skipped": self.skipped,
            "failed": self.failed,
            "audio_seconds": round(self.audio_seconds, 3),
            "skipped_audio_seconds": round(
                sum(f.duration for f in self.files if f.status in (SKIPPED, REUSED)), 3
            ),
            "wall_seconds": round(self.wall_seconds, 3),
            "real_time_factor": round(self.rtf, 4) if self.rtf else None,
            "index": self.index,
            "errors": self.errors,
            "pieces_by_node": self.pieces_by_node(),
            "phases": self.phases.to_dict(),
            "failures": [asdict(f) for f in self.files if f.status == FAILED],
        }
