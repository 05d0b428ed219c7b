"""Uploads: a streaming multipart parser with a size limit, temporary files, and media checks.

The request body is read chunk by chunk; the file part goes straight into a temporary file in a
per-request folder that is always removed (``spool_dir``), other fields are kept in memory
(small, capped). The size limit is checked against ``Content-Length`` before anything is read and
then against the bytes actually received, as they arrive, so an oversize upload is refused
without being stored; so is the server's upload space as a whole (`sanyu.serve.admission`: 429
when it is full).

ffmpeg only ever sees a file this server wrote, through the one decoder (`sanyu.audio`: the
``file`` protocol and plain audio/video demuxers only, so a playlist or concat script that could
point ffmpeg at other files or URLs is refused; bounded in length and time). `open_upload` opens
it once and probes it; `audio_error` turns the decoder's reasons into HTTP errors.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.requests import Request

from sanyu.audio import MediaFile, MediaInfo, probe
from sanyu.errors import AudioError
from sanyu.paths import is_media
from sanyu.serve.admission import SpoolShare
from sanyu.serve.errors import APIError, bad_request, too_large, unsupported_media

MAX_FIELDS = 64
MAX_FIELD_BYTES = 64 * 1024
# After the limit is passed, up to this many more bytes are read and dropped, so that a client
# still sending its body can read the 413 instead of seeing its connection reset.
DRAIN_BYTES = 32 * 1024 * 1024
DRAIN_S = 5.0

_UNSAFE_LABEL = re.compile(r"[^\w.\- ()\[\]]+", re.UNICODE)
# Content types that are clearly not audio or video: refused with 415 before ffmpeg runs.
_NOT_MEDIA = re.compile(
    r"^(text/|image/|font/|application/(json|xml|pdf|zip|gzip|x-tar|x-7z|"
    r"vnd\.|msword|javascript|x-www-form-urlencoded|x-mpegurl|vnd\.apple\.mpegurl|dash\+xml))",
    re.I,
)


@dataclass
class UploadedFile:
    path: Path
    filename: str
    content_type: str
    size: int = 0


@dataclass
class Form:
    fields: dict[str, list[str]] = field(default_factory=dict)
    file: UploadedFile | None = None

    def get(self, name: str, default: str | None = None) -> str | None:
        values = self.fields.get(name)
        return values[-1] if values else default

    def getlist(self, *names: str) -> list[str]:
        return [value for name in names for value in self.fields.get(name, [])]


@contextlib.asynccontextmanager
async def spool(root: str | os.PathLike | None, share: SpoolShare | None = None) -> AsyncIterator[Path]:
    """A private temporary folder for one request, removed on the way out whatever happens
    (and the upload space it held given back)."""
    directory = make_spool_folder(root, "sanyu-upload-")
    try:
        yield directory
    finally:
        shutil.rmtree(directory, ignore_errors=True)
        if share is not None:
            share.release()


def make_spool_folder(root: str | os.PathLike | None, prefix: str) -> Path:
    """A new private folder under ``root`` (default: the system's temporary folder)."""
    if root is not None:
        os.makedirs(root, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=prefix, dir=root))


def _declared_length(request: Request) -> int | None:
    value = request.headers.get("content-length")
    if value is None:
        return None
    try:
        length = int(value)
    except ValueError:
        raise bad_request("invalid Content-Length header", code="invalid_request") from None
    if length < 0:
        raise bad_request("invalid Content-Length header", code="invalid_request")
    return length


async def _drain(stream: AsyncIterator[bytes], budget: int) -> None:
    """Read and drop up to ``budget`` bytes of what the client is still sending (for
    ``DRAIN_S`` at most), so that it can read the error instead of a reset connection."""

    async def drain() -> None:
        left = budget
        async for chunk in stream:
            left -= len(chunk)
            if left < 0:
                return

    with contextlib.suppress(Exception):
        await asyncio.wait_for(drain(), DRAIN_S)


