"""A place files are written to and read from: a local folder or an fsspec URL (``s3://bucket/x``).

Every write is atomic: a local file is written to a temporary file beside it and renamed over
the target; an object store put is whole or absent; another filesystem gets a temporary object
moved over the target. A process killed at any point therefore leaves each file either old or
new, never half-written. The transcript writers and the results layout (`sanyu.storage`) both
write through this.
"""

from __future__ import annotations

import json
import os
import posixpath
import tempfile
import threading
import uuid
from typing import Any

import fsspec
from fsspec.implementations.local import LocalFileSystem

# Object stores write an object whole or not at all, and have no directories to create.
_OBJECT_STORE_PROTOCOLS = {"s3", "s3a", "gs", "gcs", "az", "abfs", "abfss", "adl", "oss"}
_UMASK_LOCK = threading.Lock()


class Location:
    """Files under a root folder or URL prefix, addressed by ``/``-separated relative names."""

    def __init__(self, uri: str | os.PathLike, storage_options: dict | None = None):
        self.storage_options = dict(storage_options or {})
        uri = os.fspath(uri)
        self.fs, root = fsspec.core.url_to_fs(uri, **self.storage_options)
        self.is_local = isinstance(self.fs, LocalFileSystem)
        protocols = {self.fs.protocol} if isinstance(self.fs.protocol, str) else set(self.fs.protocol)
        self.is_object_store = bool(protocols & _OBJECT_STORE_PROTOCOLS)
        if self.is_local:
            self.root = os.path.abspath(root)
            os.makedirs(self.root, exist_ok=True)
            self.uri = self.root
        else:
            self.root = root.rstrip("/")
            self.uri = self.fs.unstrip_protocol(self.root)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.uri!r})"

    def path(self, *parts: str) -> str:
        """The filesystem path of ``parts`` under the root (``/``-joined; local: native)."""
        if self.is_local:
            return os.path.join(self.root, *parts)
        return posixpath.join(self.root, *parts) if self.root else posixpath.join(*parts)

    def url(self, *parts: str) -> str:
        """What to show a user for ``parts``: a local absolute path or a URL with protocol."""
        path = self.path(*parts)
        return path if self.is_local else self.fs.unstrip_protocol(path)

    def put(self, relative: str, data: bytes) -> str:
        """Write ``data`` to ``relative`` (``/``-separated) atomically; return its URL."""
        path = self.path(*relative.split("/"))
        if self.is_local:
            _put_local(path, data)
        elif self.is_object_store:
            self.fs.pipe_file(path, data)
        else:  # another filesystem: write beside, then move over the target
            directory = posixpath.dirname(path)
            self.fs.makedirs(directory, exist_ok=True)
            tmp = posixpath.join(directory, f".{uuid.uuid4().hex}.tmp")
            self.fs.pipe_file(tmp, data)
            self.fs.mv(tmp, path)
        return self.url(*relative.split("/"))

    def get(self, relative: str) -> bytes | None:
        """The bytes of ``relative``, or None when it does not exist."""
        path = self.path(*relative.split("/"))
        try:
            if self.is_local:
                with open(path, "rb") as handle:
                    return handle.read()
            return self.fs.cat_file(path)
        except FileNotFoundError:
            return None

    def exists(self, relative: str) -> bool:
        path = self.path(*relative.split("/"))
        return os.path.exists(path) if self.is_local else self.fs.exists(path)

    def delete(self, relative: str) -> None:
        path = self.path(*relative.split("/"))
        try:
            if self.is_local:
                os.unlink(path)
            else:
                self.fs.rm_file(path)
        except FileNotFoundError:
            pass

    def listdir(self, relative: str) -> list[str]:
        """Names (not paths) of the files directly in folder ``relative``, sorted."""
        path = self.path(*relative.split("/"))
        try:
            if self.is_local:
                return sorted(os.listdir(path))
            self.fs.invalidate_cache(path)
            return sorted(posixpath.basename(p.rstrip("/")) for p in self.fs.ls(path, detail=False))
        except FileNotFoundError:
            return []

    def remove_folder(self, relative: str) -> None:
        """Remove the (empty) local folder ``relative``; object stores have no folders."""
        if self.is_local:
            try:
                os.rmdir(self.path(*relative.split("/")))
            except OSError:
                pass

    def get_json(self, relative: str) -> dict | None:
        """The JSON object stored at ``relative``; None when absent or not an object."""
        data = self.get(relative)
        if data is None:
            return None
        try:
            value = json.loads(data)
        except ValueError:
            return None
        return value if isinstance(value, dict) else None

    def put_json(self, relative: str, value: Any) -> str:
        return self.put(relative, (json.dumps(value, ensure_ascii=False, indent=1) + "\n").encode())

    def cleanup_temp(self) -> int:
        """Remove temporary files a killed writer left behind (local outputs only); call it
        when no other job writes to this location. Returns how many were removed."""
        if not self.is_local:
            return 0
        removed = 0
        for dirpath, _dirnames, filenames in os.walk(self.root):
            for name in filenames:
                if name.startswith(".") and name.endswith(".tmp"):
                    try:
                        os.unlink(os.path.join(dirpath, name))
                        removed += 1
                    except OSError:
                        pass
        return removed


def _put_local(path: str, data: bytes) -> None:
    directory, name = os.path.split(path)
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{name[:100]}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        try:  # a file written again keeps its permissions
            mode = os.stat(path).st_mode & 0o777
        except FileNotFoundError:  # a new one gets what open() would give it: the umask holds
            mode = 0o666 & ~current_umask()
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def current_umask() -> int:
    """This process's umask: read from /proc (Linux), else set and restored under a lock
    (``os.umask`` is the only way to read it, and changes it for every thread meanwhile)."""
    try:
        with open("/proc/self/status", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    with _UMASK_LOCK:
        mask = os.umask(0o022)
        os.umask(mask)
    return mask
