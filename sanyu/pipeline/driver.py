"""The driver of the batch job: connect to Ray, build the dataset, follow it, write the summary.

Stages (each row of the dataset is one input, or one piece of a long input)::

    list inputs (sanyu.inputs, on the driver)
      -> prepare    CPU tasks (sanyu.pipeline.prepare): fetch, hash, skip what is done,
                    decode, cut long recordings into pieces (sanyu.pieces)
      -> transcribe actor pool of WhisperWorkers (sanyu.pipeline.workers), sized by
                    sanyu.pipeline.plan
      -> finish     actor pool of Finishers: join pieces, diarize, write (sanyu.storage)
      -> driver     progress (sanyu.pipeline.progress), then the dataset-level index, errors
                    file and summary

Resuming: an input's result key is its content hash plus `settings_key` of its model, options
and fingerprint (the model's content, the compute type it runs in, the piece length:
`sanyu.models.fingerprint`), so a result is reused only when every setting that changes it is
the same. A run holds the output's lock (`sanyu.lock`: a second run on the same output refuses),
clears what a killed run left (temporary files, parts of long recordings), then `prepare` skips
an input whose done-marker already names that key, and passes on for re-rendering without a
model one whose transcript is stored but whose files are not. The done-marker is written after the transcript files, so after kill -9 at any point a re-run
repeats only unfinished inputs.

Faults: a Python error on one input becomes that input's error row (stage and reason) and the
batch goes on. A worker process that dies (segfault, OOM kill) is restarted by Ray and its
batch retried (``max_task_retries``); a batch that kills its worker every time is given up
after the retries, and the driver reports each input that never came back as failed.
"""

from __future__ import annotations

import json
import logging
import os
import time
import uuid
import warnings
from collections import defaultdict
from dataclasses import replace

import ray
from ray.data import ActorPoolStrategy
from rich.console import Console

from sanyu.adapters.ray_data import job_context
from sanyu.cluster import connect
from sanyu.inputs import InputItem, list_inputs
from sanyu.lock import OutputLock
from sanyu.models.fingerprint import result_fingerprint
from sanyu.options import TranscribeOptions
from sanyu.output import FORMATS, parse_formats
from sanyu.paths import is_url
from sanyu.pipeline.plan import PREPARE_CPUS, Plan, plan_for_cluster
from sanyu.pipeline.prepare import prepare_batch
from sanyu.pipeline.progress import BatchProgress
from sanyu.pipeline.rows import PARTIAL
from sanyu.pipeline.settings import BatchSettings, JobSpec
from sanyu.pipeline.workers import Finisher, WhisperWorker
from sanyu.processes import stop_requested
from sanyu.results import FAILED, FINAL, OK, REUSED, SKIPPED, BatchSummary, FileResult, Phases
from sanyu.storage import Storage
from sanyu.transcribe.engine import resolve_compute_type

log = logging.getLogger(__name__)

# Blocks of at most one piece (a piece holds ~38 MB of audio per 10 minutes): the pieces of one
# long recording come out of one `prepare` task, and in one block they would all go to one
# Whisper worker, one after another.
PIECE_BLOCK_BYTES = 2**20
FILES_PER_GPU_CALL = 4  # recordings per Whisper worker call on a GPU (fuller decode batches)
# A dead actor is restarted without limit; one batch is retried twice, then given up (its
# inputs are reported as failed) so an input that kills its worker cannot loop.
RETRY = {"max_restarts": -1, "max_task_retries": 2}


def run_batch(
    inputs: str | list[str] | list[InputItem], settings: BatchSettings, console: Console | None = None
) -> BatchSummary:
    """Transcribe every input into ``settings.output`` with Ray Data (see the module doc).

    ``inputs``: INPUTs for `sanyu.inputs.list_inputs` (folders, globs, manifests, URL
    prefixes, files), or a listing it made. Returns the summary; every input ends in it as ok,
    reused, skipped or failed.
    """
    started = time.perf_counter()
    formats = tuple(parse_formats(settings.formats))
    if not formats:
        raise ValueError(f"no output format given; choose from {', '.join(FORMATS)}")
    settings = replace(settings, formats=formats)
    listed = isinstance(inputs, list) and all(isinstance(item, InputItem) for item in inputs)
    items = inputs if listed else list_inputs(inputs, settings.storage_options)
    storage = Storage(settings.output, settings.storage_options)
    run_id = time.strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:8]
    with OutputLock(storage, run_id):
        # What a killed run left: nothing else writes here while the lock is held.
        storage.cleanup_temp()
        storage.clear_parts()
        return _run(items, storage, settings, run_id, console, started)


def _run(items: list[InputItem], storage: Storage, settings: BatchSettings, run_id: str,
         console: Console | None, started: float) -> BatchSummary:
    results: dict[int, FileResult] = {}
    phases = Phases()
    if items:
        connecting = time.perf_counter()
        started_ray = connect(settings.address, forward_worker_logs=log.isEnabledFor(logging.INFO))
        phases.ray_s = time.perf_counter() - connecting
        try:
            results = _execute(items, storage, settings, run_id, console, phases)
        finally:
            if started_ray:
                ray.shutdown()
    files = [results[i] for i in range(len(items))]
    summary = BatchSummary(storage.uri, run_id, files, 0.0, phases=phases)
    summary.errors = storage.write_errors(
        (storage.error_record(f.stem) if f.stem else None)
        or {"path": f.path, "stem": f.stem, "stage": f.stage, "reason": f.reason, "key": f.key,
            "run_id": run_id}
        for f in files if f.status == FAILED
    )
    summary.index = storage.write_index(f.stem for f in files if f.status in (OK, REUSED, SKIPPED))
    summary.wall_seconds = time.perf_counter() - started
    storage.write_summary(summary.to_dict())
    return summary


