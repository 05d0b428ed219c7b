"""Sanyu on a real two-node Ray cluster (`ray start --head` + `ray start --address`, each node
on its own loopback address): `sanyu batch --address` spreads its pieces over both nodes, `serve run` with a
Serve config file serves the OpenAI client, and `sanyu serve --address` puts its replicas on
both nodes. Each command runs as a user would run it, in its own process."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from conftest import REPO, SHARED_EVAL, eval_clip
from ray_cluster import HEAD_IP, WORKER_IP, free_port, start_cluster
from sanyu.runtime import set_offline_local_defaults

pytestmark = pytest.mark.slow

API_KEY = "cluster-key-0123456789"
JFK = "en/en_jfk_whisper.flac"  # "ask not what your country can do for you"
BIN = Path(sys.executable).parent


@pytest.fixture(scope="module")
def cluster():
    if not SHARED_EVAL.is_dir():
        pytest.skip(f"needs the shared evaluation clips at {SHARED_EVAL} (absent in this checkout)")
    env = dict(os.environ)
    set_offline_local_defaults(env)
    started = start_cluster(env)
    yield started
    started.stop()
    assert not started.own_pids(), "processes of the test cluster survived"


def _reset_serve(cluster) -> None:
    """Serve off the cluster again (its controller and proxies), whatever a test left."""
    cluster.python("from ray import serve\nserve.shutdown()")


def _stop(process: subprocess.Popen, log) -> str:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGINT)  # Ctrl-C, as a user stops it
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=30)
    log.close()
    return Path(log.name).read_text(errors="replace")


def _wait_ready(url: str, process: subprocess.Popen, log_path: Path, timeout: float = 400) -> None:
    import requests

    deadline = time.time() + timeout
    while True:
        assert process.poll() is None, log_path.read_text(errors="replace")[-4000:]
        try:
            if requests.get(f"{url}/readyz", timeout=10).status_code == 200:
                return
        except requests.RequestException:
            pass
        assert time.time() < deadline, log_path.read_text(errors="replace")[-4000:]
        time.sleep(1)


def _openai_transcribes(url: str) -> None:
    from openai import OpenAI

    client = OpenAI(base_url=f"{url}/v1", api_key=API_KEY, max_retries=0, timeout=300)
    with open(eval_clip(JFK), "rb") as audio:
        result = client.audio.transcriptions.create(model="whisper-1", file=audio, language="en")
    assert "ask not what your country can do for you" in " ".join(
        "".join(c for c in result.text.lower() if c.isalnum() or c.isspace()).split())


def test_cluster_has_two_nodes_on_loopback(cluster):
    nodes = cluster.nodes()
    assert sorted(nodes.values()) == [HEAD_IP, WORKER_IP], nodes
    assert cluster.address.startswith(f"{HEAD_IP}:") and not cluster.address.endswith(":6379")


def test_batch_address_transcribes_on_both_nodes(cluster, tmp_path):
    from sanyu.inputs import list_inputs

    inputs, out = tmp_path / "in", tmp_path / "out"
    inputs.mkdir()
    chosen = sorted((SHARED_EVAL / "en").glob("*.wav"))[:6]
    for clip in chosen:
        shutil.copy(clip, inputs / clip.name)
    (inputs / "broken.wav").write_text("not audio")
    # Two workers that each reserve more than half of a one-CPU node: one on each node.
    command = [str(BIN / "sanyu"), "batch", str(inputs), "-o", str(out), "--address", cluster.address,
               "--workers", "2", "--files-per-batch", "1", "--beam-size", "1", "--language", "en",
               "-f", "json,txt", "--no-progress", "--log-level", "info"]
    done = subprocess.run(command, cwd=REPO, env=cluster.env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 1, done.stderr[-4000:]  # the broken input fails, nothing else
    summary = json.loads((out / "summary.json").read_text())
    assert (summary["files"], summary["ok"], summary["failed"]) == (7, 6, 1), summary
    assert summary["failures"][0]["path"].endswith("broken.wav")
    assert set(summary["pieces_by_node"]) == set(cluster.node_ids()), summary["pieces_by_node"]
    assert sum(summary["pieces_by_node"].values()) == 6
    for item in list_inputs(str(inputs)):  # every input accounted for, under its batch name
        marker = out / "_sanyu" / ("errors" if item.uri.endswith("broken.wav") else "done") / f"{item.stem}.json"
        assert marker.is_file(), item
    assert "Ray worker logs:" in done.stderr


def _serve_config(tmp_path: Path, port: int) -> Path:
    """docs/serve-config.yaml, on a free port and with this test's settings."""
    config = yaml.safe_load((REPO / "docs" / "serve-config.yaml").read_text())
    config["http_options"]["port"] = port
    config["applications"][0]["args"].update(
        api_key=API_KEY, preload_diarizer=False, output=str(tmp_path / "jobs"), replica_cpus=0.5,
    )
    path = tmp_path / "serve-config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_serve_run_with_a_config_file_serves_the_openai_client(cluster, tmp_path):
    port = free_port()
    config = _serve_config(tmp_path, port)
    log_path = tmp_path / "serve-run.log"
    log = open(log_path, "wb")
    process = subprocess.Popen(
        [str(BIN / "serve"), "run", "--address", cluster.address, str(config)],
        cwd=tmp_path, env=cluster.env, stdout=log, stderr=log, start_new_session=True,
    )
    try:
        _wait_ready(f"http://127.0.0.1:{port}", process, log_path)
        _openai_transcribes(f"http://127.0.0.1:{port}")
    finally:
        _stop(process, log)
        _reset_serve(cluster)


def test_sanyu_serve_address_puts_replicas_on_both_nodes(cluster, tmp_path):
    import requests

    port = free_port()
    log_path = tmp_path / "sanyu-serve.log"
    log = open(log_path, "wb")
    # Two replicas that each reserve more than half of a one-CPU node: one on each node.
    process = subprocess.Popen(
        [str(BIN / "sanyu"), "serve", "--address", cluster.address, "--port", str(port),
         "--replicas", "2", "--replica-cpus", "0.6", "--lazy-diarizer", "--output", str(tmp_path / "jobs")],
        cwd=tmp_path, env={**cluster.env, "SANYU_API_KEY": API_KEY}, stdout=log, stderr=log,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(url, process, log_path)
        _openai_transcribes(url)
        nodes = set()
        for _ in range(60):
            stats = requests.get(f"{url}/v1/stats", headers={"Authorization": f"Bearer {API_KEY}"}, timeout=30)
            nodes.add(stats.json()["node"])
            if len(nodes) == 2:
                break
        assert nodes == set(cluster.node_ids())
    finally:
        output = _stop(process, log)
        _reset_serve(cluster)
    assert "shutting down" in output