async def limited_stream(request: Request, max_bytes: int, share: SpoolShare | None = None) -> AsyncIterator[bytes]:
    """The request body, chunk by chunk; 413 as soon as more than ``max_bytes`` arrive, 429
    when ``share`` of the server's upload space cannot hold it."""
    declared = _declared_length(request)
    stream = request.stream()
    if declared is not None and declared > max_bytes:
        if declared - max_bytes <= DRAIN_BYTES:
            await _drain(stream, DRAIN_BYTES)
        raise too_large(max_bytes)
    if share is not None and declared is not None and declared > share.room():
        await _drain(stream, min(declared, DRAIN_BYTES))
        share.take(declared)  # raises the 429
    received = 0
    async for chunk in stream:
        received += len(chunk)
        if received > max_bytes:
            await _drain(stream, DRAIN_BYTES)
            raise too_large(max_bytes)
        if share is not None:
            try:
                share.take(len(chunk))
            except APIError:
                await _drain(stream, DRAIN_BYTES)
                raise
        yield chunk


def _safe_suffix(filename: str) -> str:
    """The upload's extension, kept on the temporary copy when it is a media one (a hint
    only: ffprobe reads the content)."""
    return Path(filename).suffix.lower() if is_media(filename) else ".bin"


def upload_name(filename: str | None) -> str:
    """An uploaded file's own name, as sent (its last path component; "upload" when it has
    none): what its output stem comes from, so that it is named as `sanyu transcribe` names a
    file of that name (`sanyu.output.naming.file_stem` makes it safe)."""
    return (filename or "").replace("\\", "/").rsplit("/", 1)[-1] or "upload"


def safe_label(filename: str | None) -> str:
    """An uploaded file's name fit for messages, transcripts and output names: no folders,
    no control characters."""
    name = _UNSAFE_LABEL.sub("_", upload_name(filename)).strip(" .") or "upload"
    return name[:120]


