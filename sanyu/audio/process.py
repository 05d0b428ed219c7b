"""ffprobe and ffmpeg as child processes with a deadline, a bounded log, and a kill switch.

Every child is spawned directly (an argv list, no shell), reads nothing from stdin, and is
waited on with ``select`` so that a deadline holds even when it hangs without writing. It is
killed (SIGKILL) and reaped when its deadline passes, when the caller leaves early (an
exception, KeyboardInterrupt, a closed generator) or when another thread or a coroutine calls
``Cancel.cancel()``; ``run_cancellable`` ties that to asyncio cancellation.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import selectors
import signal
import subprocess
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import TypeVar

from sanyu.errors import AudioError, DecodeCancelled, SanyuError

T = TypeVar("T")
_LINE_BYTES = 4096  # a longer stderr line is cut: ffmpeg's real messages are short
# "[flac @ 0x55d0c1a8] " before a message, and the URL ffmpeg was given (meaningless to a user)
_PREFIX = re.compile(r"^\[[^\]]* @ 0x[0-9a-f]+\] |^file:[^:]*: ?")


class Cancel:
    """A kill switch for the ffprobe/ffmpeg children of one decode, safe to set from any thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._set = False
        self._processes: set[subprocess.Popen] = set()

    @property
    def cancelled(self) -> bool:
        return self._set

    def cancel(self) -> None:
        with self._lock:
            self._set = True
            processes = list(self._processes)
        for process in processes:
            with contextlib.suppress(OSError):
                process.kill()  # the owning thread reaps it (its pipes close, its wait returns)

    def attach(self, process: subprocess.Popen) -> None:
        with self._lock:
            self._processes.add(process)
            late = self._set
        if late:
            with contextlib.suppress(OSError):
                process.kill()

    def detach(self, process: subprocess.Popen) -> None:
        with self._lock:
            self._processes.discard(process)


class Log:
    """What a child wrote to stderr, bounded: its last lines, and the first line matching each
    watched pattern (e.g. signs of damage), however long the output."""

    def __init__(self, watch: dict[str, re.Pattern]):
        self.watch = watch
        self.first: dict[str, str] = {}
        self.last: deque[str] = deque(maxlen=8)
        self._partial = b""

    def feed(self, data: bytes) -> None:
        *lines, self._partial = (self._partial + data).split(b"\n")
        self._partial = self._partial[-_LINE_BYTES:]
        for raw in lines:
            self._line(raw)

    def close(self) -> None:
        if self._partial:
            self._line(self._partial)
            self._partial = b""

    def _line(self, raw: bytes) -> None:
        line = _PREFIX.sub("", raw[:_LINE_BYTES].decode("utf-8", "replace").strip())
        if not line:
            return
        self.last.append(line)
        for key, pattern in self.watch.items():
            if key not in self.first and pattern.search(line):
                self.first[key] = line

    def reason(self, default: str) -> str:
        return self.last[-1] if self.last else default


