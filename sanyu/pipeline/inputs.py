"""Listing the inputs of a batch job, and getting each one as a local file.

INPUT may be:

* a directory: every file below it (recursively) whose extension is an audio or video one
  (``sanyu.audio.AUDIO_EXTENSIONS``);
* a glob (``meetings/**/*.m4a``, ``s3://bucket/in/*.wav``), matched as written;
* a manifest: a ``.csv``/``.tsv`` with a header, or a ``.jsonl``/``.ndjson``, one row per input
  with ``path`` and optionally ``language`` and ``num_speakers`` (a relative ``path`` is taken
  relative to the manifest's folder);
* an fsspec URL prefix such as ``s3://bucket/recordings/`` (listed recursively, like a directory);
* a single file.

Each input gets its output stem from :func:`sanyu.output.naming.output_stem` relative to the
listing's root (the directory, the glob's fixed prefix, the manifest's folder), so the stem is
the same in every run. A manifest row that cannot be used (no path, a bad ``num_speakers``)
becomes an input with ``problem`` set, so the job reports it as an error instead of dropping it.

ffmpeg only ever sees local files: :func:`local_copy` downloads an object-store input to a
temporary file first.
"""

from __future__ import annotations

import contextlib
import csv
import glob as globlib
import hashlib
import io
import json
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from sanyu.audio import AUDIO_EXTENSIONS
from sanyu.output.naming import output_stem

MANIFEST_SUFFIXES = (".csv", ".tsv", ".jsonl", ".ndjson")
_GLOB_CHARS = re.compile(r"[*?\[]")
_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]+://")


def is_url(path: str) -> bool:
    """True for an fsspec URL (``s3://…``); False for a local path (``file://`` counts as local)."""
    return bool(_URL.match(path)) and not path.startswith("file://")


def display_path(path: str) -> str:
    """``path`` as printable text: bytes a file name holds that are not UTF-8 become ``\\xNN``."""
    return path.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


@dataclass(frozen=True)
class InputItem:
    """One input of a batch: where it is, its output stem, and its per-input settings."""

    uri: str  # a local path (possibly holding surrogate escapes) or an fsspec URL
    stem: str
    language: str | None = None
    num_speakers: int | None = None
    size: int = -1  # bytes, when the listing knew it
    problem: str | None = None  # why the input cannot be used (bad manifest row)

    @property
    def display(self) -> str:
        return display_path(self.uri)


def _fs(url: str, storage_options: dict | None):
    import fsspec

    return fsspec.core.url_to_fs(url, **(storage_options or {}))


def _static_prefix(pattern: str) -> str:
    """The part of a glob before its first wildcard, cut back to a folder."""
    match = _GLOB_CHARS.search(pattern)
    head = pattern[: match.start()] if match else pattern
    return head.rsplit("/", 1)[0] if "/" in head else "."


def _item(uri: str, root: str | None, size: int = -1, **extra) -> InputItem:
    return InputItem(uri=uri, stem=output_stem(uri, root), size=size, **extra)


def _list_directory(root: str, extensions: set[str]) -> list[InputItem]:
    items = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(filenames):
            if os.path.splitext(name)[1].lower() not in extensions:
                continue
            path = os.path.join(dirpath, name)
            try:
                size = os.stat(path).st_size
            except OSError:
                size = -1
            items.append(_item(path, root, size))
    return items


def _list_url_prefix(url: str, extensions: set[str], storage_options: dict | None) -> list[InputItem]:
    fs, root = _fs(url, storage_options)
    if fs.isfile(root):
        parent = url.rstrip("/").rsplit("/", 1)[0]
        return [_item(url, parent, int(fs.info(root).get("size") or -1))]
    found = fs.find(root, detail=True)
    items = []
    for path in sorted(found):
        if os.path.splitext(path)[1].lower() not in extensions:
            continue
        items.append(_item(fs.unstrip_protocol(path), url.rstrip("/"), int(found[path].get("size") or -1)))
    return items


def _list_glob(pattern: str, storage_options: dict | None) -> list[InputItem]:
    root = _static_prefix(pattern)
    if is_url(pattern):
        fs, path = _fs(pattern, storage_options)
        found = fs.glob(path, detail=True)
        return [
            _item(fs.unstrip_protocol(p), root, int(info.get("size") or -1))
            for p, info in sorted(found.items())
            if info.get("type") != "directory"
        ]
    items = []
    for path in sorted(globlib.glob(pattern, recursive=True)):
        if os.path.isfile(path):
            items.append(_item(path, root, os.stat(path).st_size))
    return items


