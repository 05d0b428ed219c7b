"""`sanyu batch`: the Ray Data job that transcribes many recordings, resumably.

Stages (each row of the dataset is one input, or one piece of a long input)::

    list inputs (driver)
      -> prepare   CPU tasks: fetch (an object-store input is downloaded to a local temporary
                   file; ffmpeg only sees local files), hash the bytes, skip inputs already done,
                   decode to 16 kHz float32 and cut long recordings into pieces
      -> transcribe  actor pool of WhisperWorkers: each holds one Transcriber (models load once
                   per actor) and calls `transcribe_many` on a batch of pieces, so the speech
                   chunks of several recordings are decoded together on the model; one GPU per
                   worker when the cluster has GPUs, else one single-threaded worker per core
                   (as many as fit in half the memory)
      -> finish    actor pool of Finishers: put the pieces of a long recording back together,
                   diarize when asked (`Transcriber` again: the same diarizer and speaker
                   assignment the library uses), write the result (done-marker last) or the error
      -> driver    progress, then the dataset-level index, errors file and summary

Long recordings: `prepare` probes the duration. A file of at most 1.25 × ``piece_seconds``
is decoded whole with `sanyu.audio.decode_audio`, exactly as the library does. A longer one is
decoded by a streaming ffmpeg pipe, block by block, and cut into pieces of about
``piece_seconds`` (default 10 min) at a pause: the cut goes in the middle of the longest
non-speech stretch Silero VAD finds in the last 30 s before the target length, or at the
quietest 100 ms there when the speech never pauses. Pieces travel as separate rows, so the
pieces of a 3-hour recording are transcribed by all workers at once and no process holds more
than a few pieces of it. Each piece's transcript is stored under ``_sanyu/parts/<key>/`` with
absolute times; the finisher that stores the last missing piece joins them. Diarization needs
the whole recording for consistent speaker labels, so a split recording is decoded again whole
in the finisher that diarizes it (about 230 MB of float32 per audio hour).

Resuming: an input's result key is its content hash plus `settings_key` of its model and
options. `prepare` skips an input whose done-marker already names that key (no decoding, no
model), and re-renders without a model one whose transcript is stored but whose files are not
(killed after the transcript was stored, or the same bytes under another name). The
done-marker is written after the transcript files, so after kill -9 at any point a re-run
repeats only unfinished inputs.

Faults: a Python error on one input becomes that input's error row (stage and reason) and the
batch goes on. A worker process that dies (segfault, OOM kill) is restarted by Ray and its
batch retried (``max_task_retries``); a batch that kills its worker every time is given up
after the retries, and the driver reports each input that never came back as failed.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import tempfile
import threading
import time
import uuid
import warnings
from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from sanyu.errors import AudioError
from sanyu.options import ModelOptions, TranscribeOptions, settings_key
from sanyu.pipeline.inputs import InputItem, content_hash, display_path, list_inputs, local_copy
from sanyu.pipeline.storage import Storage, result_key
from sanyu.schema import Transcript

log = logging.getLogger(__name__)

SAMPLE_RATE = 16000
DEFAULT_PIECE_SECONDS = 600.0
CUT_SEARCH_SECONDS = 30.0  # where a piece may end: this long before its target length
MIN_CUT_GAP_SECONDS = 0.3  # a pause at least this long is a good place to cut
BLOCK_SECONDS = 30.0  # what the streaming decoder reads at a time
DEFAULT_FORMATS = ("txt", "srt", "json")

# Statuses of rows: in flight, then final.
AUDIO, TRANSCRIBED, REUSE, PARTIAL = "audio", "transcribed", "reuse", "partial"
OK, REUSED, SKIPPED, FAILED = "ok", "reused", "skipped", "failed"
FINAL = (OK, REUSED, SKIPPED, FAILED)


def _schema():
    import pyarrow as pa

    return pa.schema(
        [
            ("index", pa.int64()),  # the input's position in the listing
            ("uri", pa.large_binary()),  # the input as listed (bytes: file names need not be UTF-8)
            ("path", pa.string()),  # the same, printable
            ("stem", pa.string()),
            ("key", pa.string()),
            ("options", pa.string()),  # TranscribeOptions of this input, JSON
            ("status", pa.string()),
            ("stage", pa.string()),
            ("reason", pa.string()),
            ("piece", pa.int32()),
            ("last", pa.bool_()),
            ("offset", pa.float64()),
            ("duration", pa.float64()),
            ("seconds", pa.float64()),
            ("pcm", pa.large_binary()),  # float32 samples of a piece
            ("transcript", pa.large_string()),  # a piece's transcript, JSON
        ]
    )


def _table(rows: list[dict]):
    import pyarrow as pa

    return pa.Table.from_pylist(rows, schema=_schema())


def _row(**values) -> dict:
    row = {
        "index": -1, "uri": b"", "path": "", "stem": "", "key": "", "options": "{}",
        "status": "", "stage": "", "reason": "", "piece": 0, "last": True, "offset": 0.0,
        "duration": 0.0, "seconds": 0.0, "pcm": b"", "transcript": "",
    }
    row.update(values)
    return row


@dataclass(frozen=True)
class JobSpec:
    """What every stage needs to know; sent to the Ray workers."""

    output: str
    model: ModelOptions
    formats: tuple[str, ...]
    run_id: str
    storage_options: dict = field(default_factory=dict)
    piece_seconds: float = DEFAULT_PIECE_SECONDS
    crash_once: str | None = None  # testing only: a marker file; the first transcribe call
    # that does not find it creates it and kills its worker process (a crash Ray must retry)


# ---- prepare: fetch, hash, skip, decode, cut -----------------------------------------------


def _failed(row: dict, stage: str, reason: str, key: str = "") -> dict:
    return _row(**{**row, "status": FAILED, "stage": stage, "reason": reason, "key": key, "pcm": b""})


def prepare_batch(table, spec: JobSpec) -> Iterator:
    """Ray Data UDF: each input row becomes piece rows, or one skipped/reuse/failed row."""
    for row in table.to_pylist():
        for out in _prepare(row, spec):
            yield _table([out])


def _prepare(row: dict, spec: JobSpec) -> Iterator[dict]:
    base = _row(**{k: row[k] for k in ("index", "uri", "path", "stem", "options")})
    if row.get("problem"):
        yield _failed(base, "list", row["problem"])
        return
    uri = os.fsdecode(row["uri"])
    stage, key = "fetch", ""
    try:
        options = TranscribeOptions.from_dict(json.loads(row["options"]))
        with local_copy(uri, spec.storage_options) as path:
            _check_regular(path)
            key = result_key(content_hash(path), settings_key(spec.model, options))
            storage = Storage(spec.output, spec.storage_options)
            if storage.is_done(base["stem"], key, spec.formats):
                record = storage.done_record(base["stem"]) or {}
                yield _row(**{**base, "status": SKIPPED, "key": key,
                              "duration": float(record.get("duration") or 0.0)})
                return
            if storage.has_transcript(key):
                yield _row(**{**base, "status": REUSE, "key": key})
                return
            stage = "decode"
            with ffmpeg_safe_path(path) as safe:
                for index, last, offset, samples in split_audio(safe, spec.piece_seconds):
                    yield _row(
                        **{**base, "status": AUDIO, "key": key, "piece": index, "last": last,
                           "offset": offset, "duration": len(samples) / SAMPLE_RATE,
                           "pcm": samples.tobytes()}
                    )
    except AudioError as exc:
        yield _failed(base, "decode", exc.reason, key)
    except FileNotFoundError:
        yield _failed(base, stage, "file not found", key)
    except PermissionError:
        yield _failed(base, stage, "permission denied", key)
    except Exception as exc:  # one bad input must not stop the batch
        yield _failed(base, stage, f"{type(exc).__name__}: {exc}", key)


@contextlib.contextmanager
def ffmpeg_safe_path(path: str) -> Iterator[str]:
    """``path``, or the same file under a plain name when its name is not valid UTF-8
    (ffmpeg-python cannot pass such a name to ffmpeg): a hard link, else a copy (not a
    symlink: decoding resolves links back to the real name)."""
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        directory = tempfile.mkdtemp(prefix="sanyu-link-")
        suffix = os.path.splitext(path)[1].encode("utf-8", "ignore").decode()
        link = os.path.join(directory, "input" + (suffix if suffix.isascii() else ""))
        try:
            os.link(path, link)
        except OSError:
            shutil.copyfile(path, link)
        try:
            yield link
        finally:
            shutil.rmtree(directory, ignore_errors=True)
        return
    yield path


def _check_regular(path: str) -> None:
    import stat

    info = os.stat(path)  # FileNotFoundError / PermissionError are reported as such
    if not stat.S_ISREG(info.st_mode):
        raise AudioError(display_path(path), "not a regular file")


def split_audio(
    path: str, piece_seconds: float = DEFAULT_PIECE_SECONDS
) -> Iterator[tuple[int, bool, float, np.ndarray]]:
    """(index, last, offset seconds, float32 samples) for each piece of a local audio file.

    Short files are decoded whole by `decode_audio`; long ones stream through ffmpeg and are
    cut at pauses (see the module doc). The last piece is only given once the whole file has
    decoded cleanly, so a file found truncated at its end yields an AudioError, never a last
    piece.
    """
    from sanyu.audio import DEFAULT_MAX_DURATION_S, decode_audio, probe_duration

    declared = probe_duration(path)
    if declared is not None and declared > DEFAULT_MAX_DURATION_S:
        raise AudioError(
            display_path(path),
            f"too long: {declared / 3600:.1f} h exceeds the {DEFAULT_MAX_DURATION_S / 3600:.1f} h limit",
        )
    if declared is not None and declared <= 1.25 * piece_seconds:
        blocks: Iterator[np.ndarray] = iter([decode_audio(path).samples])
    else:
        blocks = _stream_decode(path, declared)
    yield from _cut(blocks, piece_seconds)


def _cut(blocks: Iterator[np.ndarray], piece_seconds: float):
    piece = int(piece_seconds * SAMPLE_RATE)
    search = min(int(CUT_SEARCH_SECONDS * SAMPLE_RATE), piece // 2)
    buffer = np.empty(0, dtype=np.float32)
    pending: tuple[float, np.ndarray] | None = None
    index, offset = 0, 0
    for block in blocks:
        buffer = np.concatenate([buffer, block]) if len(buffer) else block
        # Cut only when what follows the cut would not itself be a sliver of a piece.
        while len(buffer) > int(1.25 * piece):
            cut = find_cut(buffer, piece - search, piece)
            if pending is not None:
                yield index, False, pending[0], pending[1]
                index += 1
            pending = (offset / SAMPLE_RATE, buffer[:cut].copy())
            offset += cut
            buffer = buffer[cut:]
    if len(buffer):
        if pending is not None:
            yield index, False, pending[0], pending[1]
            index += 1
        pending = (offset / SAMPLE_RATE, buffer)
    if pending is None:
        raise AudioError("", "no audio samples (zero-length recording)")
    yield index, True, pending[0], pending[1]


def find_cut(samples: np.ndarray, low: int, high: int) -> int:
    """A sample index in [low, high) to cut at: the middle of the longest pause VAD finds there,
    else the quietest 100 ms."""
    from faster_whisper.vad import VadOptions, get_speech_timestamps

    window = samples[low:high]
    speech = get_speech_timestamps(
        window, VadOptions(min_silence_duration_ms=int(MIN_CUT_GAP_SECONDS * 1000), speech_pad_ms=0)
    )
    edges = [0] + [x for ts in speech for x in (ts["start"], ts["end"])] + [len(window)]
    gaps = [(edges[i + 1] - edges[i], edges[i]) for i in range(0, len(edges), 2)]
    length, start = max(gaps)
    if length >= MIN_CUT_GAP_SECONDS * SAMPLE_RATE or not speech:
        return low + start + length // 2
    frame = SAMPLE_RATE // 10
    usable = len(window) // frame * frame
    energy = (window[:usable].reshape(-1, frame) ** 2).mean(axis=1)
    return low + int(np.argmin(energy)) * frame + frame // 2


def _stream_decode(path: str, declared: float | None) -> Iterator[np.ndarray]:
    """float32 blocks of a file decoded by ffmpeg through a pipe, with decode_audio's checks."""
    import ffmpeg

    from sanyu.audio import _CORRUPTION, _local_file

    local = _local_file(path)
    process = (
        ffmpeg.input(f"file:{local}", protocol_whitelist="file")
        .output("pipe:", format="f32le", acodec="pcm_f32le", ac=1, ar=SAMPLE_RATE, map="0:a:0")
        .global_args("-nostdin", "-hide_banner", "-loglevel", "warning")
        .run_async(pipe_stdout=True, pipe_stderr=True)
    )
    errors: list[str] = []
    reader = threading.Thread(
        target=lambda: errors.extend(process.stderr.read().decode("utf-8", "replace").splitlines()),
        daemon=True,
    )
    reader.start()
    block_bytes = int(BLOCK_SECONDS * SAMPLE_RATE) * 4
    decoded = 0
    finished = False
    try:
        while True:
            data = process.stdout.read(block_bytes)
            if not data:
                break
            usable = len(data) // 4 * 4
            if usable:
                decoded += usable // 4
                yield np.frombuffer(data[:usable], dtype=np.float32).copy()
        process.wait()
        reader.join()
        finished = True
    finally:
        if not finished:
            process.kill()
            process.wait()
    shown = display_path(path)
    lines = [line.strip() for line in errors if line.strip()]
    if process.returncode != 0:
        raise AudioError(shown, f"cannot decode audio ({lines[-1] if lines else 'ffmpeg failed'})")
    damage = [line for line in lines if _CORRUPTION.search(line)]
    if damage:
        raise AudioError(shown, f"truncated or corrupt audio data (ffmpeg: {damage[0]})")
    if decoded == 0:
        raise AudioError(shown, "no audio samples (zero-length recording)")
    seconds = decoded / SAMPLE_RATE
    if declared is not None and declared - seconds > 1.0 and seconds < 0.5 * declared:
        raise AudioError(
            shown, f"truncated: the file declares {declared:.1f} s but only {seconds:.1f} s can be decoded"
        )


