"""How `sanyu batch` spends a cluster's cores, GPUs and memory (pure logic, no Ray)."""

from __future__ import annotations

import os

from sanyu.options import ModelOptions
from sanyu.pipeline.plan import PREPARE_CPUS, UNKNOWN_MODEL_WORKER_BYTES, plan_workers

GIB = 2**30


def _model_dir(tmp_path, size: int) -> str:
    (tmp_path / "model.bin").touch()
    os.truncate(tmp_path / "model.bin", size)  # sparse: only its size matters
    return str(tmp_path)


def _cpu(workers=None, model=None, diarize=False, cpus=2.0, memory=16 * GIB):
    return plan_workers(
        workers, model or ModelOptions(), diarize, cpus=cpus, gpus=0.0, node_cpus=cpus, memory=memory
    )


def _leaves_room_to_decode(plan, cpus: float) -> bool:
    """The actors' reservations leave at least two decoding tasks a slot (else the job hangs)."""
    reserved = plan.workers * plan.whisper_args["num_cpus"] + plan.finishers * plan.finisher_args["num_cpus"]
    return reserved + 2 * PREPARE_CPUS <= cpus + 1e-9


def test_cpu_gets_one_single_threaded_worker_per_core(tmp_path):
    model = ModelOptions(model=_model_dir(tmp_path, 150 * 2**20))
    plan = _cpu(model=model, cpus=2.0)
    assert (plan.workers, plan.cpu_threads) == (2, 1)
    assert _leaves_room_to_decode(plan, 2.0)
    assert _cpu(model=model, cpus=16.0, memory=64 * GIB).workers == 16


def test_threads_asked_for_divide_the_cores_into_fewer_workers(tmp_path):
    model = ModelOptions(model=_model_dir(tmp_path, 150 * 2**20), cpu_threads=2)
    assert (_cpu(model=model, cpus=2.0).workers, _cpu(model=model, cpus=2.0).cpu_threads) == (1, 2)
    assert _cpu(model=model, cpus=8.0).workers == 4


def test_workers_asked_for_are_kept():
    plan = _cpu(workers=3, cpus=2.0)
    assert plan.workers == 3 and plan.cpu_threads == 1


def test_workers_are_capped_by_memory_for_the_model_they_each_load(tmp_path):
    large = ModelOptions(model=_model_dir(tmp_path, 3 * GIB))  # each worker: 4 GiB
    assert _cpu(model=large, cpus=16.0, memory=32 * GIB).workers == 4  # half of 32 GiB / 4
    assert _cpu(model=large, cpus=16.0, memory=2 * GIB).workers == 1  # never fewer than one
    hub = ModelOptions(model="someone/whisper-large-ct2")  # size unknown on the driver
    assert _cpu(model=hub, cpus=16.0, memory=24 * GIB).workers == 12 * GIB // UNKNOWN_MODEL_WORKER_BYTES


def test_a_registered_model_is_sized_from_its_cache_entry(tmp_path, monkeypatch):
    from sanyu.models import cached_path

    monkeypatch.setenv("SANYU_HOME", str(tmp_path))
    cached_path("base").mkdir(parents=True)
    _model_dir(cached_path("base"), 3 * GIB)  # each worker: 4 GiB
    assert _cpu(model=ModelOptions(model="base"), cpus=16.0, memory=32 * GIB).workers == 4


def test_diarization_gets_a_diarizing_finisher_per_two_whisper_workers():
    plan = _cpu(diarize=True, cpus=2.0)
    assert (plan.workers, plan.finishers, plan.cpu_threads) == (2, 1, 1)
    assert _leaves_room_to_decode(plan, 2.0)
    assert _cpu(diarize=True, cpus=8.0, memory=64 * GIB).finishers == 4


def test_every_plan_leaves_room_to_decode_inputs():
    # `--diarize --workers 2` on 2 CPUs once reserved all of them for the four model actors and
    # the job waited forever for a CPU to decode its first input.
    for cpus in (1.0, 2.0, 3.0, 8.0):
        for workers in (None, 1, 2, 4):
            for diarize in (False, True):
                plan = _cpu(workers=workers, diarize=diarize, cpus=cpus)
                assert _leaves_room_to_decode(plan, cpus), (cpus, workers, diarize, plan)
                gpu = plan_workers(
                    workers, ModelOptions(), diarize, cpus=cpus, gpus=1.0, node_cpus=cpus, memory=GIB
                )
                assert _leaves_room_to_decode(gpu, cpus), (cpus, workers, diarize, gpu)


def test_gpus_get_one_worker_each():
    plan = plan_workers(None, ModelOptions(), False, cpus=16.0, gpus=2.0, node_cpus=16.0, memory=64 * GIB)
    assert plan.workers == 2 and plan.whisper_args == {"num_gpus": 1.0, "num_cpus": 1.0}
    cpu_only = plan_workers(
        None, ModelOptions(device="cpu"), False, cpus=4.0, gpus=2.0, node_cpus=4.0, memory=64 * GIB
    )
    assert "num_gpus" not in cpu_only.whisper_args and cpu_only.workers == 4
