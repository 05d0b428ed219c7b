"""The process environment Sanyu runs in: environment defaults and logging, in one place.

Environment defaults are set before Ray or pyannote is imported (they read them at import); a
value already in the environment wins. Every entry point and the tests take them from here:

* `TELEMETRY_OFF`: no Ray usage statistics, no pyannote telemetry;
* `LOCAL_RAY`: a Ray started here keeps its processes on 127.0.0.1, runs its workers at normal
  priority (Ray nices them to 15; here they are the whole workload, and on a busy machine a
  niced worker gets almost no CPU), and its Serve proxy hides ``/-/routes`` and ignores the
  headers a client could switch its limits off with (`sanyu.adapters.ray_serve.ProxyGuard`);
* `OFFLINE`: no model hub lookups, and no token auth in Ray's newer releases (tests, benchmarks).

Logging: `configure_logging` sets up Python's logging once per process, at the level of
``--log-level``; Ray workers get the same level through `ray_logging_config`.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, MutableMapping

TELEMETRY_OFF = {"RAY_USAGE_STATS_ENABLED": "0", "PYANNOTE_METRICS_ENABLED": "0"}
LOCAL_RAY = {
    "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
    "RAY_worker_niceness": "0",
    # read by Serve's proxy process, which inherits the environment of the Ray started here
    "RAY_SERVE_HTTP_PROXY_CALLBACK_IMPORT_PATH": "sanyu.adapters.ray_serve:proxy_middlewares",
}
OFFLINE = {"HF_HUB_OFFLINE": "1", "RAY_AUTH_MODE": "disabled"}
OFFLINE_LOCAL_DEFAULTS = {**TELEMETRY_OFF, **LOCAL_RAY, **OFFLINE}

LOG_LEVELS = ("debug", "info", "warning", "error")
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def set_defaults(defaults: Mapping[str, str], environ: MutableMapping[str, str] = os.environ) -> None:
    """Set each variable of ``defaults`` that the environment does not already set."""
    for name, value in defaults.items():
        environ.setdefault(name, value)


def set_offline_local_defaults(environ: MutableMapping[str, str] = os.environ) -> None:
    """Everything on one machine, offline: what the tests and benchmarks run with."""
    set_defaults(OFFLINE_LOCAL_DEFAULTS, environ)


def log_level(name: str | int) -> int:
    """A logging level from a name (``info``) or a number; ValueError for anything else."""
    if isinstance(name, int):
        return name
    value = logging.getLevelName(name.upper())
    if not isinstance(value, int):
        raise ValueError(f"unknown log level {name!r}: choose from {', '.join(LOG_LEVELS)}")
    return value


def configure_logging(level: str | int = "warning") -> int:
    """Log records of ``level`` and above to stderr, once per process (a later call only
    changes the level). Returns the level."""
    value = log_level(level)
    root = logging.getLogger()
    if not any(getattr(handler, "_sanyu", False) for handler in root.handlers):
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter(LOG_FORMAT))
        handler._sanyu = True  # type: ignore[attr-defined]
        root.addHandler(handler)
    root.setLevel(value)
    logging.getLogger("sanyu").setLevel(value)
    return value


def current_log_level() -> str:
    """The name of the level Sanyu's loggers run at (what Ray workers are given too)."""
    return logging.getLevelName(logging.getLogger("sanyu").getEffectiveLevel())
