"""``sanyu serve``: a thin wrapper that runs the Serve application (`sanyu.serve.application`)
the way ``serve run`` would, on a local Ray on 127.0.0.1 or on a cluster it joins.

The HTTP proxy runs on the head node only (``proxy_location: HeadOnly``): ``--host`` and
``--port`` name one address for clients to use. Stopping (Ctrl-C or SIGTERM) removes the
application; Serve itself and Ray are shut down only when they were started here.

A local Ray listens on 127.0.0.1 only (`sanyu.cluster`); only the HTTP proxy follows ``--host``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

import ray
from ray import serve

from sanyu import runtime
from sanyu.cluster import connect
from sanyu.serve.application import build_app
from sanyu.serve.config import ServeConfig

APP_NAME = "sanyu"
LOOPBACK = ("127.0.0.1", "localhost", "::1")
STOP_STEP_S = 15.0

log = logging.getLogger(__name__)


def start(config: ServeConfig, host: str = "127.0.0.1", port: int = 8000, address: str | None = None) -> str:
    """Connect to (or start) Ray, start Serve's HTTP proxy on ``host:port`` and deploy.

    Returns the base URL once the application is deployed (models may still be loading:
    ``/readyz`` says when they are).
    """
    connect(address, forward_worker_logs=True)
    serve.start(
        proxy_location="HeadOnly",
        logging_config={"log_level": runtime.current_log_level()},  # access lines at INFO
        http_options={
            "host": host,
            "port": port,
            # A backstop behind the ingress's own 504: long enough for any request it allows.
            "request_timeout_s": config.request_timeout_s + 60,
        },
    )
    serve.run(build_app(config), name=APP_NAME, route_prefix="/", blocking=False,
              logging_config={"log_level": runtime.current_log_level()})
    shown = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
    return f"http://[{shown}]:{port}" if ":" in shown else f"http://{shown}:{port}"


def serve_forever(
    config: ServeConfig, host: str = "127.0.0.1", port: int = 8000, address: str | None = None,
    echo: Callable[[str], None] = print,
) -> None:
    """Start, report, and run until interrupted (KeyboardInterrupt: Ctrl-C, or SIGTERM as
    ``sanyu serve`` maps it); then remove the application, and shut Serve and Ray down when
    this process started them, each step bounded in time."""
    local = address is None and not ray.is_initialized()
    try:
        url = start(config, host, port, address)
        echo(f"Sanyu is serving model {config.model!r} at {url}/v1 "
             f"(health {url}/healthz, readiness {url}/readyz)")
        if host not in LOOPBACK:
            echo(f"warning: listening on {host}, reachable from other machines"
                 + ("" if config.api_key else " without an API key"))
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        echo("shutting down")
    finally:
        stop(local)


def stop(local: bool) -> None:
    """Remove the application (and Serve, when ``local``: this process started it), then
    leave Ray; each step gets ``STOP_STEP_S`` seconds, after which the caller's process
    cleanup (`sanyu.processes`) ends what is left."""
    if local:
        _bounded(serve.shutdown)
    else:  # other applications may share this cluster's Serve
        _bounded(lambda: serve.delete(APP_NAME))
    _bounded(ray.shutdown)


def _bounded(step: Callable[[], None]) -> None:
    worker = threading.Thread(target=lambda: _quietly(step), name="sanyu-stop", daemon=True)
    worker.start()
    worker.join(STOP_STEP_S)


def _quietly(step: Callable[[], None]) -> None:
    try:
        step()
    except Exception as exc:  # noqa: BLE001 - stopping goes on whatever one step says
        log.warning("while stopping: %s: %s", type(exc).__name__, exc)
