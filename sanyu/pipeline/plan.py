"""How many Whisper workers and finishers a batch job runs, with how many threads and which
Ray resources, for the cluster it runs on.

On GPUs: one Whisper worker per GPU. On CPUs: one single-threaded worker per core, not one
worker with every core (a second CTranslate2 thread speeds a worker up by ~20% on Whisper base,
a second worker by ~90%: bench/threads.py), as many as fit in half the memory; a diarizing
finisher per two workers. The actors always leave room for two decoding tasks, or the job would
wait forever for a slot to decode its next input.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import ray

from sanyu.models import REGISTRY, cached_path
from sanyu.options import ModelOptions

PREPARE_CPUS = 0.25  # Ray CPUs of a task that fetches, hashes and decodes one input
WRITER_CPUS = 0.25  # Ray CPUs of a finisher that only writes (no diarization)


@dataclass
class Plan:
    workers: int
    whisper_args: dict
    finisher_args: dict
    finishers: int
    cpu_threads: int
    device: str = "cpu"  # where the Whisper workers run: cuda or cpu


def plan_for_cluster(workers: int | None, model: ModelOptions, diarize: bool) -> Plan:
    """`plan_workers` for the resources of the Ray cluster this process is connected to that
    nothing else holds (a Serve app or another job on the same cluster): planned on all of
    them, the job's actors would wait forever for what the others keep."""
    resources = ray.available_resources()
    node_cpus = max(
        (float(n["Resources"].get("CPU", 0)) for n in ray.nodes() if n.get("Alive")), default=0.0
    )
    cpus = float(resources.get("CPU", 0.0)) or 1.0
    return plan_workers(
        workers, model, diarize, cpus=cpus, gpus=float(resources.get("GPU", 0.0)),
        node_cpus=node_cpus or cpus, memory=float(resources.get("memory", 0.0)),
    )


def plan_workers(
    workers: int | None, model: ModelOptions, diarize: bool, *,
    cpus: float, gpus: float, node_cpus: float, memory: float,
) -> Plan:
    """Pool sizes, threads and Ray resources for a cluster with these resources."""
    if gpus >= 1 and model.device in ("auto", "cuda"):
        workers = workers or int(gpus)
        share = gpus / workers * (0.5 if diarize else 1.0)
        finishers = workers if diarize else max(1, workers // 4)
        cpu = _actor_cpus(cpus, workers, finishers, diarize, threads=1)
        whisper = {"num_gpus": min(1.0, share), "num_cpus": cpu}
        finisher = {"num_gpus": min(1.0, share), "num_cpus": cpu} if diarize else {"num_cpus": WRITER_CPUS}
        return Plan(workers, whisper, finisher, finishers, model.cpu_threads or 4, "cuda")
    # One single-threaded worker per core, not one worker with every core: a second CTranslate2
    # thread speeds a worker up by ~20% on Whisper base, a second worker by ~90%
    # (bench/threads.py).
    workers = workers or min(
        max(1, int(cpus // (model.cpu_threads or 1))), _workers_fitting_memory(memory, model)
    )
    # A diarizing finisher takes about half the CPU time of a Whisper worker on the same audio.
    finishers = max(1, workers // 2) if diarize else max(1, workers // 4)
    actors = workers + (finishers if diarize else 0)
    threads = model.cpu_threads or max(1, min(int(node_cpus), int(round(cpus / actors))))
    reserve = _actor_cpus(cpus, workers, finishers, diarize, threads)
    whisper = {"num_cpus": reserve}
    finisher = {"num_cpus": reserve} if diarize else {"num_cpus": WRITER_CPUS}
    return Plan(workers, whisper, finisher, finishers, threads)


def _actor_cpus(cpus: float, workers: int, finishers: int, diarize: bool, threads: int) -> float:
    """Ray CPUs to reserve for each model actor (Whisper worker, or diarizing finisher).

    Less than the threads use if need be: the actors must leave room for two decoding tasks, or
    the job waits forever for a slot to decode its next input.
    """
    actors = workers + (finishers if diarize else 0)
    free = cpus - 2 * PREPARE_CPUS - (0 if diarize else finishers * WRITER_CPUS)
    return max(0.01, min(float(threads), free / actors))


# What one Whisper worker may hold when the model's size is not known on the driver (a hub id):
# enough for large-v3 in int8 with its buffers.
UNKNOWN_MODEL_WORKER_BYTES = 3 * 2**30


def _workers_fitting_memory(memory: float, model: ModelOptions) -> int:
    """How many Whisper workers fit in half of the cluster's memory (each holds its own model)."""
    if memory <= 0:
        return 1 << 30
    directory = Path(model.model).expanduser()  # looked up in resolve_whisper's order
    if not directory.is_dir() and model.model in REGISTRY:
        directory = cached_path(model.model)
    weights = directory / "model.bin"
    per_worker = UNKNOWN_MODEL_WORKER_BYTES
    if weights.is_file():
        # A worker with Whisper base peaked at 1.0 GiB (the weights are 0.14 GiB of it; the rest
        # is the imported libraries, the VAD model, audio and decoding buffers).
        per_worker = weights.stat().st_size + 2**30
    return max(1, int(memory / 2 // per_worker))