# ---- transcribe: the Whisper actor pool ------------------------------------------------------


def shift_transcript(transcript: Transcript, offset: float) -> Transcript:
    """Move every time of a piece's transcript by ``offset`` seconds (in place)."""
    if offset:
        for segment in transcript.segments:
            segment.start = round(segment.start + offset, 3)
            segment.end = round(segment.end + offset, 3)
            for word in segment.words:
                word.start = round(word.start + offset, 3)
                word.end = round(word.end + offset, 3)
    return transcript


def merge_pieces(pieces: Sequence[Transcript]) -> Transcript:
    """One transcript from the (time-shifted) transcripts of consecutive pieces."""
    first = pieces[0]
    segments = [segment for piece in pieces for segment in piece.segments]
    speech: dict[str, float] = defaultdict(float)
    for segment in segments:
        speech[segment.language] += segment.duration
    return Transcript(
        source=first.source,
        duration=round(sum(piece.duration for piece in pieces), 3),
        segments=segments,
        model=first.model,
        languages=sorted(speech, key=speech.get, reverse=True),
        speakers=[],
        options=first.options,
    )


class WhisperWorker:
    """Ray Data actor: one Transcriber; each call transcribes a batch of pieces together."""

    def __init__(self, spec: JobSpec):
        from sanyu.api import Transcriber

        self.spec = spec
        self.transcriber = Transcriber(spec.model)

    def __call__(self, table):
        from sanyu.audio import Audio

        rows = table.to_pylist()
        groups: dict[str, list[dict]] = defaultdict(list)
        for row in rows:
            if row["status"] == AUDIO:
                groups[row["options"]].append(row)
        if groups and self.spec.crash_once and not os.path.exists(self.spec.crash_once):
            with open(self.spec.crash_once, "w") as handle:
                handle.write(f"{os.getpid()}\n")
            os._exit(1)
        for options_json, group in groups.items():
            options = TranscribeOptions.from_dict(json.loads(options_json))
            audios = [
                Audio(samples=np.frombuffer(row["pcm"], dtype=np.float32).copy(), source=row["path"])
                for row in group
            ]
            started = time.perf_counter()
            results = self._transcribe(audios, options)
            elapsed = time.perf_counter() - started
            total = sum(audio.duration for audio in audios) or 1.0
            for row, audio, result in zip(group, audios, results):
                row["seconds"] = elapsed * audio.duration / total
                if isinstance(result, Exception):
                    row.update(status=FAILED, stage="transcribe", pcm=b"",
                               reason=f"{type(result).__name__}: {result}")
                    continue
                result.options = options.to_dict()
                shift_transcript(result, row["offset"])
                row.update(status=TRANSCRIBED, transcript=result.to_json(indent=None))
                if not (options.diarize and row["piece"] == 0 and row["last"]):
                    row["pcm"] = b""  # only a whole recording to diarize needs its samples again
        return _table(rows)

    def _transcribe(self, audios, options: TranscribeOptions) -> list:
        asr = options.with_(diarize=False)  # diarization runs in the finisher, on whole recordings
        try:
            return list(self.transcriber.transcribe_many(audios, asr))
        except Exception as exc:  # noqa: BLE001
            if len(audios) == 1:
                return [exc]
        results: list = []
        for audio in audios:  # find the one that fails; the others still get transcribed
            try:
                results.append(self.transcriber.transcribe_many([audio], asr)[0])
            except Exception as exc:  # noqa: BLE001
                results.append(exc)
        return results