def _manifest_rows(text: str, suffix: str) -> Iterator[tuple[int, dict | None, str | None]]:
    """(line number, row, problem) for each row of a manifest."""
    if suffix in (".jsonl", ".ndjson"):
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                yield number, None, f"not valid JSON ({exc.msg})"
                continue
            if not isinstance(row, dict):
                yield number, None, "not a JSON object"
                continue
            yield number, row, None
        return
    reader = csv.DictReader(io.StringIO(text), delimiter="\t" if suffix == ".tsv" else ",")
    for number, row in enumerate(reader, start=2):
        yield number, {k.strip(): (v.strip() if isinstance(v, str) else v) for k, v in row.items() if k}, None


def _list_manifest(manifest: str, storage_options: dict | None) -> list[InputItem]:
    suffix = os.path.splitext(manifest)[1].lower()
    if is_url(manifest):
        fs, path = _fs(manifest, storage_options)
        text = fs.cat_file(path).decode("utf-8-sig")
        base = manifest.rsplit("/", 1)[0]
    else:
        text = Path(manifest).read_text(encoding="utf-8-sig")
        base = os.path.dirname(os.path.abspath(manifest))
    items = []
    for number, row, problem in _manifest_rows(text, suffix):
        where = f"{display_path(manifest)} line {number}"
        path = str((row or {}).get("path") or "").strip()
        if problem is None and not path:
            problem = "no path"
        if problem is not None:
            items.append(InputItem(uri=where, stem=output_stem(where), problem=f"manifest row: {problem}"))
            continue
        if not is_url(path) and not os.path.isabs(path):
            path = f"{base}/{path}" if is_url(base) else os.path.join(base, path)
        language = str(row.get("language") or "").strip() or None
        speakers_value = row.get("num_speakers")
        num_speakers = None
        if speakers_value not in (None, ""):
            try:
                num_speakers = int(speakers_value)
                if num_speakers < 1:
                    raise ValueError
            except (TypeError, ValueError):
                items.append(
                    _item(path, base, problem=f"manifest {where}: num_speakers must be a positive "
                                              f"integer, not {speakers_value!r}")
                )
                continue
        items.append(_item(path, base, language=language, num_speakers=num_speakers))
    return items


def list_inputs(
    spec: str, storage_options: dict | None = None, extensions: set[str] | None = None
) -> list[InputItem]:
    """Every input named by ``spec`` (see the module doc), in a stable order, each stem once."""
    extensions = extensions or set(AUDIO_EXTENSIONS)
    spec = os.fspath(spec)
    if spec.startswith("file://"):
        spec = spec[len("file://"):]
    suffix = os.path.splitext(spec)[1].lower()
    if suffix in MANIFEST_SUFFIXES and not _GLOB_CHARS.search(spec):
        items = _list_manifest(spec, storage_options)
    elif _GLOB_CHARS.search(spec) and not (not is_url(spec) and os.path.exists(spec)):
        items = _list_glob(spec, storage_options)
    elif is_url(spec):
        items = _list_url_prefix(spec, extensions, storage_options)
    elif os.path.isdir(spec):
        items = _list_directory(spec, extensions)
    elif os.path.lexists(spec):
        items = [_item(spec, os.path.dirname(os.path.abspath(spec)), _size(spec))]
    else:
        raise FileNotFoundError(f"{display_path(spec)}: no such file, folder, glob match or manifest")
    unique: dict[str, InputItem] = {}
    for item in items:
        unique.setdefault(item.stem, item)  # a manifest naming one file twice: do it once
    return list(unique.values())


def _size(path: str) -> int:
    try:
        return os.stat(path).st_size
    except OSError:
        return -1


@contextlib.contextmanager
def local_copy(uri: str, storage_options: dict | None = None) -> Iterator[str]:
    """A local path holding the input's bytes: the path itself, or a temporary download."""
    if not is_url(uri):
        yield uri[len("file://"):] if uri.startswith("file://") else uri
        return
    fs, path = _fs(uri, storage_options)
    suffix = os.path.splitext(path)[1][:16]
    directory = tempfile.mkdtemp(prefix="sanyu-input-")
    local = os.path.join(directory, "input" + (suffix if re.fullmatch(r"\.[A-Za-z0-9]+", suffix) else ""))
    try:
        fs.get_file(path, local)
        yield local
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def content_hash(path: str, block: int = 1 << 20) -> str:
    """sha256 of a local file's bytes (hex)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(block):
            digest.update(chunk)
    return digest.hexdigest()
