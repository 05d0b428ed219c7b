"""Runs #15's hostile and careless clients (bench/abuse_cases.py) against a live `sanyu serve`
and prints, for each case, the status codes it got, the peak RSS of every Ray process of the
server while it ran, and whether the server still answered a normal request afterwards.

    .venv/bin/python bench/abuse.py                  # starts its own server on 127.0.0.1
    .venv/bin/python bench/abuse.py --skip load      # without the 50 + 5 client load
    .venv/bin/python bench/abuse.py --url http://127.0.0.1:8000 --api-key KEY \\
        --max-queued-jobs 32 ...                      # a server already running elsewhere

Its own server gets small bounds that the cases can reach quickly (see `OWN_SERVER`); against
another server, give its bounds, and the cases that need to see its processes or its input
root (memory, ffmpeg left behind, swapped and FIFO inputs) measure or run only where they can.
Exit code 1 when a case did not get what a hardened server must answer.
"""

from __future__ import annotations

import argparse
import os
import socket
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED_EVAL = REPO.parent / "shared" / "eval"
sys.path.insert(0, str(REPO))

import abuse_cases as cases  # noqa: E402  (beside this script)

from sanyu.runtime import set_offline_local_defaults  # noqa: E402

OWN_SERVER = dict(
    model="base", api_key="abuse-key", max_upload_mb=16, request_timeout_s=600, piece_seconds=60,
    max_pending_requests=80, max_queued_jobs=4, max_spool_mb=64, upload_timeout_s=5,
    replica_cpus=0.5, max_batch_size=8, batch_wait_timeout_s=0.1,
)
SPEECH = "en/en_speechrecognition_english.wav"  # 2.7 s: "one two three"
BLOCKER = "en/en_jfk_whisper.flac"  # 11 s
MB = 2**20


def start_own(work: Path) -> cases.Target:
    import requests

    from sanyu.serve import ServeConfig
    from sanyu.serve.server import start

    set_offline_local_defaults()
    spool, output, inputs = work / "spool", work / "jobs", work / "inputs"
    for folder in (spool, output, inputs):
        folder.mkdir()
    config = ServeConfig(**OWN_SERVER, spool_dir=str(spool), output=str(output),
                         input_roots=(str(inputs),))
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = start(config, port=port)
    deadline = time.time() + 300
    while requests.get(f"{url}/readyz", timeout=30).status_code != 200:
        if time.time() > deadline:
            raise SystemExit("the server did not get ready in 300 s")
        time.sleep(1)
    return cases.Target(url, config.api_key, work, SHARED_EVAL / SPEECH, cases.limits_of(config),
                        root_pid=os.getpid(), input_root=inputs, spool=spool)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", help="a running server (default: start one here)")
    parser.add_argument("--api-key", default=os.environ.get("SANYU_API_KEY"))
    parser.add_argument("--input-root", type=Path, help="the running server's input root (local)")
    parser.add_argument("--spool", type=Path, help="the running server's spool folder (local)")
    parser.add_argument("--server-pid", type=int, help="the running server's main process (local)")
    for name in cases.LIMITS:
        parser.add_argument("--" + name.replace("_", "-"), type=float, default=OWN_SERVER.get(name))
    parser.add_argument("--skip", action="append", default=[], help="case names to skip (e.g. load)")
    args = parser.parse_args()
    if not (SHARED_EVAL / SPEECH).exists():
        raise SystemExit(f"needs the shared evaluation clips at {SHARED_EVAL}")
    with tempfile.TemporaryDirectory(prefix="sanyu-abuse-") as folder:
        work = Path(folder)
        if args.url:
            limits = {name: getattr(args, name) for name in cases.LIMITS}
            limits["max_request_audio_s"] = limits["max_request_audio_s"] or 7200
            target = cases.Target(args.url.rstrip("/"), args.api_key, work, SHARED_EVAL / SPEECH, limits,
                                  args.server_pid, args.input_root, args.spool)
        else:
            target = start_own(work)
        print(f"server {target.url}; making a 2-hour recording ...", flush=True)
        long_recording = cases.two_hour_recording(work, SHARED_EVAL / BLOCKER)
        outside = work / "outside.flac"
        outside.write_bytes((SHARED_EVAL / BLOCKER).read_bytes())
        plan = [
            ("lying", cases.case_lying_header), ("short", cases.case_short_of_header),
            ("cancel", cases.case_cancelled_decode, long_recording), ("junk", cases.case_junk_jobs),
            ("jobs", cases.case_job_queue_full), ("requests", cases.case_requests_full),
            ("spool", cases.case_spool_full), ("header", cases.case_timeout_header),
            ("swap", cases.case_swapped_input, SHARED_EVAL / BLOCKER, outside),
            ("fifo", cases.case_fifo_input), ("playlist", cases.case_playlist_upload),
            ("routes", cases.case_open_routes), ("load", cases.case_load, long_recording),
        ]
        findings = []
        for name, case, *extra in plan:
            if name in args.skip:
                continue
            print(f"case {name} ...", flush=True)
            findings.append(cases.run(case, target, *extra))
        print()
        print("| case | statuses | peak RSS of Ray processes (MB) | answers after | as it must | seen |")
        print("| --- | --- | --- | --- | --- | --- |")
        for finding in findings:
            rss = finding.peak_rss
            total = rss.pop("total", 0)
            top = sorted(rss.items(), key=lambda item: -item[1])
            shown = f"all {total / MB:.0f}: " + ", ".join(f"{label} {value / MB:.0f}" for label, value in top)
            print(f"| {finding.case} | {finding.statuses} | {shown if rss else '-'} | "
                  f"{'yes' if finding.answers_after else 'NO'} | {'yes' if finding.passed else 'NO'} | "
                  f"{finding.seen} |")
        bad = [f.case for f in findings if not (f.passed and f.answers_after)]
        print(f"\n{len(findings) - len(bad)}/{len(findings)} cases as a hardened server must answer"
              + (f"; not: {bad}" if bad else ""))
        return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
