"""Joining a Ray cluster, or starting a local one on 127.0.0.1: for the batch job and the server.

Without an address, the Ray started here keeps every process on 127.0.0.1 (Ray binds all
interfaces otherwise), with no dashboard and its workers at normal priority (`sanyu.runtime`).
With one (``auto``, ``HOST:PORT`` or ``ray://HOST:PORT``) this process joins that cluster.

Logs: Ray's workers log at the level this process runs at (``--log-level``); their output is
forwarded here when asked, and lies in ``<session>/logs`` on each node in any case, which is
logged (at INFO) when Ray starts.
"""

from __future__ import annotations

import logging
import signal
import threading

import ray

from sanyu import runtime
from sanyu.adapters.ray_core import keep_local_ray_on_loopback

log = logging.getLogger(__name__)


def connect(address: str | None, forward_worker_logs: bool) -> bool:
    """Use the Ray already initialised in this process, join ``address``, or start a local
    Ray. Returns True when this call started or joined Ray (and the caller should shut it
    down with `ray.shutdown`)."""
    runtime.set_defaults(runtime.TELEMETRY_OFF)
    if ray.is_initialized():
        return False
    level = runtime.current_log_level()
    settings = {
        "logging_level": max(logging.INFO, runtime.log_level(level)),  # Ray's own driver logs
        "logging_config": ray.LoggingConfig(log_level=level),  # Sanyu's loggers in the workers
        "log_to_driver": forward_worker_logs,
    }
    # ray.init makes SIGTERM exit at once; the caller's handler (a command's clean shutdown,
    # sanyu.processes) is kept instead.
    handler = signal.getsignal(signal.SIGTERM) if _main_thread() else None
    if address is None:
        runtime.set_defaults(runtime.LOCAL_RAY)
        keep_local_ray_on_loopback()
        context = ray.init(include_dashboard=False, _node_ip_address="127.0.0.1", **settings)
    else:
        context = ray.init(address=address, **settings)
    if handler is not None:
        signal.signal(signal.SIGTERM, handler)
    session = getattr(context, "address_info", {}).get("session_dir")
    if session:
        log.info("Ray worker logs: %s/logs on each node of the cluster", session)
    return True


def _main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()
