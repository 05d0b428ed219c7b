"""An input opened once: a local regular file that ffprobe and ffmpeg read through its descriptor.

The name is looked at once, when the file is opened; the checks (regular file, not empty) run on
the open descriptor, and ffmpeg reads that same descriptor (passed to it as fd N) through a
private link ``<tmp>/sanyu-input-*/input.<ext>`` to ``/proc/self/fd/N``: the link keeps the
extension, which ffmpeg's format detection weighs, and nothing else of the name. So the name
cannot be swapped for a FIFO, a link or another file between the checks and the decode, and no
part of it reaches ffmpeg's command line, whatever bytes it holds (a leading ``-``, a ``:``,
bytes that are not UTF-8).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import re
import shutil
import stat
import tempfile
from collections.abc import Iterator

from sanyu.errors import AudioError
from sanyu.paths import display_path

# Linux names every open descriptor of a process here; elsewhere ffmpeg is given the path.
_PROC_FD = os.path.isdir("/proc/self/fd")
_SUFFIX = re.compile(r"\.[a-z0-9]{1,8}")


def _refuse(name: str, error: OSError) -> AudioError:
    if isinstance(error, FileNotFoundError | NotADirectoryError):
        return AudioError(name, "file not found")
    if isinstance(error, PermissionError):
        return AudioError(name, "permission denied")
    if error.errno == errno.ENXIO:  # a socket, or a FIFO opened for writing only
        return AudioError(name, "not a regular file")
    if error.errno == errno.ELOOP:
        return AudioError(name, "a symbolic link (not followed here)")
    return AudioError(name, f"cannot read: {error.strerror or error}")


class MediaFile:
    """A checked, open local regular file. ``MediaFile.open`` owns its descriptor (``close``
    or ``with`` releases it); ``MediaFile.from_fd`` borrows one the caller keeps open."""

    def __init__(self, fd: int, name: str, size: int, path: bytes | None, owned: bool):
        self.fd, self.name, self.size, self._path, self._owned = fd, name, size, path, owned
        suffix = os.path.splitext(name if path is None else os.fsdecode(path))[1].lower()
        self.suffix = suffix if _SUFFIX.fullmatch(suffix) else ""
        self._link: str | None = None

    @classmethod
    def open(cls, path: str | bytes | os.PathLike, *, follow_symlinks: bool = True,
             name: str | None = None) -> MediaFile:
        """Open ``path`` for reading; AudioError naming it (or ``name``, e.g. an upload's
        client-side file name) when it is missing, unreadable, not a regular file or empty.
        ``follow_symlinks=False`` refuses a link as the last part of the path."""
        name = display_path(path) if name is None else name
        try:
            # stat first so that a device or FIFO is refused without being opened at all
            before = os.stat(path, follow_symlinks=follow_symlinks)
        except (OSError, ValueError) as exc:
            raise _refuse(name, exc) if isinstance(exc, OSError) else AudioError(name, "invalid file name") from None
        if not stat.S_ISREG(before.st_mode):
            raise AudioError(name, "not a regular file")
        flags = os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK  # O_NONBLOCK: a FIFO swapped in never blocks open()
        if not follow_symlinks:
            flags |= os.O_NOFOLLOW
        try:
            fd = os.open(path, flags)
        except OSError as exc:
            raise _refuse(name, exc) from None
        try:
            fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) & ~os.O_NONBLOCK)
            media = cls._checked(fd, name, os.fsencode(os.path.abspath(path)), owned=True)
        except BaseException:
            os.close(fd)
            raise
        return media

    @classmethod
    def from_fd(cls, fd: int, name: str) -> MediaFile:
        """Use a descriptor the caller opened (e.g. relative to an input root, O_NOFOLLOW) and
        keeps open; ``name`` is what error messages say."""
        return cls._checked(fd, name, None, owned=False)

    @classmethod
    def _checked(cls, fd: int, name: str, path: bytes | None, owned: bool) -> MediaFile:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise AudioError(name, "not a regular file")
        if info.st_size == 0:
            raise AudioError(name, "empty file (0 bytes)")
        return cls(fd, name, info.st_size, path, owned)

    def url(self) -> str | bytes:
        """What ffmpeg is told to open (passing it this descriptor): a file URL of the link."""
        if not _PROC_FD:
            if self._path is None:
                raise AudioError(self.name, "cannot hand an open descriptor to ffmpeg on this system")
            return b"file:" + self._path
        if self._link is None:
            folder = tempfile.mkdtemp(prefix="sanyu-input-")
            self._link = os.path.join(folder, "input" + self.suffix)
            os.symlink(f"/proc/self/fd/{self.fd}", self._link)  # resolved in ffmpeg's process
        return "file:" + self._link

    def close(self) -> None:
        if self._link is not None:
            shutil.rmtree(os.path.dirname(self._link), ignore_errors=True)
            self._link = None
        if self._owned and self.fd >= 0:
            os.close(self.fd)
        self.fd = -1

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            self.close()

    def __enter__(self) -> MediaFile:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


# What the probe and decode functions accept: a path, or a file already opened and checked.
Source = str | bytes | os.PathLike | MediaFile


@contextlib.contextmanager
def opened(source: Source) -> Iterator[MediaFile]:
    """``source`` as a MediaFile: opened here and closed on the way out, or the caller's own."""
    if isinstance(source, MediaFile):
        yield source
        return
    with MediaFile.open(source) as media:
        yield media
