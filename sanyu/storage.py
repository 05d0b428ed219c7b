"""Where the results of a run (a batch, or an HTTP job) live: transcripts, done-markers, errors and the segment index.

Layout under the output location (a local folder or an fsspec URL such as ``s3://bucket/out``)::

    <stem>.<fmt>                  the transcript files of each input (txt, srt, json, ...)
    index.parquet                 every segment of every input of the last run: file, stem, key,
                                  segment, start, end, speaker, language, text
    errors.jsonl                  one JSON object per input of the last run that failed:
                                  path, stem, stage, reason, key, run_id, time
    summary.json                  counts, audio duration, wall time of the last run
    _sanyu/transcripts/<key>.json the transcript of a result key (content hash + settings key);
                                  inputs with the same bytes and settings share it
    _sanyu/done/<stem>.json       the done-marker of an input: written LAST, after its transcript
                                  files, so an input is finished exactly when its marker exists
    _sanyu/segments/<stem>.parquet  the input's index rows (index.parquet is their union)
    _sanyu/errors/<stem>.json     the last failure of an input, removed when it later succeeds
    _sanyu/parts/<id>/<n>.json    transcripts of the pieces of a long recording, until all exist;
                                  <id> names the input (stem) and its key, so two inputs with the
                                  same bytes never take or remove each other's pieces

Every write is atomic (`sanyu.location.Location.put`), so a process killed at any point leaves
each file either old or new, never half-written, and an input without a done-marker is simply
done again.

A result key is ``<first 32 hex of the sha256 of the input's bytes>-<settings_key>``
(:func:`result_key`). An input is done when its stem's marker names the key it has now (same
bytes, same settings) and the formats asked for; a changed file or setting means work again.

The output stems never start with ``_`` (see :mod:`sanyu.output.naming`), so nothing here can
collide with an input's files.

The batch job and the HTTP jobs both write it::

    storage = Storage("s3://bucket/jobs/123", storage_options)
    storage.write_result(stem, key, transcript, ["json", "srt"], input_path="a.wav")
    storage.is_done(stem, key, ["json", "srt"]); storage.read_transcript(stem=stem)
    storage.write_error(stem, "a.wav", "decode", "not audio")
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.parquet as pq

from sanyu.location import Location
from sanyu.options import ModelOptions, TranscribeOptions, settings_key
from sanyu.output import parse_formats, render_file
from sanyu.schema import Transcript

META = "_sanyu"
INDEX_FILE = "index.parquet"
ERRORS_FILE = "errors.jsonl"
SUMMARY_FILE = "summary.json"
_PART = re.compile(r"^(\d{6})(-last)?\.json$")
_KEY = re.compile(r"^[0-9a-f]{8,64}-[0-9a-f]{8,64}$")
# A parts folder: a digest of (stem, key), or a result key itself (the layout before it).
_PARTS_ID = re.compile(r"^[0-9a-f]{32}$|^[0-9a-f]{8,64}-[0-9a-f]{8,64}$")


def result_key(content_hash: str, settings: str) -> str:
    """The key of a result: the input's content hash (32 hex digits) and its settings key."""
    return f"{content_hash[:32]}-{settings}"


def content_hash(source: str | os.PathLike | int, block: int = 1 << 20) -> str:
    """sha256 (hex) of a local file's bytes: a path, or a descriptor already open on it (read
    with pread, so its offset and whoever else reads it are left alone)."""
    digest = hashlib.sha256()
    if isinstance(source, int):
        position = 0
        while chunk := os.pread(source, block, position):
            digest.update(chunk)
            position += len(chunk)
        return digest.hexdigest()
    with open(source, "rb") as handle:
        while chunk := handle.read(block):
            digest.update(chunk)
    return digest.hexdigest()


def input_key(source: str | os.PathLike | int, model: ModelOptions, options: TranscribeOptions,
              fingerprint: dict | None = None) -> str:
    """The result key of a local file (a path or an open descriptor) transcribed with these
    settings (`settings_key`)."""
    return result_key(content_hash(source), settings_key(model, options, fingerprint))


def index_schema() -> pa.Schema:
    return pa.schema(
        [
            ("file", pa.string()),
            ("stem", pa.string()),
            ("key", pa.string()),
            ("segment", pa.int32()),
            ("start", pa.float64()),
            ("end", pa.float64()),
            ("speaker", pa.string()),
            ("language", pa.string()),
            ("text", pa.string()),
        ]
    )


