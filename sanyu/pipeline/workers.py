"""Stages 2 and 3 of the batch job, in Ray actor pools: transcribe, then finish.

`WhisperWorker`: each holds one Transcriber (models load once per actor) and calls
`transcribe_many` on a batch of pieces, so the speech chunks of several recordings are decoded
together on the model; it records the Ray node each piece was transcribed on.

`Finisher`: puts the pieces of a long recording back together (each piece's transcript is
stored under ``_sanyu/parts/`` with absolute times; the finisher that stores the last
missing piece joins them), diarizes when asked (the library's own diarization step; a split
recording is decoded again whole, for speaker labels that hold throughout: about 230 MB of
float32 per audio hour), and writes the result (done-marker last) or the error.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections import defaultdict

import numpy as np
import pyarrow as pa
import ray

from sanyu.api import Transcriber
from sanyu.audio import Audio, decode_audio
from sanyu.inputs import local_copy
from sanyu.options import TranscribeOptions
from sanyu.pieces import merge_pieces, shift_transcript
from sanyu.pipeline.rows import (
    AUDIO,
    NO_AUDIO,
    PARTIAL,
    REUSE,
    TRANSCRIBED,
    failed,
    speech_plan,
    table,
)
from sanyu.pipeline.settings import JobSpec
from sanyu.results import FAILED, OK, REUSED, SKIPPED
from sanyu.schema import Transcript
from sanyu.storage import Storage

log = logging.getLogger(__name__)


class WhisperWorker:
    """Ray Data actor: one Transcriber; each call transcribes a batch of pieces together."""

    def __init__(self, spec: JobSpec):
        self.spec = spec
        self.transcriber = Transcriber(spec.model)
        context = ray.get_runtime_context()
        self.node, self.worker = context.get_node_id(), context.get_actor_id() or ""

    def __call__(self, batch: pa.Table) -> pa.Table:
        rows = batch.to_pylist()
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
            plans = [speech_plan(row) for row in group]
            started = time.perf_counter()
            results = self._transcribe(audios, options, plans)
            elapsed = time.perf_counter() - started
            total = sum(audio.duration for audio in audios) or 1.0
            for row, audio, result in zip(group, audios, results):
                row["seconds"] = elapsed * audio.duration / total
                row.update(node=self.node, worker=self.worker, finished=time.time())
                if isinstance(result, Exception):
                    row.update(status=FAILED, stage="transcribe", **NO_AUDIO,
                               reason=f"{type(result).__name__}: {result}")
                    continue
                result.options = options.to_dict()
                shift_transcript(result, row["offset"])
                row.update(status=TRANSCRIBED, transcript=result.to_json(indent=None),
                           speech="", features=b"", mel_bins=0)
                if not (options.diarize and row["piece"] == 0 and row["last"]):
                    row["pcm"] = b""  # only a whole recording to diarize needs its samples again
        return table(rows)

    def _transcribe(self, audios, options: TranscribeOptions, plans) -> list:
        asr = options.with_(diarize=False)  # diarization runs in the finisher, on whole recordings
        if any(plan is None for plan in plans):
            plans = None
        try:
            return list(self.transcriber.transcribe_many(audios, asr, plans))
        except Exception as exc:  # noqa: BLE001
            if len(audios) == 1:
                return [exc]
        results: list = []
        for i, audio in enumerate(audios):  # find the one that fails; the others still get transcribed
            try:
                results.append(self.transcriber.transcribe_many([audio], asr, plans and [plans[i]])[0])
            except Exception as exc:  # noqa: BLE001
                results.append(exc)
        return results


class Finisher:
    """Ray Data actor: joins pieces, diarizes when asked, writes results and errors."""

    def __init__(self, spec: JobSpec):
        self.spec = spec
        self.storage = Storage(spec.output, spec.storage_options)
        self._transcriber = None

    @property
    def transcriber(self) -> Transcriber:
        if self._transcriber is None:  # a finisher that only writes never loads a model
            self._transcriber = Transcriber(self.spec.model)
        return self._transcriber

    def __call__(self, batch: pa.Table) -> pa.Table:
        return table([self._finish(values) for values in batch.to_pylist()])

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
                self.storage.write_part(row["stem"], row["key"], row["piece"], row["last"], transcript)
                parts = self.storage.complete_parts(row["stem"], row["key"])
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
                self.storage.delete_parts(row["stem"], row["key"])
            return {**row, "status": OK, "pcm": b"", "duration": float(record["duration"])}
        except Exception as exc:  # one bad input must not stop the batch
            failure = failed(row, stage, f"{type(exc).__name__}: {exc}", row.get("key", ""))
            self._record_error(failure)
            return failure

    def _diarize(self, row: dict, transcript: Transcript, options: TranscribeOptions, whole: bool):
        if whole and row["pcm"]:
            audio = Audio(samples=np.frombuffer(row["pcm"], dtype=np.float32).copy(), source=row["path"])
        else:  # a split recording: diarize it whole, for speaker labels that hold throughout
            with local_copy(os.fsdecode(row["uri"]), self.spec.storage_options) as path:
                audio = decode_audio(path)
            audio.source = row["path"]
        # The library's own diarization step (Transcriber.transcribe_many with diarize=True).
        return self.transcriber.diarize(audio, transcript, options)

    def _record_error(self, row: dict) -> None:
        try:
            self.storage.write_error(
                row["stem"], row["path"], row["stage"], row["reason"], row.get("key", ""), self.spec.run_id
            )
        except Exception:  # noqa: BLE001 - the driver records it again
            log.exception("could not record the error of %s", row["path"])
        if row.get("key"):
            try:
                self.storage.delete_parts(row["stem"], row["key"])
            except Exception:  # noqa: BLE001
                pass
