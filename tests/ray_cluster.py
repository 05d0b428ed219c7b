"""A real two-node Ray cluster on loopback, started the way an operator starts one.

``ray start --head`` and ``ray start --address`` each start their own raylet with its own
resources (one CPU each, so two model actors that each reserve more than half a CPU land on
different nodes), every address on 127.0.0.1, every port free and chosen here (other people run
Ray on this machine: none of Ray's default ports is used), and a private temporary folder.
(Ray's own gRPC servers of a multi-node cluster still listen on every interface: its behaviour
once ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=1``, which a second node needs; the local Ray that
Sanyu starts itself keeps every port on loopback, see test_batch.)
Stopping never runs ``ray stop`` (which would stop every Ray on the machine): it signals exactly
the processes whose command line names this cluster's folder, and their descendants.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

OBJECT_STORE_BYTES = 300 * 2**20
# Loopback addresses, one per node as if they were two machines. Not 127.0.0.1: in a multi-node
# cluster Ray replaces that one (and only that one) by the machine's network address.
HEAD_IP, WORKER_IP = "127.0.0.2", "127.0.0.3"
RAY = str(Path(sys.executable).with_name("ray"))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _node_ports() -> list[str]:
    """Every port a node would otherwise take from Ray's defaults (some fixed, e.g. 52365).
    Workers get a range below the kernel's ephemeral ports, where the others come from."""
    low = random.randrange(20000, 32000, 200)
    return [
        "--node-manager-port", str(free_port()),
        "--object-manager-port", str(free_port()),
        "--dashboard-agent-listen-port", str(free_port()),
        "--dashboard-agent-grpc-port", str(free_port()),
        "--runtime-env-agent-port", str(free_port()),
        "--metrics-export-port", str(free_port()),
        "--min-worker-port", str(low), "--max-worker-port", str(low + 199),
    ]


def _processes() -> dict[int, tuple[int, bytes]]:
    """pid -> (parent pid, command line) of every process we can see."""
    found = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
        except OSError:
            continue
        found[int(entry)] = (int(stat.rsplit(")", 1)[1].split()[1]), cmdline)
    return found


@dataclass
class Cluster:
    temp_dir: Path
    env: dict
    address: str = ""
    logs: list[Path] = field(default_factory=list)

    def _start(self, name: str, ip: str, args: list[str]) -> None:
        log = self.temp_dir / f"ray-start-{name}.log"
        self.logs.append(log)
        with open(log, "wb") as out:
            done = subprocess.run(
                [RAY, "start", *args, "--node-ip-address", ip, "--num-cpus", "1",
                 "--num-gpus", "0", "--object-store-memory", str(OBJECT_STORE_BYTES),
                 "--temp-dir", str(self.temp_dir), "--disable-usage-stats", *_node_ports()],
                stdout=out, stderr=subprocess.STDOUT, env=self.env, timeout=180,
            )
        if done.returncode != 0:
            raise RuntimeError(f"ray start ({name}) failed:\n{log.read_text(errors='replace')[-3000:]}")

    def start(self) -> Cluster:
        port = free_port()
        self.address = f"{HEAD_IP}:{port}"
        self._start("head", HEAD_IP, [
            "--head", "--port", str(port), "--ray-client-server-port", str(free_port()),
            "--include-dashboard", "false", "--resources", json.dumps({"head": 1}),
        ])
        self._start("worker", WORKER_IP, ["--address", self.address, "--resources", json.dumps({"second": 1})])
        deadline = time.time() + 120
        while len(self.node_ids()) < 2:
            if time.time() > deadline:
                raise RuntimeError(f"the second node never joined {self.address}")
            time.sleep(1)
        return self

    def python(self, code: str, timeout: float = 120) -> str:
        """Run ``code`` in a fresh Python connected to the cluster (``ray.init(ADDRESS)``)."""
        script = f"import json, ray\nray.init(address={self.address!r}, logging_level='ERROR')\n{code}"
        done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                              env=self.env, timeout=timeout)
        if done.returncode != 0:
            raise RuntimeError(f"python on the cluster failed:\n{done.stderr[-3000:]}")
        return done.stdout

    def nodes(self) -> dict[str, str]:
        """Node id -> the address its raylet announces, for each live node."""
        code = "print(json.dumps({n['NodeID']: n['NodeManagerAddress'] for n in ray.nodes() if n['Alive']}))"
        return json.loads(self.python(code).strip().splitlines()[-1])

    def node_ids(self) -> list[str]:
        return sorted(self.nodes())

    def own_pids(self) -> set[int]:
        """The processes of this cluster: those naming its folder, and all they started."""
        processes = _processes()
        marker = str(self.temp_dir).encode()
        found = {pid for pid, (_, cmdline) in processes.items() if marker in cmdline}
        children: dict[int, list[int]] = {}
        for pid, (parent, _) in processes.items():
            children.setdefault(parent, []).append(pid)
        todo = list(found)
        while todo:
            for child in children.get(todo.pop(), []):
                if child not in found:
                    found.add(child)
                    todo.append(child)
        return found - {os.getpid()}

    def stop(self) -> None:
        pids = self.own_pids()
        for sig, wait in ((signal.SIGTERM, 15.0), (signal.SIGKILL, 5.0)):
            for pid in pids:
                try:
                    os.kill(pid, sig)
                except ProcessLookupError:
                    pass
            deadline = time.time() + wait
            while time.time() < deadline and (pids := pids & self.own_pids()):
                time.sleep(0.2)
            if not pids:
                break
        shutil.rmtree(self.temp_dir, ignore_errors=True)


def start_cluster(env: dict) -> Cluster:
    # Ray refuses a second node when told to stay on loopback by this variable; here every node
    # is put on 127.0.0.1 explicitly instead.
    env = {**env, "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "1"}
    # A short private folder: Ray's Unix sockets live under it (their paths have a 107-byte limit).
    temp_dir = Path(tempfile.mkdtemp(prefix="sanyu-ray-", dir="/tmp"))
    cluster = Cluster(temp_dir, env)
    try:
        return cluster.start()
    except BaseException:
        cluster.stop()
        raise
