"""Environment defaults for running Sanyu offline on one machine (tests, benchmarks).

Ray on loopback without the token auth of its newer releases, no usage statistics or pyannote
telemetry, and no model hub lookups. Set before Ray or pyannote is imported; a value already
in the environment wins.
"""

from __future__ import annotations

import os
from collections.abc import MutableMapping

OFFLINE_LOCAL_DEFAULTS = {
    "RAY_AUTH_MODE": "disabled",
    "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",  # keeps a local Ray's processes on 127.0.0.1
    "RAY_USAGE_STATS_ENABLED": "0",
    "PYANNOTE_METRICS_ENABLED": "0",
    "HF_HUB_OFFLINE": "1",
}


def set_offline_local_defaults(environ: MutableMapping[str, str] = os.environ) -> None:
    for name, value in OFFLINE_LOCAL_DEFAULTS.items():
        environ.setdefault(name, value)
