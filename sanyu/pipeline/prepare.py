"""Stage 1 of the batch job, in CPU tasks: fetch, hash, skip, decode, cut.

An object-store input is downloaded to a local temporary file first (ffmpeg only sees local
files). The file is opened once (`sanyu.audio.MediaFile`: a regular file, not empty), and that
one descriptor is both hashed into the result key and decoded, so what is transcribed is what
was hashed. An input already done with that key is skipped (no decoding, no model), one whose
transcript is stored but whose files are not is passed on to be re-rendered; the rest is decoded
and cut into pieces (`sanyu.pieces`), and each piece's speech is planned here (VAD regions, and
the log-mel features of the windows they pack into, when the model is a local directory), so the
Whisper actors only run the model.
"""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Iterator

import pyarrow as pa

from sanyu.adapters.faster_whisper import LogMel
from sanyu.audio import SAMPLE_RATE, Audio, MediaFile
from sanyu.errors import AudioError
from sanyu.inputs import local_copy
from sanyu.models import resolve_whisper
from sanyu.options import TranscribeOptions
from sanyu.pieces import split_audio
from sanyu.pipeline.rows import AUDIO, REUSE, failed, row, table, with_speech_plan
from sanyu.pipeline.settings import JobSpec
from sanyu.results import SKIPPED
from sanyu.storage import Storage, input_key
from sanyu.transcribe.speech import plan_speech


def prepare_batch(batch: pa.Table, spec: JobSpec) -> Iterator[pa.Table]:
    """Ray Data UDF: each input row becomes piece rows, or one skipped/reuse/failed row."""
    for values in batch.to_pylist():
        for out in _prepare(values, spec):
            yield table([out])


def _prepare(values: dict, spec: JobSpec) -> Iterator[dict]:
    base = row(**{k: values[k] for k in ("index", "uri", "path", "stem", "options")})
    if values.get("problem"):
        yield failed(base, "list", values["problem"])
        return
    uri = os.fsdecode(values["uri"])
    stage, key = "fetch", ""
    try:
        options = TranscribeOptions.from_dict(json.loads(values["options"]))
        with local_copy(uri, spec.storage_options) as path, \
                MediaFile.open(path, name=values["path"]) as media:
            key = input_key(media.fd, spec.model, options, spec.fingerprint)
            storage = Storage(spec.output, spec.storage_options)
            if storage.is_done(base["stem"], key, spec.formats):
                record = storage.done_record(base["stem"]) or {}
                yield row(**{**base, "status": SKIPPED, "key": key,
                              "duration": float(record.get("duration") or 0.0)})
                return
            if storage.has_transcript(key):
                yield row(**{**base, "status": REUSE, "key": key})
                return
            stage = "decode"
            for index, last, offset, samples in split_audio(media, spec.piece_seconds):
                plan = plan_speech(Audio(samples, base["path"]), options.vad, _log_mel(spec.model.model))
                yield with_speech_plan(
                    row(**{**base, "status": AUDIO, "key": key, "piece": index, "last": last,
                           "offset": offset, "duration": len(samples) / SAMPLE_RATE,
                           "pcm": samples.tobytes()}),
                    plan,
                )
    except AudioError as exc:
        yield failed(base, "decode", exc.reason, key)
    except FileNotFoundError:
        yield failed(base, stage, "file not found", key)
    except PermissionError:
        yield failed(base, stage, "permission denied", key)
    except Exception as exc:  # one bad input must not stop the batch
        yield failed(base, stage, f"{type(exc).__name__}: {exc}", key)


@functools.lru_cache(maxsize=4)
def _log_mel(model: str) -> LogMel | None:
    """The model's log-mel front end, when its files are at hand (a registered name or a local
    directory; a hub id is left to the Whisper worker, which downloads it)."""
    path = resolve_whisper(model)
    return LogMel(path) if os.path.isdir(path) else None
