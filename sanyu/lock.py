"""One batch run at a time per output location.

A run clears what a killed run left in its output (temporary files, parts of long recordings)
and writes its dataset-level files at the end; two runs on one output at once would delete each
other's work. `OutputLock` makes a second run refuse, saying who holds the output:

* a local folder: an exclusive ``flock`` on ``_sanyu/lock``, held by the open file, so the kernel
  releases it when the run ends however it ends (``kill -9`` included);
* an fsspec URL (``s3://…``): a lease, ``_sanyu/lock.json``, that the holder renews every
  ``RENEW_S`` seconds and removes at the end; one not renewed for ``STALE_S`` seconds (its run
  was killed) is taken over. Object stores have no atomic create here, so two runs started
  within the same second could both pass; the lease is re-read after writing to narrow that.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import socket
import threading
import time

from sanyu.errors import SanyuError
from sanyu.location import Location

LOCK_FILE = "_sanyu/lock"
LEASE_FILE = "_sanyu/lock.json"
RENEW_S = 30.0
STALE_S = 120.0


class OutputBusy(SanyuError):
    """Another run holds the output location."""


class OutputLock:
    """Held from ``acquire`` (or entering a ``with`` block) to ``release``; see the module doc."""

    def __init__(self, location: Location, run_id: str):
        self.location, self.run_id = location, run_id
        self._fd: int | None = None
        self._stop = threading.Event()
        self._renewer: threading.Thread | None = None
        self._started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())

    def _holder(self) -> dict:
        return {"run_id": self.run_id, "pid": os.getpid(), "host": socket.gethostname(),
                "started": self._started, "renewed": time.time()}

    def _busy(self, holder: dict | None) -> OutputBusy:
        who = ""
        if holder:
            who = (f" (run {holder.get('run_id', '?')}, pid {holder.get('pid', '?')} on "
                   f"{holder.get('host', '?')}, started {holder.get('started', '?')})")
        return OutputBusy(
            f"{self.location.uri}: another sanyu batch is writing to this output{who}; "
            "wait for it to finish, or write to another -o"
        )

    def acquire(self) -> OutputLock:
        if self.location.is_local:
            self._acquire_local()
        else:
            self._acquire_lease()
        return self

    def _acquire_local(self) -> None:
        path = self.location.path(*LOCK_FILE.split("/"))
        os.makedirs(os.path.dirname(path), exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            holder = None
            with contextlib.suppress(OSError, ValueError):
                holder = json.loads(os.pread(fd, 4096, 0) or b"null")
            os.close(fd)
            if exc.errno in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                raise self._busy(holder) from None
            raise
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(self._holder()).encode(), 0)
        self._fd = fd

    def _acquire_lease(self) -> None:
        current = self.location.get_json(LEASE_FILE)
        if current and current.get("run_id") != self.run_id and time.time() - float(current.get("renewed", 0)) < STALE_S:
            raise self._busy(current)
        self.location.put_json(LEASE_FILE, self._holder())
        time.sleep(1.0)  # a run that wrote its lease at the same moment: the last write wins
        current = self.location.get_json(LEASE_FILE)
        if not current or current.get("run_id") != self.run_id:
            raise self._busy(current)
        self._renewer = threading.Thread(target=self._renew, name="sanyu-output-lease", daemon=True)
        self._renewer.start()

    def _renew(self) -> None:
        while not self._stop.wait(RENEW_S):
            with contextlib.suppress(Exception):  # a missed renewal is retried next time
                self.location.put_json(LEASE_FILE, self._holder())

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # the lock goes with the descriptor; the file stays (harmless)
            self._fd = None
        if self._renewer is not None:
            self._stop.set()
            self._renewer.join(timeout=5)
            self._renewer = None
            with contextlib.suppress(Exception):
                current = self.location.get_json(LEASE_FILE)
                if current and current.get("run_id") == self.run_id:
                    self.location.delete(LEASE_FILE)

    def __enter__(self) -> OutputLock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()