class _Parser:
    """Callbacks for python-multipart: fields to memory, the one file part to disk."""

    def __init__(self, directory: Path, charset: str, file_field: str):
        self.directory = directory
        self.charset = charset
        self.file_field = file_field
        self.form = Form()
        self._header_name = b""
        self._header_value = b""
        self._headers: dict[bytes, bytes] = {}
        self._name: str | None = None
        self._data = bytearray()
        self._handle = None
        self._count = 0
        self.ended = False

    def on_part_begin(self) -> None:
        self._headers, self._name, self._data, self._handle = {}, None, bytearray(), None
        self._count += 1
        if self._count > MAX_FIELDS:
            raise bad_request(f"too many form fields (at most {MAX_FIELDS})", code="invalid_request")

    def on_header_field(self, data: bytes, start: int, end: int) -> None:
        self._header_name += data[start:end]

    def on_header_value(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]

    def on_header_end(self) -> None:
        self._headers[self._header_name.lower()] = self._header_value
        self._header_name, self._header_value = b"", b""

    def on_headers_finished(self) -> None:
        _, options = parse_options_header(self._headers.get(b"content-disposition", b""))
        if b"name" not in options:
            raise bad_request('a multipart part has no Content-Disposition "name"', code="invalid_request")
        self._name = options[b"name"].decode(self.charset, "replace")
        if b"filename" not in options:
            return
        if self._name != self.file_field:
            raise bad_request(
                f"unexpected file field {self._name!r}: send the audio as {self.file_field!r}",
                param=self._name,
            )
        if self.form.file is not None:
            raise bad_request("send one file per request", param=self.file_field)
        filename = options[b"filename"].decode(self.charset, "replace")
        content_type = self._headers.get(b"content-type", b"application/octet-stream").decode(
            "latin-1"
        )
        path = self.directory / f"upload{_safe_suffix(filename)}"
        self._handle = open(path, "wb")  # noqa: SIM115 - closed in on_part_end or close()
        self.form.file = UploadedFile(path, filename, content_type.strip())

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        if self._handle is not None:
            self._handle.write(data[start:end])
            self.form.file.size += end - start
            return
        if len(self._data) + (end - start) > MAX_FIELD_BYTES:
            raise bad_request(
                f"form field {self._name!r} is too long (at most {MAX_FIELD_BYTES // 1024} KiB)",
                param=self._name,
            )
        self._data += data[start:end]

    def on_part_end(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None
            return
        value = bytes(self._data).decode(self.charset, "replace")
        self.form.fields.setdefault(self._name, []).append(value)

    def on_end(self) -> None:
        self.ended = True

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None


async def read_form(
    request: Request, directory: Path, max_bytes: int, share: SpoolShare | None = None,
    file_field: str = "file",
) -> Form:
    """Parse a ``multipart/form-data`` body, the file part into ``directory`` (counted against
    ``share`` of the upload space)."""
    content_type, params = parse_options_header(request.headers.get("content-type", ""))
    if content_type != b"multipart/form-data":
        raise APIError(
            415,
            "Content-Type must be multipart/form-data (send the audio as the 'file' field)",
            code="unsupported_content_type",
        )
    boundary = params.get(b"boundary")
    if not boundary:
        raise bad_request("multipart/form-data without a boundary", code="invalid_request")
    charset = params.get(b"charset", b"utf-8").decode("latin-1")
    parser_state = _Parser(directory, charset if charset.lower() in ("utf-8", "utf8") else "utf-8", file_field)
    callbacks = {
        name: getattr(parser_state, name)
        for name in (
            "on_part_begin", "on_part_data", "on_part_end", "on_header_field",
            "on_header_value", "on_header_end", "on_headers_finished", "on_end",
        )
    }
    parser = MultipartParser(boundary, callbacks)
    stream = limited_stream(request, max_bytes, share)
    try:
        async for chunk in stream:
            try:
                parser.write(chunk)
            except APIError:
                await _drain(stream, DRAIN_BYTES)
                raise
            except Exception as exc:
                raise bad_request(f"malformed multipart body: {exc}", code="invalid_request") from None
        parser.finalize()
    finally:
        parser_state.close()
        await stream.aclose()
    if not parser_state.ended:
        raise bad_request("incomplete multipart body (no closing boundary)", code="invalid_request")
    return parser_state.form


# ---- media checks -----------------------------------------------------------------------


def check_content_type(content_type: str | None, filename: str | None = None) -> None:
    """415 for declared types that are clearly not audio or video (text, images, documents...)."""
    kind = (content_type or "").split(";")[0].strip()
    if kind and _NOT_MEDIA.match(kind):
        name = f" ({filename})" if filename else ""
        raise unsupported_media(
            f"unsupported media type {kind!r}{name}: send an audio or video file "
            "(wav, flac, mp3, m4a, ogg, opus, webm, mp4...)"
        )


def _looks_like_text(head: bytes) -> bool:
    """Audio and video containers are binary (NUL bytes or non-UTF-8 in their first bytes);
    playlists and scripts that ffmpeg follows (HLS, DASH, ffconcat, SDP) are text."""
    if b"\0" in head:
        return False
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as exc:
        return exc.start >= len(head) - 3  # only a character cut at the end of the sample
    return True


def open_upload(path: Path, label: str) -> tuple[MediaFile, MediaInfo]:
    """The uploaded file opened (once) and checked by `check_media`; the caller closes the
    MediaFile."""
    try:
        media = MediaFile.open(path, follow_symlinks=False, name=label)
    except AudioError as exc:
        raise audio_error(exc) from None
    try:
        return media, check_media(media)
    except BaseException:
        media.close()
        raise


def check_media(media: MediaFile) -> MediaInfo:
    """Probe an open file: 415 for text (playlists and scripts included) and other formats
    that are not plain audio or video, 400 for the rest of what cannot be decoded."""
    if _looks_like_text(os.pread(media.fd, 4096, 0)):
        raise unsupported_media(f"{media.name}: unsupported media: a text file, not audio or video")
    try:
        return probe(media)
    except AudioError as exc:
        raise audio_error(exc) from None


def audio_error(exc: AudioError, too_long_hint: str = "") -> APIError:
    """The HTTP error for a file the decoder refused, naming it and the reason."""
    reason = exc.reason
    if reason.startswith("empty file"):
        return bad_request(f"{exc.path}: {reason}", code="empty_file", param="file")
    if "not a plain audio or video format" in reason:
        return unsupported_media(f"{exc.path}: {reason}")
    hint = too_long_hint if reason.startswith("too long") else ""
    return bad_request(f"{exc.path}: {reason}{hint}", code="invalid_audio", param="file")