# ---- finish: assemble, diarize, write --------------------------------------------------------


class Finisher:
    """Ray Data actor: joins pieces, diarizes when asked, writes results and errors."""

    def __init__(self, spec: JobSpec):
        self.spec = spec
        self.storage = Storage(spec.output, spec.storage_options)
        self._transcriber = None

    @property
    def transcriber(self):
        if self._transcriber is None:
            from sanyu.api import Transcriber

            self._transcriber = Transcriber(self.spec.model)
        return self._transcriber

    def __call__(self, table):
        return _table([self._finish(row) for row in table.to_pylist()])

    def _finish(self, row: dict) -> dict:
        row = {**row, "pcm": b"", "transcript": ""} if row["status"] != TRANSCRIBED else row
        status, stage = row["status"], row["status"]
        try:
            if status == FAILED:
                self._record_error(row)
                return row
            if status == SKIPPED:
                return row
            options = TranscribeOptions.from_dict(json.loads(row["options"]))
            if status == REUSE:
                stage = "write"
                record = self.storage.reuse_result(
                    row["stem"], row["key"], self.spec.formats, options.speaker_names,
                    input_path=row["path"], run_id=self.spec.run_id,
                )
                if record is None:
                    raise RuntimeError("the stored transcript vanished; run the batch again")
                return {**row, "status": REUSED, "duration": float(record["duration"])}
            transcript = Transcript.from_json(row["transcript"])
            row = {**row, "transcript": ""}
            whole = row["piece"] == 0 and row["last"]
            if not whole:
                stage = "assemble"
                self.storage.write_part(row["key"], row["piece"], row["last"], transcript)
                parts = self.storage.complete_parts(row["key"])
                if parts is None:
                    return {**row, "status": PARTIAL, "pcm": b""}
                transcript = merge_pieces([part.transcript for part in parts])
            if options.diarize:
                stage = "diarize"
                transcript = self._diarize(row, transcript, options, whole)
            stage = "write"
            record = self.storage.write_result(
                row["stem"], row["key"], transcript, self.spec.formats, options.speaker_names,
                input_path=row["path"], run_id=self.spec.run_id, seconds=row["seconds"],
            )
            if not whole:
                self.storage.delete_parts(row["key"])
            return {**row, "status": OK, "pcm": b"", "duration": float(record["duration"])}
        except Exception as exc:  # one bad input must not stop the batch
            failed = _failed(row, stage, f"{type(exc).__name__}: {exc}", row.get("key", ""))
            self._record_error(failed)
            return failed

    def _diarize(self, row: dict, transcript: Transcript, options: TranscribeOptions, whole: bool):
        from sanyu.audio import Audio, decode_audio

        if whole and row["pcm"]:
            audio = Audio(samples=np.frombuffer(row["pcm"], dtype=np.float32).copy(), source=row["path"])
        else:  # a split recording: diarize it whole, for speaker labels that hold throughout
            with local_copy(os.fsdecode(row["uri"]), self.spec.storage_options) as path:
                audio = decode_audio(path)
            audio.source = row["path"]
        # The library's own diarization step (Transcriber.transcribe_many with diarize=True).
        return self.transcriber._diarize(audio, transcript, options)

    def _record_error(self, row: dict) -> None:
        try:
            self.storage.write_error(
                row["stem"], row["path"], row["stage"], row["reason"], row.get("key", ""), self.spec.run_id
            )
        except Exception:  # noqa: BLE001 - the driver records it again
            log.exception("could not record the error of %s", row["path"])
        if row.get("key"):
            try:
                self.storage.delete_parts(row["key"])
            except Exception:  # noqa: BLE001
                pass