class Child:
    """One running ffprobe/ffmpeg: ``readinto`` its stdout, then ``wait``; ``close`` kills it
    if it has not finished. All waiting counts against ``timeout`` seconds; ``extend`` gives
    back time the caller spent elsewhere (a consumer working on a streamed block). ``budget``
    is the whole allowance this child's ``timeout`` is what is left of, for messages."""

    def __init__(self, argv: list, *, name: str, timeout: float, cancel: Cancel | None,
                 pass_fds: tuple[int, ...] = (), watch: dict[str, re.Pattern] | None = None,
                 budget: float | None = None):
        self.name, self.cancel = name, cancel
        self.budget = timeout if budget is None else budget  # what a timeout message says
        self.program = os.path.basename(str(argv[0]))
        if cancel is not None and cancel.cancelled:
            raise DecodeCancelled(name, "cancelled")
        self.deadline = time.monotonic() + timeout
        self.log = Log(watch or {})
        self.returncode: int | None = None
        try:
            self.process = _spawn(argv, pass_fds)
        except FileNotFoundError:  # not the input's fault: say what is missing
            raise SanyuError(f"{self.program} is not installed (make setup installs ffmpeg)") from None
        try:
            if cancel is not None:
                cancel.attach(self.process)
            self._selector = selectors.DefaultSelector()
            self._selector.register(self.process.stdout, selectors.EVENT_READ)
            self._selector.register(self.process.stderr, selectors.EVENT_READ)
        except BaseException:  # interrupted before the caller holds this Child: kill it here
            self.process.kill()
            self.process.wait()
            if cancel is not None:
                cancel.detach(self.process)
            raise

    @property
    def pid(self) -> int:
        return self.process.pid

    def extend(self, seconds: float) -> None:
        self.deadline += seconds

    def readinto(self, view: memoryview) -> int:
        """Bytes of stdout read into ``view``; 0 at its end."""
        if self._wait_for(self.process.stdout):
            return self.process.stdout.readinto(view) or 0
        return 0

    def read_all(self, limit: int) -> bytes:
        """All of stdout (for ffprobe's small JSON); AudioError past ``limit`` bytes."""
        data = bytearray()
        chunk = memoryview(bytearray(65536))
        while got := self.readinto(chunk):
            data += chunk[:got]
            if len(data) > limit:
                self.kill()
                raise AudioError(self.name, "ffprobe wrote more than expected")
        return bytes(data)

    def wait(self) -> int:
        """Wait for the child to exit (reading the rest of its stderr) and return its code."""
        with contextlib.suppress(KeyError):
            self._selector.unregister(self.process.stdout)
        self._wait_for(None)
        try:
            self.returncode = self.process.wait(timeout=max(0.0, self.deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            self._timed_out()
        self._check_cancelled()
        self._release()
        return self.returncode

    def kill(self) -> None:
        if self.process.poll() is None:
            with contextlib.suppress(OSError):
                self.process.kill()
        self.returncode = self.process.wait()
        self._release()

    def close(self) -> None:
        self.kill()
        self.process.stdout.close()
        self.process.stderr.close()

    def __enter__(self) -> Child:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _release(self) -> None:
        if self.cancel is not None:
            self.cancel.detach(self.process)
        with contextlib.suppress(Exception):
            self._selector.close()
        self.log.close()

    def _check_cancelled(self) -> None:
        if self.cancel is not None and self.cancel.cancelled:
            self.kill()
            raise DecodeCancelled(self.name, "cancelled")

    def _timed_out(self) -> None:
        self.kill()
        raise AudioError(self.name, f"timed out: {self.program} did not finish within {self.budget:.3g} s")

    def _wait_for(self, stream) -> bool:
        """Until ``stream`` is readable (True), or, with ``stream`` None, until stderr ends;
        stderr is read as it comes so the child never blocks writing it."""
        while True:
            self._check_cancelled()
            if not self._selector.get_map():
                return False
            remaining = self.deadline - time.monotonic()
            if remaining <= 0:
                self._timed_out()
            for key, _ in self._selector.select(remaining):
                if key.fileobj is self.process.stderr:
                    data = os.read(key.fd, 65536)
                    if data:
                        self.log.feed(data)
                    else:
                        self._selector.unregister(key.fileobj)
                elif key.fileobj is stream:
                    return True


def _spawn(argv: list, pass_fds: tuple[int, ...]) -> subprocess.Popen:
    """Popen that kills its child when interrupted (KeyboardInterrupt) after the fork but
    before Popen returns, which would otherwise leave it running with no handle. (When the
    interrupt comes out of the fork call itself, CPython never learns the pid; Popen then
    closes the pipes, and ffmpeg ends at its first write.)"""
    process = subprocess.Popen.__new__(subprocess.Popen)
    try:
        process.__init__(
            argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            pass_fds=pass_fds, bufsize=0,
        )
    except BaseException:
        if getattr(process, "pid", None) and getattr(process, "returncode", 0) is None:
            with contextlib.suppress(OSError):  # a child that failed to start was reaped already
                os.kill(process.pid, signal.SIGKILL)
                os.waitpid(process.pid, 0)
        raise
    return process


async def run_cancellable(function: Callable[..., T], /, *args, **kwargs) -> T:
    """``function(*args, cancel=..., **kwargs)`` in a thread of its own; when the awaiting task
    is cancelled (client gone, deadline) its ffmpeg/ffprobe is killed before this returns."""
    cancel = Cancel()
    loop = asyncio.get_running_loop()
    done: asyncio.Future = loop.create_future()

    def settle(result, error) -> None:
        if done.done():
            return
        if error is not None:
            done.set_exception(error)
        else:
            done.set_result(result)

    def work() -> None:
        try:
            result, error = function(*args, cancel=cancel, **kwargs), None
        except BaseException as exc:  # noqa: BLE001 - handed to the awaiting task
            result, error = None, exc
        with contextlib.suppress(RuntimeError):  # the loop is already closed: nobody waits
            loop.call_soon_threadsafe(settle, result, error)

    threading.Thread(target=work, name="sanyu-decode", daemon=True).start()
    try:
        return await asyncio.shield(done)
    finally:
        if not done.done():
            cancel.cancel()
            with contextlib.suppress(BaseException):
                await asyncio.wait({done}, timeout=10.0)  # the killed child is reaped in the thread
        if done.done() and not done.cancelled():
            done.exception()  # seen, so asyncio does not log the DecodeCancelled as unhandled