@dataclass
class Part:
    """The transcript of one piece of a long recording; its times are already absolute."""

    index: int
    last: bool
    transcript: Transcript


def _check_stem(stem: str) -> None:
    if not stem or stem in (".", "..") or stem.startswith(("_", ".")) or any(c in stem for c in "/\\\0"):
        raise ValueError(f"not a safe output stem: {stem!r}")


def _parts(stem: str, key: str) -> str:
    """The folder of the pieces of input ``stem`` with result ``key``."""
    _check_stem(stem)
    _check_key(key)
    digest = hashlib.sha256(f"{stem}\0{key}".encode()).hexdigest()[:32]
    return f"{META}/parts/{digest}"


def _check_key(key: str) -> None:
    if not _KEY.match(key or ""):
        raise ValueError(f"not a result key: {key!r}")


class Storage(Location):
    """A run's output location laid out for results (see the module doc)."""

    # ---- results -------------------------------------------------------------------------

    def done_record(self, stem: str) -> dict | None:
        """The done-marker of ``stem`` (key, formats, outputs, duration, ...), if finished."""
        _check_stem(stem)
        return self.get_json(f"{META}/done/{stem}.json")

    def is_done(self, stem: str, key: str, formats: Iterable[str] = ()) -> bool:
        """True when ``stem`` finished with result ``key`` and has every file of ``formats``."""
        record = self.done_record(stem)
        if not record or record.get("key") != key:
            return False
        wanted = {f.lower() for f in formats}
        if not wanted <= set(record.get("formats", [])):
            return False
        return all(self.exists(f"{stem}.{fmt}") for fmt in wanted)

    def has_transcript(self, key: str) -> bool:
        _check_key(key)
        return self.exists(f"{META}/transcripts/{key}.json")

    def read_transcript(self, key: str | None = None, stem: str | None = None) -> Transcript | None:
        """The stored transcript of a result key, or of the result an input stem finished with."""
        if key is None:
            if stem is None:
                raise ValueError("give key or stem")
            record = self.done_record(stem)
            if not record:
                return None
            key = record["key"]
        _check_key(key)
        data = self.get(f"{META}/transcripts/{key}.json")
        return Transcript.from_json(data.decode("utf-8")) if data is not None else None

    def write_result(
        self,
        stem: str,
        key: str,
        transcript: Transcript,
        formats: Sequence[str],
        speaker_names: Sequence[str] = (),
        input_path: str | None = None,
        run_id: str = "",
        seconds: float = 0.0,
        store_transcript: bool = True,
        extra: dict | None = None,
    ) -> dict:
        """Write an input's result; the done-marker goes last. Returns the marker's record.

        In order: the transcript under its key (skipped with ``store_transcript=False`` when
        it is already there), the files of ``formats`` (rendered by ``sanyu.output.render_file``),
        the input's index rows, the done-marker; then any earlier error of the input is
        removed.
        """
        _check_stem(stem)
        _check_key(key)
        formats = parse_formats(formats)
        rendered = [(fmt, render_file(transcript, fmt, speaker_names)) for fmt in formats]
        if store_transcript:
            self.put(f"{META}/transcripts/{key}.json", transcript.to_json(indent=None).encode("utf-8"))
        outputs = [self.put(f"{stem}.{fmt}", data) for fmt, data in rendered]
        self.put(f"{META}/segments/{stem}.parquet", self._segment_rows(stem, key, transcript, input_path))
        record = {
            "stem": stem,
            "key": key,
            "input": input_path if input_path is not None else transcript.source,
            "formats": formats,
            "outputs": outputs,
            "duration": transcript.duration,
            "languages": transcript.languages,
            "speakers": transcript.speakers,
            "segments": len(transcript.segments),
            "seconds": round(seconds, 3),
            "run_id": run_id,
            "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            **(extra or {}),
        }
        self.put_json(f"{META}/done/{stem}.json", record)
        self.delete(f"{META}/errors/{stem}.json")
        return record

    def reuse_result(
        self,
        stem: str,
        key: str,
        formats: Sequence[str],
        speaker_names: Sequence[str] = (),
        input_path: str | None = None,
        run_id: str = "",
    ) -> dict | None:
        """Finish ``stem`` from the transcript already stored under ``key`` (same bytes and
        settings seen before, under another name or before a kill): no model runs. None when
        there is no such transcript."""
        transcript = self.read_transcript(key)
        if transcript is None:
            return None
        if input_path is not None:
            transcript.source = input_path
        return self.write_result(
            stem, key, transcript, formats, speaker_names, input_path, run_id,
            store_transcript=False, extra={"reused": True},
        )

    def _segment_rows(self, stem: str, key: str, transcript: Transcript, input_path: str | None) -> bytes:
        file = input_path if input_path is not None else transcript.source
        rows = [
            {
                "file": file,
                "stem": stem,
                "key": key,
                "segment": i,
                "start": float(seg.start),
                "end": float(seg.end),
                "speaker": seg.speaker,
                "language": seg.language,
                "text": seg.text,
            }
            for i, seg in enumerate(transcript.segments)
        ]
        table = pa.Table.from_pylist(rows, schema=index_schema())
        sink = io.BytesIO()
        pq.write_table(table, sink)
        return sink.getvalue()

    # ---- errors --------------------------------------------------------------------------

    def write_error(
        self, stem: str, input_path: str, stage: str, reason: str, key: str = "", run_id: str = ""
    ) -> dict:
        """Record that an input failed at ``stage`` (list, fetch, decode, transcribe, diarize,
        write, job) and why. A later success removes the record."""
        _check_stem(stem)
        record = {
            "path": input_path,
            "stem": stem,
            "stage": stage,
            "reason": reason,
            "key": key,
            "run_id": run_id,
            "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        self.put_json(f"{META}/errors/{stem}.json", record)
        return record

    def error_record(self, stem: str) -> dict | None:
        _check_stem(stem)
        return self.get_json(f"{META}/errors/{stem}.json")

    # ---- pieces of long recordings -------------------------------------------------------

    def write_part(self, stem: str, key: str, index: int, last: bool, transcript: Transcript) -> None:
        name = f"{index:06d}{'-last' if last else ''}.json"
        self.put(f"{_parts(stem, key)}/{name}", transcript.to_json(indent=None).encode("utf-8"))

    def complete_parts(self, stem: str, key: str) -> list[Part] | None:
        """All pieces of input ``stem`` (result ``key``) in order once every one has been
        written, else None."""
        folder = _parts(stem, key)
        names = [m for m in (_PART.match(n) for n in self.listdir(folder)) if m]
        lasts = [int(m.group(1)) for m in names if m.group(2)]
        if not lasts:
            return None
        present = {int(m.group(1)): m.group(0) for m in names}
        if any(i not in present for i in range(lasts[0] + 1)):
            return None
        parts = []
        for i in range(lasts[0] + 1):
            data = self.get(f"{folder}/{present[i]}")
            if data is None:  # removed meanwhile by a finisher that assembled them
                return None
            parts.append(Part(i, i == lasts[0], Transcript.from_json(data.decode("utf-8"))))
        return parts

    def clear_parts(self) -> int:
        """Remove the parts every earlier run left (a run transcribes all the pieces of an
        unfinished recording again, so none is ever joined with another run's). Call it only
        holding the output's lock (`sanyu.lock`). Returns how many recordings had parts."""
        folders = [name for name in self.listdir(f"{META}/parts") if _PARTS_ID.match(name)]
        for name in folders:
            self._delete_folder(f"{META}/parts/{name}")
        return len(folders)

    def delete_parts(self, stem: str, key: str) -> None:
        self._delete_folder(_parts(stem, key))

    def _delete_folder(self, folder: str) -> None:
        for name in self.listdir(folder):
            self.delete(f"{folder}/{name}")
        self.remove_folder(folder)

    # ---- dataset-level files -------------------------------------------------------------

    def write_index(self, stems: Iterable[str]) -> str:
        """index.parquet: the segment rows of ``stems`` (those that are done), in that order."""
        tables = []
        for stem in stems:
            data = self.get(f"{META}/segments/{stem}.parquet")
            if data is not None:
                tables.append(pq.read_table(pa.BufferReader(data)).cast(index_schema()))
        table = pa.concat_tables(tables) if tables else index_schema().empty_table()
        sink = io.BytesIO()
        pq.write_table(table, sink)
        return self.put(INDEX_FILE, sink.getvalue())

    def write_errors(self, records: Iterable[dict]) -> str:
        """errors.jsonl: one record per failed input (see write_error)."""
        lines = [json.dumps(r, ensure_ascii=False) + "\n" for r in records]
        return self.put(ERRORS_FILE, "".join(lines).encode("utf-8"))

    def write_summary(self, summary: dict) -> str:
        return self.put_json(SUMMARY_FILE, summary)