# ---- the driver ---------------------------------------------------------------------------


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


@dataclass
class BatchSummary:
    output: str
    run_id: str
    files: list[FileResult]
    wall_seconds: float
    index: str | None = None
    errors: str | None = None

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
            "failures": [asdict(f) for f in self.files if f.status == FAILED],
        }


def _connect(address: str | None) -> bool:
    """Use the Ray already initialised, join ``address``, or start a loopback-only local Ray.
    Returns True when this call started or joined Ray (and should shut it down)."""
    os.environ.setdefault("PYANNOTE_METRICS_ENABLED", "0")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    if address is None:
        # Keep every Ray process on 127.0.0.1: Ray binds all interfaces otherwise.
        os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
        # Ray runs its workers at nice 15; here they are the job's whole workload, and on a
        # busy machine a niced worker gets almost no CPU.
        os.environ.setdefault("RAY_worker_niceness", "0")
    import ray

    if ray.is_initialized():
        return False
    if address is None:
        from ray._private import ray_constants

        ray_constants.ENABLE_RAY_CLUSTER = False  # read at import, which may have come first
        ray.init(
            include_dashboard=False,
            _node_ip_address="127.0.0.1",
            log_to_driver=False,
            logging_level=logging.WARNING,
        )
    else:
        ray.init(address=address, log_to_driver=False, logging_level=logging.WARNING)
    return True


