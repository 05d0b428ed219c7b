"""The processes a command starts, and stopping every one of them when it ends.

A local Ray is a tree of processes under the command (GCS server, raylet, dashboard agent, the
workers the raylet forks: Serve's controller, proxy and replicas, Ray Data's actors). When a
signal reaches the whole process group (systemd's default stop, Ctrl-C in a terminal), some of
them die first and their children are orphaned: reparented to init, they would outlive the
command. `adopt_orphans` makes this process a child subreaper (Linux), so orphans of its tree
are reparented to it instead; `stop_descendants` then ends whatever of the tree is left, by
process id, after Ray's own shutdown.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import logging
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

log = logging.getLogger(__name__)

_PR_SET_CHILD_SUBREAPER, _PR_GET_CHILD_SUBREAPER = 36, 37
_STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
_stop_requested = False


def _libc():
    return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)


def adopt_orphans(adopt: bool = True) -> bool | None:
    """Make orphans of this process's tree its children (Linux's child subreaper), or stop
    that with ``adopt=False``. Returns whether it held before (None where it is unknown)."""
    try:
        libc = _libc()
        before = ctypes.c_int(0)
        known = libc.prctl(_PR_GET_CHILD_SUBREAPER, ctypes.byref(before), 0, 0, 0) == 0
        libc.prctl(_PR_SET_CHILD_SUBREAPER, int(adopt), 0, 0, 0)
        return bool(before.value) if known else None
    except (OSError, AttributeError):
        return None


def _parents() -> dict[int, int]:
    parents = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[0] != "Z":  # a zombie is gone already; reaping it is all that is left
            parents[int(entry.name)] = int(fields[1])
    return parents


def descendants(pid: int | None = None) -> set[int]:
    """The live processes below ``pid`` (default: this one)."""
    pid = os.getpid() if pid is None else pid
    parents = _parents()
    found: set[int] = set()
    frontier = {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def command_line(pid: int) -> str:
    """A process's command line, its arguments joined by spaces ("" once it is gone)."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return ""
    return raw.replace(b"\0", b" ").decode("utf-8", "replace").strip()


def _reap() -> None:
    with contextlib.suppress(ChildProcessError, OSError):
        while os.waitpid(-1, os.WNOHANG)[0]:
            pass


def stop_descendants(grace_s: float = 5.0, spare: set[int] = frozenset()) -> int:
    """SIGTERM every live process below this one but ``spare``, then SIGKILL what is left
    after ``grace_s``; reap them. Returns how many there were."""
    left = descendants() - spare
    count = len(left)
    if not left:
        return 0
    log.info("stopping %d processes left behind", count)
    for sig, wait in ((signal.SIGTERM, grace_s), (signal.SIGKILL, 5.0)):
        for pid in left:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, sig)
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            _reap()
            left = descendants() - spare
            if not left:
                return count
            time.sleep(0.1)
    _reap()
    return count


def stop_requested() -> bool:
    """Whether a stop signal reached this command. A signal sent to the whole process group
    also kills Ray's workers, and the error that makes (an actor died) can reach the code first
    or replace the KeyboardInterrupt while a library cleans up; that error is the stop, not a
    failure of the inputs."""
    return _stop_requested


def _interrupt(signum, frame) -> None:
    # The first signal ends the command like Ctrl-C; later ones are ignored, so that the
    # cleanup it starts (bounded in time) runs to its end.
    global _stop_requested
    _stop_requested = True
    for sig in _STOP_SIGNALS:
        signal.signal(sig, signal.SIG_IGN)
    raise KeyboardInterrupt


@contextlib.contextmanager
def command_process(grace_s: float = 5.0) -> Iterator[None]:
    """For the main process of a command that starts Ray (``sanyu batch``, ``sanyu serve``):
    SIGTERM, SIGHUP and SIGINT end it like Ctrl-C (KeyboardInterrupt, so its ``finally``
    blocks shut Ray down), orphans of its tree are adopted, and whatever it started that is
    still running when it ends is stopped (processes already below this one when it began are
    left alone). Once a signal came, the command ends in KeyboardInterrupt whatever else its
    body raised or returned."""
    global _stop_requested
    _stop_requested = False
    spare = descendants()
    adopted = adopt_orphans()
    handlers = {sig: signal.signal(sig, _interrupt) for sig in _STOP_SIGNALS}
    try:
        try:
            yield
        except Exception as exc:
            if _stop_requested:
                raise KeyboardInterrupt from exc
            raise
        if _stop_requested:
            raise KeyboardInterrupt
    finally:
        for sig in handlers:
            signal.signal(sig, signal.SIG_IGN)
        try:
            stop_descendants(grace_s, spare)
        finally:
            if adopted is False:
                adopt_orphans(False)
            for sig, handler in handlers.items():
                signal.signal(sig, handler)
