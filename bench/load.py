"""Load test of the HTTP endpoint: N concurrent clients send real clips for a bounded time.

Starts Ray Serve on 127.0.0.1 (a free port) and measures, for each server configuration in turn
(model replicas x CTranslate2 threads per replica, and `@serve.batch`'s max_batch_size; by
default one replica with 2 threads against two single-threaded replicas, batching 8; same
machine, same clients, same clips): requests/s and audio seconds/s (clients send new requests
for ``--duration`` seconds, then wait for their last answers; the rate is over the whole time to
the last answer), p50/p95/max latency, errors (any status but 200, a timeout or a broken
connection), and how a replica actually batched (mean requests per model call, from the one
replica that answers /v1/stats). Prints a Markdown table and each configuration's throughput
ratio against the first; ``--json`` writes the raw figures.

    .venv/bin/python bench/load.py                      # 50 clients, 60 s per configuration
    .venv/bin/python bench/load.py --clients 20 --duration 30 --configs 1x2/8,1x2/1

Not a test: it takes minutes and its figures depend on the machine and on what else runs there.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import socket
import statistics
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
REQUEST_TIMEOUT_S = 900.0
SHARED_EVAL = REPO.parent / "shared" / "eval"
sys.path.insert(0, str(REPO))

from sanyu.runtime import set_offline_local_defaults  # noqa: E402

set_offline_local_defaults()


@dataclass
class Outcome:
    started: float
    finished: float
    status: int  # HTTP status, 0 for a client-side failure
    audio_s: float


@dataclass
class RunResult:
    label: str
    max_batch_size: int
    clients: int
    window_s: float
    outcomes: list[Outcome] = field(default_factory=list)
    batching: dict = field(default_factory=dict)
    load_before: tuple = ()
    load_after: tuple = ()

    def summary(self, t0: float) -> dict:
        """Throughput over the whole run: from the start until the last answer (clients stop
        sending when the window ends, then wait for what they have in flight)."""
        ok = [o for o in self.outcomes if o.status == 200]
        elapsed = max((o.finished for o in self.outcomes), default=t0) - t0 or 1e-9
        latencies = sorted(o.finished - o.started for o in ok)

        def pct(p: float) -> float:
            if not latencies:
                return float("nan")
            return latencies[min(len(latencies) - 1, int(round(p / 100 * (len(latencies) - 1))))]

        return {
            "config": self.label,
            "max_batch_size": self.max_batch_size,
            "clients": self.clients,
            "window_s": self.window_s,
            "elapsed_s": round(elapsed, 1),
            "requests_ok": len(ok),
            "requests_per_s": len(ok) / elapsed,
            "audio_s_per_s": sum(o.audio_s for o in ok) / elapsed,
            "p50_latency_s": pct(50),
            "p95_latency_s": pct(95),
            "max_latency_s": latencies[-1] if latencies else float("nan"),
            "errors": sum(1 for o in self.outcomes if o.status != 200),
            "error_statuses": sorted({o.status for o in self.outcomes if o.status != 200}),
            "requests_total": len(self.outcomes),
            "replica_requests_per_busy_s": self.batching.get("items_per_busy_s"),
            "mean_requests_per_model_call": self.batching.get("mean_items_per_call"),
            "model_call_sizes": self.batching.get("sizes"),
            "loadavg_before": self.load_before,
            "loadavg_after": self.load_after,
        }


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def pick_clips(max_seconds: float) -> list[tuple[str, bytes, float]]:
    import csv

    manifest = SHARED_EVAL / "MANIFEST.tsv"
    if not manifest.is_file():
        sys.exit(f"needs the shared evaluation clips at {SHARED_EVAL}")
    clips = []
    with open(manifest, newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle, delimiter="\t"):
            seconds = float(row["duration_s"])
            if row["language"] in ("en", "zh", "yue") and seconds <= max_seconds:
                path = SHARED_EVAL / row["file"]
                clips.append((path.name, path.read_bytes(), seconds))
    return clips


def wait_ready(url: str, timeout: float = 600) -> None:
    import requests

    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            if requests.get(f"{url}/readyz", timeout=30).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.5)
    sys.exit("server not ready in time")


def run_clients(url: str, clips, clients: int, window_s: float, seed: int) -> tuple[list[Outcome], float]:
    """Closed loop: each client sends a clip, waits for the answer, sends the next, until the
    window ends; then it waits for the answer in flight. Every request counts: a status other
    than 200, a timeout (status -1) or a broken connection (status 0) is an error."""
    import requests

    outcomes: list[Outcome] = []
    lock = threading.Lock()
    start_gate = threading.Barrier(clients + 1)
    t0_holder: list[float] = []

    def client(index: int) -> None:
        rng = random.Random(seed + index)
        session = requests.Session()
        start_gate.wait()
        t0 = t0_holder[0]
        while time.perf_counter() < t0 + window_s:
            name, data, seconds = clips[rng.randrange(len(clips))]
            started = time.perf_counter()
            try:
                response = session.post(
                    f"{url}/v1/audio/transcriptions",
                    files={"file": (name, data, "application/octet-stream")},
                    data={"model": "whisper-1", "response_format": "json"},
                    timeout=(10, REQUEST_TIMEOUT_S),
                )
                status = response.status_code
            except requests.Timeout:
                status = -1
            except requests.RequestException:
                status = 0
            with lock:
                outcomes.append(Outcome(started, time.perf_counter(), status, seconds))

    threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(clients)]
    for thread in threads:
        thread.start()
    t0_holder.append(time.perf_counter())
    start_gate.wait()
    for thread in threads:
        thread.join()
    return outcomes, t0_holder[0]


def parse_config(text: str) -> tuple[str, int, int, int]:
    """Parse "2x1/8": (its label, 2 replicas, 1 thread each, max_batch_size 8)."""
    layout, _, size = text.strip().partition("/")
    replicas, _, threads = layout.partition("x")
    return text.strip(), int(replicas), int(threads), int(size or 8)


def batching(before: dict, after: dict) -> dict:
    calls = after["calls"] - before["calls"]
    items = after["items"] - before["items"]
    busy = after["busy_seconds"] - before["busy_seconds"]
    return {
        "mean_items_per_call": round(items / calls, 2) if calls else None,
        "items_per_busy_s": round(items / busy, 3) if busy > 0 else None,
        "sizes": {
            k: v - before["sizes"].get(k, 0)
            for k, v in after["sizes"].items()
            if v - before["sizes"].get(k, 0)
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--duration", type=float, default=60.0,
                        help="seconds per configuration in which clients send new requests")
    parser.add_argument("--configs", default="1x2/8,2x1/8",
                        help="server configurations to compare, each REPLICASxTHREADS/MAX_BATCH_SIZE")
    parser.add_argument("--model", default="base")
    parser.add_argument("--max-clip-seconds", type=float, default=16.0)
    parser.add_argument("--batch-wait-ms", type=float, default=100.0)
    parser.add_argument("--replica-cpus", type=float, default=0.5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, default=None, help="write the figures here")
    args = parser.parse_args()

    import requests
    from ray import serve

    from sanyu.serve import ServeConfig, build_app
    from sanyu.serve.server import APP_NAME, start

    clips = pick_clips(args.max_clip_seconds)
    configs = [parse_config(text) for text in args.configs.split(",") if text.strip()]
    port = free_port()
    print(f"{len(clips)} clips of at most {args.max_clip_seconds:g} s "
          f"(mean {statistics.mean(c[2] for c in clips):.1f} s); {args.clients} clients; "
          f"{args.duration:g} s per configuration; {os.cpu_count()} CPUs; "
          f"load average {os.getloadavg()[0]:.2f}", flush=True)
    summaries = []
    url = None
    for label, replicas, threads, size in configs:
        config = ServeConfig(
            model=args.model,
            cpu_threads=threads,
            replicas=replicas,
            max_batch_size=size,
            batch_wait_timeout_s=args.batch_wait_ms / 1000,
            request_timeout_s=900,
            replica_cpus=args.replica_cpus,
            preload_diarizer=False,
            max_upload_mb=50,
        )
        if url is None:
            url = start(config, port=port)
        else:
            serve.run(build_app(config), name=APP_NAME, route_prefix="/")
        wait_ready(url)
        # Warm up every replica (first calls load lazily-built pieces), then count from zero.
        for name, data, _ in clips[: 2 * replicas]:
            requests.post(f"{url}/v1/audio/transcriptions", files={"file": (name, data)}, timeout=600)
        # /v1/stats answers for one replica, whichever Serve routes the call to.
        stats_before = requests.get(f"{url}/v1/stats", timeout=30).json() if replicas == 1 else None
        result = RunResult(label, size, args.clients, args.duration, load_before=os.getloadavg())
        print(f"{label}: running...", flush=True)
        result.outcomes, t0 = run_clients(url, clips, args.clients, args.duration, args.seed)
        result.load_after = os.getloadavg()
        if stats_before is not None:
            result.batching = batching(stats_before, requests.get(f"{url}/v1/stats", timeout=30).json())
        summary = result.summary(t0)
        summaries.append(summary)
        print(json.dumps(summary), flush=True)

    print()
    print("| replicas x threads / max_batch_size | clients | requests (ok/all) | requests/s "
          "| audio s/s | p50 latency | p95 latency | errors | requests per model call | ratio |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    first = summaries[0]["requests_per_s"]
    for s in summaries:
        print(f"| {s['config']} | {s['clients']} | {s['requests_ok']}/{s['requests_total']} | "
              f"{s['requests_per_s']:.3f} | {s['audio_s_per_s']:.2f} | {s['p50_latency_s']:.1f} s | "
              f"{s['p95_latency_s']:.1f} s | {s['errors']} | "
              f"{s['mean_requests_per_model_call'] or '-'} | {s['requests_per_s'] / max(first, 1e-9):.2f}x |")
    print(f"\nratio: requests/s against {summaries[0]['config']}")
    if args.json:
        args.json.write_text(json.dumps(
            {"machine": platform.platform(), "cpus": os.cpu_count(), "runs": summaries}, indent=2
        ))
    serve.shutdown()


if __name__ == "__main__":
    main()
