"""Runs one command the way a shell or systemd would, and watches every process it starts.

    python tests/process_watch.py [--log FILE] -- sanyu serve --port 8123 ...

The command starts in a session (and process group) of its own, with the environment this
script was given (its output goes to FILE). This script is a child subreaper (Linux), so a process of the command's tree
whose parent dies is reparented here instead of to init: nothing the command started can escape
the watch. It answers one JSON line per command read from stdin:

    processes            [[pid, "cmdline"], ...] of every live process below this one
    listening            ["ADDRESS:PORT", ...] every TCP socket they listen on (/proc/net/tcp*)
    signal SIG main      send SIG (TERM, INT, KILL...) to the command's main process
    signal SIG group     send SIG to the command's process group
    wait SECONDS         wait until no process is left below this one (reaping them), at most
                         SECONDS; answer {"left": [[pid, "cmdline"], ...], "seconds": elapsed,
                         "returncode": main's exit code, None while it runs}; what is left is
                         then killed
"""

from __future__ import annotations

import ipaddress
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from sanyu.processes import adopt_orphans, command_line, descendants


def _descendants() -> dict[int, str]:
    """Every live process below this one, with its command line."""
    return {pid: command_line(pid)[:200] for pid in descendants()}


def listening_addresses(pids) -> list[str]:
    """``ADDRESS:PORT`` of every TCP socket these processes listen on, from /proc/net/tcp*."""
    inodes = set()
    for pid in pids:
        try:
            for fd in os.listdir(f"/proc/{pid}/fd"):
                try:
                    target = os.readlink(f"/proc/{pid}/fd/{fd}")
                except OSError:
                    continue
                if target.startswith("socket:["):
                    inodes.add(target[8:-1])
        except OSError:
            continue
    found = []
    for table, v6 in (("/proc/net/tcp", False), ("/proc/net/tcp6", True)):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if fields[3] != "0A" or fields[9] not in inodes:  # 0A: LISTEN
                continue
            address, port = fields[1].split(":")
            raw = bytes.fromhex(address)
            if v6:  # four little-endian 32-bit words
                text = f"[{ipaddress.IPv6Address(b''.join(raw[i:i + 4][::-1] for i in range(0, 16, 4)))}]"
            else:
                text = str(ipaddress.IPv4Address(raw[::-1]))
            found.append(f"{text}:{int(port, 16)}")
    return sorted(set(found))


def is_loopback(address: str) -> bool:
    """Whether ``ADDRESS:PORT`` is on loopback (an IPv4-mapped IPv6 address counts as IPv4)."""
    ip = ipaddress.ip_address(address.rsplit(":", 1)[0].strip("[]"))
    return (getattr(ip, "ipv4_mapped", None) or ip).is_loopback


EXITS: dict[int, int] = {}  # exit codes of the children reaped here


def _reap() -> None:
    try:
        while True:
            pid, status = os.waitpid(-1, os.WNOHANG)
            if not pid:
                return
            EXITS[pid] = os.waitstatus_to_exitcode(status)
    except ChildProcessError:
        pass


def main() -> None:
    argv = sys.argv[sys.argv.index("--") + 1:]
    adopt_orphans()
    if not adopt_orphans():  # it says whether it held already
        print(json.dumps({"error": "cannot become a subreaper"}), flush=True)
        sys.exit(2)
    options = sys.argv[1:sys.argv.index("--")]
    log = open(options[options.index("--log") + 1] if "--log" in options else os.devnull, "wb")  # noqa: SIM115
    main_process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                    start_new_session=True)
    print(json.dumps({"pid": main_process.pid}), flush=True)
    for line in sys.stdin:
        words = line.split()
        if not words:
            continue
        if words[0] == "processes":
            answer = sorted(_descendants().items())
        elif words[0] == "listening":
            answer = listening_addresses(_descendants())
        elif words[0] == "signal":
            sig = getattr(signal, "SIG" + words[1])
            if words[2] == "group":
                os.killpg(main_process.pid, sig)
            else:
                main_process.send_signal(sig)
            answer = "sent"
        elif words[0] == "wait":
            started = time.monotonic()
            while True:
                _reap()
                left = _descendants()
                elapsed = time.monotonic() - started
                if not left or elapsed > float(words[1]):
                    break
                time.sleep(0.2)
            # The main process may have become a zombie (no longer "live") after the last reap.
            deadline = time.monotonic() + 2
            while not left and main_process.pid not in EXITS and time.monotonic() < deadline:
                _reap()
                time.sleep(0.05)
            answer = {"left": sorted(left.items()), "seconds": round(elapsed, 1),
                      "returncode": EXITS.get(main_process.pid)}
            for pid in left:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            time.sleep(0.5)
            _reap()
        else:
            answer = {"error": f"unknown command {words[0]!r}"}
        print(json.dumps(answer), flush=True)
    for pid in _descendants():  # the test went away: leave nothing behind
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    _reap()


if __name__ == "__main__":
    main()
