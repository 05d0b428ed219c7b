"""What every entry point needs to know about a location: is it a URL, how to show it, is it media.

One home for these small tests, so the CLI, the batch job, the HTTP jobs, the storage layout and
the output names agree on them.
"""

from __future__ import annotations

import os
import re

# What a folder of recordings is searched for, and the extensions an upload's temporary copy may
# keep (a hint only: ffprobe reads the content): audio and video containers.
MEDIA_EXTENSIONS = frozenset({
    ".wav", ".flac", ".mp3", ".m4a", ".aac", ".ogg", ".oga", ".opus", ".wma", ".webm", ".mp4",
    ".mpeg", ".mpga", ".mkv", ".mov", ".avi", ".amr", ".3gp", ".caf", ".aif", ".aiff",
})

_URL = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]+)://(.*)$", re.DOTALL)  # 2+ letters: not C:\


def split_url(location: str) -> tuple[str, str] | None:
    """(scheme in lower case, the rest) of a URL such as ``s3://bucket/key``; None for a path.

    ``file://`` URLs count as URLs here; see `is_url` for "not on the local disk"."""
    match = _URL.match(location or "")
    return (match.group(1).lower(), match.group(2)) if match else None


def is_url(location: str) -> bool:
    """True for a remote (fsspec) location such as ``s3://…``; False for a local path or a
    ``file://`` URL."""
    url = split_url(location)
    return url is not None and url[0] != "file"


def local_path(location: str) -> str:
    """A local path without its ``file://`` prefix, if it had one."""
    url = split_url(location)
    return url[1] if url is not None and url[0] == "file" else location


def display_path(path: str | bytes | os.PathLike) -> str:
    """``path`` as printable text: bytes a file name holds that are not UTF-8 become ``\\xNN``."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


def is_media(name: str) -> bool:
    """Whether a file name has an audio or video extension (what folders are searched for)."""
    return os.path.splitext(name)[1].lower() in MEDIA_EXTENSIONS


def base_name(location: str) -> str:
    """The last component of a path or of a URL's path (no query or fragment), whichever
    separator the path uses."""
    url = split_url(location)
    path = url[1].split("?", 1)[0].split("#", 1)[0] if url else location
    return path.replace("\\", "/").rstrip("/").rsplit("/", 1)[-1]
