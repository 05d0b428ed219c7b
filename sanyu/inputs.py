"""Listing the inputs of a run, and getting each one as a local file.

One listing for every entry point: ``sanyu transcribe``, ``sanyu batch`` and the HTTP jobs'
``uri`` all name their inputs with it. Each INPUT may be:

* a directory: every file below it (recursively) whose extension is an audio or video one
  (``sanyu.paths.MEDIA_EXTENSIONS``);
* a glob (``meetings/**/*.m4a``, ``s3://bucket/in/*.wav``), matched as written;
* a manifest: a ``.csv``/``.tsv`` with a header, or a ``.jsonl``/``.ndjson``, one row per input
  with ``path`` and optionally ``language`` and ``num_speakers`` (a relative ``path`` is taken
  relative to the manifest's folder);
* an fsspec URL prefix such as ``s3://bucket/recordings/`` (listed recursively, like a directory);
* a single file.

Each input gets its output stem from :func:`sanyu.output.naming.output_stem` relative to the
listing's root (the directory, the glob's fixed prefix, the manifest's folder, a lone file's
own folder; with several INPUTs, the folder they all lie in), so the stem is the same in every
run and two inputs never share one. A manifest row that cannot be used (no path, a bad ``num_speakers``)
becomes an input with ``problem`` set, so the job reports it as an error instead of dropping it.

ffmpeg only ever sees local files: :func:`local_copy` downloads an object-store input to a
temporary file first.
"""

from __future__ import annotations

import contextlib
import csv
import glob as globlib
import io
import json
import os
import re
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import fsspec

from sanyu.options import language_code
from sanyu.output.naming import output_stem
from sanyu.paths import MEDIA_EXTENSIONS, display_path, is_url, local_path, split_url

MANIFEST_SUFFIXES = (".csv", ".tsv", ".jsonl", ".ndjson")
_GLOB_CHARS = re.compile(r"[*?\[]")


@dataclass(frozen=True)
class InputItem:
    """One input of a run: where it is, its output stem, and its per-input settings."""

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


def _list_url_prefix(
    url: str, extensions: set[str], storage_options: dict | None
) -> tuple[str, list[InputItem]]:
    fs, root = _fs(url, storage_options)
    if fs.isfile(root):
        parent = url.rstrip("/").rsplit("/", 1)[0]
        return parent, [_item(url, parent, int(fs.info(root).get("size") or -1))]
    found = fs.find(root, detail=True)
    items = []
    for path in sorted(found):
        if os.path.splitext(path)[1].lower() not in extensions:
            continue
        items.append(_item(fs.unstrip_protocol(path), url.rstrip("/"), int(found[path].get("size") or -1)))
    return url.rstrip("/"), items


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


def _manifest_base(manifest: str) -> str:
    """The folder a manifest's relative paths (and its inputs' names) are taken from."""
    return manifest.rsplit("/", 1)[0] if is_url(manifest) else os.path.dirname(os.path.abspath(manifest))


def _list_manifest(manifest: str, storage_options: dict | None) -> list[InputItem]:
    suffix = os.path.splitext(manifest)[1].lower()
    base = _manifest_base(manifest)
    if is_url(manifest):
        fs, path = _fs(manifest, storage_options)
        text = fs.cat_file(path).decode("utf-8-sig")
    else:
        text = Path(manifest).read_text(encoding="utf-8-sig")
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
        if language is not None:
            try:
                language = language_code(language)
            except ValueError as exc:
                items.append(_item(path, base, problem=f"manifest {where}: {exc}"))
                continue
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
    specs: str | os.PathLike | Sequence[str | os.PathLike],
    storage_options: dict | None = None,
    extensions: set[str] | None = None,
) -> list[InputItem]:
    """Every input named by ``specs`` (one INPUT or several; see the module doc), in a stable
    order, each stem once. FileNotFoundError names an INPUT that matches nothing."""
    if isinstance(specs, (str, os.PathLike)):
        specs = [specs]
    listings = [_list_spec(os.fspath(spec), storage_options, extensions or set(MEDIA_EXTENSIONS))
                for spec in specs]
    if len(listings) == 1:
        items = listings[0][1]
    else:  # named relative to the folder all the INPUTs lie in, so that none collide
        root = common_root([spec_root for spec_root, _ in listings])
        items = [
            item if item.problem else replace(item, stem=output_stem(item.uri, root))
            for _, listed in listings for item in listed
        ]
    unique: dict[str, InputItem] = {}
    for item in items:
        unique.setdefault(item.stem, item)  # one file named twice: do it once
    return list(unique.values())


def _list_spec(spec: str, storage_options: dict | None, extensions: set[str]) -> tuple[str, list[InputItem]]:
    """(the root names are relative to, the inputs) of one INPUT."""
    spec = local_path(spec)
    suffix = os.path.splitext(spec)[1].lower()
    if suffix in MANIFEST_SUFFIXES and not _GLOB_CHARS.search(spec):
        return _manifest_base(spec), _list_manifest(spec, storage_options)
    if _GLOB_CHARS.search(spec) and not (not is_url(spec) and os.path.exists(spec)):
        return _static_prefix(spec), _list_glob(spec, storage_options)
    if is_url(spec):
        return _list_url_prefix(spec, extensions, storage_options)
    if os.path.isdir(spec):
        return spec, _list_directory(spec, extensions)
    if os.path.lexists(spec):
        parent = os.path.dirname(os.path.abspath(spec))
        return parent, [_item(spec, parent, _size(spec))]
    raise FileNotFoundError(f"{display_path(spec)}: no such file, folder, glob match or manifest")


def common_root(roots: Sequence[str]) -> str | None:
    """The deepest folder (or URL prefix) that holds every one of ``roots``; None when they
    have none in common (local folders and URLs, or two schemes or buckets)."""
    urls = [split_url(root) for root in roots]
    if all(url is None for url in urls):
        return os.path.commonpath([os.path.abspath(root) for root in roots])
    if any(url is None for url in urls) or len({url[0] for url in urls}) != 1:
        return None
    split = [url[1].strip("/").split("/") for url in urls]
    common = []
    for parts in zip(*split):
        if len(set(parts)) != 1:
            break
        common.append(parts[0])
    return f"{urls[0][0]}://{'/'.join(common)}" if common else None


def _size(path: str) -> int:
    try:
        return os.stat(path).st_size
    except OSError:
        return -1


@contextlib.contextmanager
def local_copy(uri: str, storage_options: dict | None = None) -> Iterator[str]:
    """A local path holding the input's bytes: the path itself, or a temporary download of a
    remote input (removed on the way out). ffmpeg never sees a URL."""
    if not is_url(uri):
        yield local_path(uri)
        return
    fs, path = _fs(uri, storage_options)
    with _temporary(path) as local:
        fs.get_file(path, local)
        yield local


@contextlib.contextmanager
def _temporary(name: str) -> Iterator[str]:
    """A path in a new private folder, keeping ``name``'s extension when it is a plain one."""
    suffix = os.path.splitext(name)[1][:16]
    directory = tempfile.mkdtemp(prefix="sanyu-input-")
    try:
        yield os.path.join(directory, "input" + (suffix if re.fullmatch(r"\.[A-Za-z0-9]+", suffix) else ""))
    finally:
        shutil.rmtree(directory, ignore_errors=True)