def input_rows(items: list[InputItem], options: TranscribeOptions) -> list[dict]:
    """The dataset's first rows: each input with its own options (a manifest may set its
    language and number of speakers)."""
    rows = []
    for index, item in enumerate(items):
        per_input = options.with_(
            language=item.language or options.language,
            num_speakers=item.num_speakers or options.num_speakers,
        )
        rows.append(
            {
                "index": index,
                "uri": item.uri.encode() if is_url(item.uri) else os.fsencode(item.uri),
                "path": item.display,
                "stem": item.stem,
                "options": json.dumps(per_input.to_dict(), ensure_ascii=False, sort_keys=True),
                "problem": item.problem or "",
            }
        )
    return rows


def _job_spec(settings: BatchSettings, plan: Plan, output: str, run_id: str) -> JobSpec:
    model = settings.model
    if model.device != "cuda":
        model = replace(model, cpu_threads=plan.cpu_threads)
    compute_type = resolve_compute_type(model.compute_type, plan.device)
    return JobSpec(
        output=output, model=model, formats=settings.formats, run_id=run_id,
        storage_options=settings.storage_options, piece_seconds=settings.piece_seconds,
        fingerprint=result_fingerprint(model.model, compute_type, settings.piece_seconds),
        crash_once=settings.crash_once,
    )


def _dataset(items: list[InputItem], settings: BatchSettings, plan: Plan, spec: JobSpec):
    # Largest first (by bytes, what the listing knows before decoding): a long recording that
    # starts last keeps one worker busy alone at the end.
    rows = [r for _, r in sorted(zip(items, input_rows(items, settings.options)),
                                 key=lambda pair: -pair[0].size)]
    ds = ray.data.from_items(rows, override_num_blocks=max(1, min(len(rows), 10_000)))
    ds = ds.map_batches(
        prepare_batch, batch_size=1, batch_format="pyarrow", fn_kwargs={"spec": spec},
        num_cpus=PREPARE_CPUS,
    )
    with warnings.catch_warnings():
        # max_restarts / max_task_retries have no named parameter yet: they go as remote args.
        warnings.simplefilter("ignore", DeprecationWarning)
        ds = ds.map_batches(
            WhisperWorker, batch_size=_files_per_call(settings, plan), batch_format="pyarrow",
            fn_constructor_kwargs={"spec": spec}, compute=ActorPoolStrategy(size=plan.workers),
            **plan.whisper_args, **RETRY,
        )
        return ds.map_batches(
            Finisher, batch_size=1, batch_format="pyarrow", fn_constructor_kwargs={"spec": spec},
            compute=ActorPoolStrategy(size=plan.finishers), **plan.finisher_args, **RETRY,
        )


def _files_per_call(settings: BatchSettings, plan: Plan) -> int:
    """Recordings per Whisper worker call. On CPUs one: a recording's own windows fill the
    decode batches, and a worker that takes several at its last call works alone while the
    others wait (bench/RESULTS.md); a GPU wants the fuller batches of several."""
    if settings.files_per_batch:
        return settings.files_per_batch
    return FILES_PER_GPU_CALL if plan.device == "cuda" else 1


def _execute(
    items: list[InputItem], storage: Storage, settings: BatchSettings, run_id: str,
    console: Console | None, phases: Phases,
) -> dict[int, FileResult]:
    plan = plan_for_cluster(settings.workers, settings.model, settings.options.diarize)
    spec = _job_spec(settings, plan, storage.uri, run_id)
    results: dict[int, FileResult] = {}
    partial_seconds: dict[int, float] = defaultdict(float)
    nodes: dict[int, list[str]] = defaultdict(list)
    tracker = BatchProgress(len(items), console, settings.progress)
    problem = None
    try:
        with job_context(PIECE_BLOCK_BYTES), tracker:
            ds = _dataset(items, settings, plan, spec)
            phases.start()
            for batch in ds.iter_batches(batch_size=None, batch_format="pyarrow"):
                for row in batch.drop_columns(["pcm", "transcript", "uri", "features"]).to_pylist():
                    index = row["index"]
                    phases.saw(row["worker"], row["finished"])
                    if row["node"]:
                        nodes[index].append(row["node"])
                    if row["status"] == PARTIAL:
                        tracker.audio(row["duration"])
                        partial_seconds[index] += row["seconds"]
                        continue
                    if row["status"] not in FINAL or index in results:
                        continue
                    results[index] = FileResult(
                        row["path"], row["stem"], row["status"], row["duration"], row["stage"],
                        row["reason"], row["key"], round(row["seconds"] + partial_seconds.pop(index, 0.0), 3),
                        tuple(nodes.pop(index, ())),
                    )
                    tracker.done(results[index])
    except Exception as exc:  # the job itself failed (e.g. no worker could start)
        if stop_requested():  # the signal killed the workers too: a stop, not a failure
            raise KeyboardInterrupt from exc
        problem = f"{type(exc).__name__}: {exc}"
        log.error("batch job failed: %s", problem)
    for index, item in enumerate(items):
        if index not in results:
            results[index] = _lost(item, storage, run_id, problem)
    return results


def _lost(item: InputItem, storage: Storage, run_id: str, problem: str | None) -> FileResult:
    """An input that never came back from the dataset: failed, with the reason recorded."""
    reason = (
        f"the job stopped before this input finished ({problem})" if problem
        else "lost: its worker died repeatedly while processing it (see the Ray logs); "
             "run the batch again to retry"
    )
    try:
        storage.write_error(item.stem, item.display, "job", reason, run_id=run_id)
    except Exception:  # noqa: BLE001 - the summary still lists it
        log.exception("could not record the error of %s", item.display)
    return FileResult(item.display, item.stem, FAILED, 0.0, "job", reason)
