"""What a job transcribes: an upload, a local file under an input root, or a storage object.

A ``uri`` must lie under one of the server's ``input_roots``; anything else is refused with 403.
A local file is opened once, when the job is submitted (`open_local`): the path is resolved
(symlinks included) and checked against the roots, the last component is opened with
``O_NOFOLLOW`` (a link swapped in is refused), the descriptor is checked to be a regular,
non-empty file whose real path (``/proc/self/fd``) still lies under the root, and the job then
hashes and decodes that same descriptor. Renaming, replacing or relinking the name afterwards
changes nothing, and a FIFO or device is refused without being opened. A storage object is
copied into the job's private folder when the job runs (`fetch_remote`), so ffmpeg never sees a
URL.
"""

from __future__ import annotations

import os
import posixpath
import re
from dataclasses import dataclass
from pathlib import Path

import fsspec

from sanyu.audio import MediaFile
from sanyu.errors import AudioError
from sanyu.output.naming import output_stem
from sanyu.paths import is_url, local_path, split_url
from sanyu.serve.errors import APIError, bad_request
from sanyu.serve.upload import audio_error

COPY_CHUNK = 4 * 1024 * 1024
MAX_REMOTE_BYTES = 8 * 1024**3


def forbidden(message: str) -> APIError:
    return APIError(403, message, code="uri_not_allowed", param="uri")


@dataclass(frozen=True)
class JobInput:
    kind: str  # upload | local | remote
    location: str  # a path (upload, local) or a URL (remote); never shown to clients
    label: str  # the name reported back and kept in the transcript
    stem: str  # output file stem, as `sanyu batch` names it (sanyu.output.naming)


def _under(child: str, root: str) -> bool:
    return child == root or child.startswith(root.rstrip("/") + "/")


def resolve_input(uri: str, roots: tuple[str, ...]) -> JobInput:
    """Check a job's ``uri`` against the allowed roots; 403 unless it lies under one."""
    uri = (uri or "").strip()
    if not uri:
        raise bad_request("uri is empty", param="uri")
    if any(ord(c) < 32 for c in uri):
        raise bad_request("uri holds control characters", param="uri")
    if any(0xD800 <= ord(c) <= 0xDFFF for c in uri):
        # a lone surrogate: no UTF-8 text names it (nor a file whose name is not UTF-8), and it
        # could be neither stored in the job's record nor sent back in a message
        raise bad_request("uri is not valid Unicode text (a lone surrogate)", param="uri")
    if not roots:
        raise forbidden("this server accepts no storage URIs or paths: upload the file instead")
    uri = local_path(uri)
    if is_url(uri):
        scheme, rest = split_url(uri)
        if ".." in rest.split("/") or "?" in rest or "#" in rest:
            raise forbidden(f"{uri!r} is not under an allowed input root")
        normalized = f"{scheme}://{posixpath.normpath(rest)}"
        for root in roots:
            if is_url(root):
                r_scheme, r_rest = split_url(root)
                root_url = f"{r_scheme}://{posixpath.normpath(r_rest)}"
                if _under(normalized, root_url):
                    return JobInput("remote", normalized, posixpath.basename(normalized),
                                    output_stem(normalized, root_url))
        raise forbidden(f"{uri!r} is not under an allowed input root")
    if not os.path.isabs(uri):
        raise bad_request("a local path must be absolute", param="uri")
    real = os.path.realpath(uri)
    root = _local_root(real, roots)
    if root is None:
        raise forbidden(f"{uri!r} is not under an allowed input root")
    return JobInput("local", real, os.path.basename(real), output_stem(real, root))


def _local_root(real: str, roots: tuple[str, ...]) -> str | None:
    for root in roots:
        if is_url(root):
            continue
        root_real = os.path.realpath(local_path(root))
        if os.path.commonpath([real, root_real]) == root_real:
            return root_real
    return None


def open_local(job_input: JobInput, roots: tuple[str, ...]) -> MediaFile:
    """Open a local job input once (see the module doc); 403 when what was opened is not
    under a root, 400 when it is not a readable regular file."""
    try:
        media = MediaFile.open(job_input.location, follow_symlinks=False, name=job_input.label)
    except AudioError as exc:
        raise audio_error(exc) from None
    try:
        opened = os.readlink(f"/proc/self/fd/{media.fd}")
    except OSError:  # not Linux: the checks above (O_NOFOLLOW, regular file) still hold
        opened = job_input.location
    if _local_root(opened, roots) is None:
        media.close()
        raise forbidden(f"{job_input.label!r} is not under an allowed input root")
    return media


def fetch_remote(url: str, directory: Path, max_bytes: int, storage_options: dict | None = None) -> Path:
    """Copy a storage object into ``directory`` (never handing the URL to ffmpeg)."""
    suffix = Path(posixpath.basename(url)).suffix.lower()
    if not re.fullmatch(r"\.[a-z0-9]{1,5}", suffix):
        suffix = ".bin"
    target = directory / f"input{suffix}"
    copied = 0
    try:
        with fsspec.open(url, "rb", **(storage_options or {})) as source, open(target, "wb") as sink:
            while chunk := source.read(COPY_CHUNK):
                copied += len(chunk)
                if copied > max_bytes:
                    raise bad_request(f"{url}: larger than the {max_bytes / 2**20:g} MB this "
                                      "server can hold now", param="uri")
                sink.write(chunk)
    except FileNotFoundError:
        raise bad_request(f"{url}: not found", code="invalid_audio", param="uri") from None
    except APIError:
        raise
    except Exception as exc:
        raise bad_request(f"{url}: cannot be read ({type(exc).__name__})", param="uri") from None
    return target