PIECE_BLOCK_BYTES = 2**20
PREPARE_CPUS = 0.25  # Ray CPUs of a task that fetches, hashes and decodes one input
WRITER_CPUS = 0.25  # Ray CPUs of a finisher that only writes (no diarization)


@dataclass
class _Plan:
    workers: int
    whisper_args: dict
    finisher_args: dict
    finishers: int
    cpu_threads: int


def _plan(workers: int | None, model: ModelOptions, diarize: bool) -> _Plan:
    import ray

    resources = ray.cluster_resources()
    node_cpus = max(
        (float(n["Resources"].get("CPU", 0)) for n in ray.nodes() if n.get("Alive")), default=0.0
    )
    cpus = float(resources.get("CPU", 1.0))
    return plan_workers(
        workers, model, diarize, cpus=cpus, gpus=float(resources.get("GPU", 0.0)),
        node_cpus=node_cpus or cpus, memory=float(resources.get("memory", 0.0)),
    )


def plan_workers(
    workers: int | None, model: ModelOptions, diarize: bool, *,
    cpus: float, gpus: float, node_cpus: float, memory: float,
) -> _Plan:
    """Pool sizes, threads and Ray resources for a cluster with these resources."""
    if gpus >= 1 and model.device in ("auto", "cuda"):
        workers = workers or int(gpus)
        share = gpus / workers * (0.5 if diarize else 1.0)
        finishers = workers if diarize else max(1, workers // 4)
        cpu = _actor_cpus(cpus, workers, finishers, diarize, threads=1)
        whisper = {"num_gpus": min(1.0, share), "num_cpus": cpu}
        finisher = {"num_gpus": min(1.0, share), "num_cpus": cpu} if diarize else {"num_cpus": WRITER_CPUS}
        return _Plan(workers, whisper, finisher, finishers, model.cpu_threads or 4)
    # One single-threaded worker per core, not one worker with every core: a second CTranslate2
    # thread speeds a worker up by ~20% on Whisper base, a second worker by ~90%
    # (bench/threads.py).
    workers = workers or min(
        max(1, int(cpus // (model.cpu_threads or 1))), _workers_fitting_memory(memory, model)
    )
    # A diarizing finisher takes about half the CPU time of a Whisper worker on the same audio.
    finishers = max(1, workers // 2) if diarize else max(1, workers // 4)
    actors = workers + (finishers if diarize else 0)
    threads = model.cpu_threads or max(1, min(int(node_cpus), int(round(cpus / actors))))
    reserve = _actor_cpus(cpus, workers, finishers, diarize, threads)
    whisper = {"num_cpus": reserve}
    finisher = {"num_cpus": reserve} if diarize else {"num_cpus": WRITER_CPUS}
    return _Plan(workers, whisper, finisher, finishers, threads)


def _actor_cpus(cpus: float, workers: int, finishers: int, diarize: bool, threads: int) -> float:
    """Ray CPUs to reserve for each model actor (Whisper worker, or diarizing finisher).

    Less than the threads use if need be: the actors must leave room for two decoding tasks, or
    the job waits forever for a slot to decode its next input.
    """
    actors = workers + (finishers if diarize else 0)
    free = cpus - 2 * PREPARE_CPUS - (0 if diarize else finishers * WRITER_CPUS)
    return max(0.01, min(float(threads), free / actors))


# What one Whisper worker may hold when the model's size is not known on the driver (a hub id):
# enough for large-v3 in int8 with its buffers.
UNKNOWN_MODEL_WORKER_BYTES = 3 * 2**30


def _workers_fitting_memory(memory: float, model: ModelOptions) -> int:
    """How many Whisper workers fit in half of the cluster's memory (each holds its own model)."""
    if memory <= 0:
        return 1 << 30
    from sanyu.models import REGISTRY, cached_path

    directory = Path(model.model).expanduser()  # looked up in resolve_whisper's order
    if not directory.is_dir() and model.model in REGISTRY:
        directory = cached_path(model.model)
    weights = directory / "model.bin"
    per_worker = UNKNOWN_MODEL_WORKER_BYTES
    if weights.is_file():
        # A worker with Whisper base peaked at 1.0 GiB (the weights are 0.14 GiB of it; the rest
        # is the imported libraries, the VAD model, audio and decoding buffers).
        per_worker = weights.stat().st_size + 2**30
    return max(1, int(memory / 2 // per_worker))


def _input_rows(items: list[InputItem], options: TranscribeOptions) -> list[dict]:
    rows = []
    for index, item in enumerate(items):
        per_input = options.with_(
            language=item.language or options.language,
            num_speakers=item.num_speakers or options.num_speakers,
        )
        rows.append(
            {
                "index": index,
                "uri": os.fsencode(item.uri) if "://" not in item.uri else item.uri.encode(),
                "path": item.display,
                "stem": item.stem,
                "options": json.dumps(per_input.to_dict(), ensure_ascii=False, sort_keys=True),
                "problem": item.problem or "",
            }
        )
    return rows


def run_batch(
    inputs: str | list[InputItem],
    output: str,
    model_options: ModelOptions | None = None,
    options: TranscribeOptions | None = None,
    formats: Sequence[str] = DEFAULT_FORMATS,
    *,
    address: str | None = None,
    workers: int | None = None,
    files_per_batch: int = 4,
    piece_seconds: float = DEFAULT_PIECE_SECONDS,
    storage_options: dict | None = None,
    progress: bool = True,
    console=None,
    crash_once: str | None = None,
) -> BatchSummary:
    """Transcribe every input of ``inputs`` into ``output`` with Ray Data (see the module doc).

    ``inputs``: a folder, glob, manifest or fsspec URL prefix (see `list_inputs`), or a listing.
    ``address``: None starts a local Ray on 127.0.0.1 (unless one is already initialised in
    this process); ``auto`` or ``ray://host:port`` joins a cluster.
    Returns the summary; every input ends in it as ok, reused, skipped or failed.
    """
    started = time.perf_counter()
    model_options = model_options or ModelOptions()
    options = options or TranscribeOptions()
    from sanyu.output import FORMATS, parse_formats

    formats = tuple(parse_formats(formats))
    if not formats:
        raise ValueError(f"no output format given; choose from {', '.join(FORMATS)}")
    items = inputs if isinstance(inputs, list) else list_inputs(inputs, storage_options)
    storage = Storage(output, storage_options)
    storage.cleanup_temp()
    run_id = time.strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:8]
    started_ray = _connect(address) if items else False
    try:
        results = _execute(
            items, storage, model_options, options, formats, run_id, workers, files_per_batch,
            piece_seconds, storage_options or {}, progress, console, crash_once,
        ) if items else {}
    finally:
        if started_ray:
            import ray

            ray.shutdown()
    files = [results[i] for i in range(len(items))]
    summary = BatchSummary(storage.uri, run_id, files, 0.0)
    failed = [f for f in files if f.status == FAILED]
    summary.errors = storage.write_errors(
        (storage.error_record(f.stem) if f.stem else None)
        or {"path": f.path, "stem": f.stem, "stage": f.stage, "reason": f.reason, "key": f.key,
            "run_id": run_id}
        for f in failed
    )
    summary.index = storage.write_index(f.stem for f in files if f.status in (OK, REUSED, SKIPPED))
    summary.wall_seconds = time.perf_counter() - started
    storage.write_summary(summary.to_dict())
    return summary


def _execute(
    items, storage, model_options, options, formats, run_id, workers, files_per_batch,
    piece_seconds, storage_options, show_progress, console, crash_once,
) -> dict[int, FileResult]:
    import ray
    from ray.data import ActorPoolStrategy, DataContext

    plan = _plan(workers, model_options, options.diarize)
    model = ModelOptions(
        model=model_options.model,
        device=model_options.device,
        compute_type=model_options.compute_type,
        cpu_threads=plan.cpu_threads if model_options.device != "cuda" else model_options.cpu_threads,
    )
    spec = JobSpec(
        output=storage.uri, model=model, formats=formats, run_id=run_id,
        storage_options=storage_options, piece_seconds=piece_seconds, crash_once=crash_once,
    )
    data_log = logging.getLogger("ray.data")
    saved_level = data_log.level
    data_log.setLevel(logging.WARNING)  # not Ray Data's INFO lines between our progress lines
    logging.getLogger("ray.data._internal.progress").addFilter(_NoProgressBarNotice())
    context = DataContext.get_current()
    detectors = context.issue_detectors_config
    saved = (
        context.enable_progress_bars, context.max_errored_blocks, detectors.detectors,
        context.target_max_block_size,
    )
    context.enable_progress_bars = False
    # Blocks of at most one piece (a piece holds ~38 MB of audio per 10 minutes): the pieces of
    # one long recording come out of one `prepare` task, and in one block they would all go to
    # one Whisper worker, one after another.
    context.target_max_block_size = PIECE_BLOCK_BYTES
    context.max_errored_blocks = -1  # a batch that keeps killing its worker: report, go on
    # Ray Data warns every 30 s that a model actor uses more memory than it reserved; the pool
    # sizes come from _plan, so the warning is only noise between the progress lines.
    detectors.detectors = [d for d in detectors.detectors if d.__name__ != "HighMemoryIssueDetector"]
    # Ray Data warns when fewer inputs than Whisper workers are listed; but `prepare` cuts long
    # recordings into pieces, so one input can keep every worker busy.
    warnings.filterwarnings("ignore", "The minimum number of concurrent actors", UserWarning)

    rows = _input_rows(items, options)
    ds = ray.data.from_items(rows, override_num_blocks=max(1, min(len(rows), 10_000)))
    ds = ds.map_batches(
        prepare_batch, batch_size=1, batch_format="pyarrow", fn_kwargs={"spec": spec},
        num_cpus=PREPARE_CPUS,
    )
    with warnings.catch_warnings():
        # max_restarts / max_task_retries have no named parameter yet: they go as remote args.
        # A dead actor is restarted without limit; one batch is retried twice, then given up
        # (its inputs are reported as failed) so an input that kills its worker cannot loop.
        warnings.simplefilter("ignore", DeprecationWarning)
        retry = {"max_restarts": -1, "max_task_retries": 2}
        ds = ds.map_batches(
            WhisperWorker, batch_size=max(1, files_per_batch), batch_format="pyarrow",
            fn_constructor_kwargs={"spec": spec}, compute=ActorPoolStrategy(size=plan.workers),
            **plan.whisper_args, **retry,
        )
        ds = ds.map_batches(
            Finisher, batch_size=1, batch_format="pyarrow", fn_constructor_kwargs={"spec": spec},
            compute=ActorPoolStrategy(size=plan.finishers), **plan.finisher_args, **retry,
        )

    results: dict[int, FileResult] = {}
    partial_seconds: dict[int, float] = defaultdict(float)
    tracker = _Progress(len(items), console, show_progress, plan)
    try:
        with tracker:
            for batch in ds.iter_batches(batch_size=None, batch_format="pyarrow"):
                for row in batch.drop_columns(["pcm", "transcript", "uri"]).to_pylist():
                    if row["status"] == PARTIAL:
                        tracker.audio(row["duration"])
                        partial_seconds[row["index"]] += row["seconds"]
                        continue
                    if row["status"] not in FINAL or row["index"] in results:
                        continue
                    results[row["index"]] = FileResult(
                        row["path"], row["stem"], row["status"], row["duration"], row["stage"],
                        row["reason"], row["key"], round(row["seconds"] + partial_seconds.pop(row["index"], 0.0), 3),
                    )
                    tracker.done(results[row["index"]])
        problem = None
    except Exception as exc:  # the job itself failed (e.g. no worker could start)
        problem = f"{type(exc).__name__}: {exc}"
        log.error("batch job failed: %s", problem)
    finally:
        (
            context.enable_progress_bars, context.max_errored_blocks, detectors.detectors,
            context.target_max_block_size,
        ) = saved
        data_log.setLevel(saved_level)
    for index, item in enumerate(items):
        if index in results:
            continue
        reason = (
            f"the job stopped before this input finished ({problem})" if problem
            else "lost: its worker died repeatedly while processing it (see the Ray logs); "
                 "run the batch again to retry"
        )
        results[index] = FileResult(item.display, item.stem, FAILED, 0.0, "job", reason)
        try:
            storage.write_error(item.stem, item.display, "job", reason, run_id=run_id)
        except Exception:  # noqa: BLE001
            log.exception("could not record the error of %s", item.display)
    return results


class _NoProgressBarNotice(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return "Progress bars disabled" not in record.getMessage()


class _Progress:
    """Live progress on stderr: files, audio hours, ETA."""

    def __init__(self, total: int, console, enabled: bool, plan: _Plan):
        self.total = total
        self.enabled = enabled
        self.console = console
        self.plan = plan
        self.audio_seconds = 0.0
        self.counts: dict[str, int] = defaultdict(int)
        self.progress = None

    def __enter__(self):
        if not self.enabled:
            return self
        from rich.console import Console
        from rich.progress import (
            BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self.console = self.console or Console(stderr=True)
        self.progress = Progress(
            TextColumn("[bold]batch"), BarColumn(), MofNCompleteColumn(),
            TextColumn("{task.fields[audio]}"), TextColumn("{task.fields[counts]}"),
            TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(),
            console=self.console, transient=False,
        )
        self.progress.__enter__()
        self.task = self.progress.add_task("files", total=self.total, audio="0.00 h audio", counts="")
        return self

    def __exit__(self, *exc):
        if self.progress is not None:
            self.progress.__exit__(*exc)

    def audio(self, seconds: float) -> None:
        self.audio_seconds += seconds
        self._refresh(advance=0)

    def done(self, result: FileResult) -> None:
        self.counts[result.status] += 1
        if result.status == OK:
            self.audio_seconds += result.duration
        if result.status == FAILED and self.progress is not None:
            from rich.text import Text

            self.progress.console.print(
                Text.assemble(("failed ", "red"), f"{result.path} ({result.stage}): {result.reason}")
            )
        self._refresh(advance=1)

    def _refresh(self, advance: int) -> None:
        if self.progress is None:
            return
        counts = ", ".join(f"{n} {s}" for s, n in sorted(self.counts.items()))
        self.progress.update(
            self.task, advance=advance, audio=f"{self.audio_seconds / 3600:.2f} h audio", counts=counts
        )


def print_summary(summary: BatchSummary, console=None) -> None:
    """The final table: files ok/reused/skipped/failed, audio, wall time, real-time factor."""
    from rich.console import Console
    from rich.table import Table

    console = console or Console(stderr=True)
    table = Table(title="Sanyu batch summary", show_header=False)
    table.add_column("what")
    table.add_column("value")
    table.add_row("files", str(len(summary.files)))
    table.add_row("ok (transcribed now)", str(summary.ok))
    table.add_row("reused (stored transcript)", str(summary.reused))
    table.add_row("skipped (already done)", str(summary.skipped))
    table.add_row("failed", f"[red]{summary.failed}[/red]" if summary.failed else "0")
    table.add_row("audio transcribed", _hours(summary.audio_seconds))
    table.add_row("wall time", f"{summary.wall_seconds:.1f} s")
    table.add_row(
        "real-time factor",
        f"{summary.rtf:.3f} ({1 / summary.rtf:.1f}× real time)" if summary.rtf else "-",
    )
    table.add_row("output", summary.output)
    console.print(table)
    for f in summary.files:
        if f.status == FAILED:
            console.print(f"failed: {f.path} [{f.stage}] {f.reason}", markup=False, highlight=False)
    if summary.errors and summary.failed:
        console.print(f"errors listed in {summary.errors}", markup=False, highlight=False)


def _hours(seconds: float) -> str:
    return f"{seconds:.1f} s ({seconds / 3600:.2f} h)"
