"""Ray core internals (tested with ray 2.60.0).

`keep_local_ray_on_loopback`: Ray decides whether a node it starts may use the machine's network
address from ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER``, read once into
``ray._private.ray_constants.ENABLE_RAY_CLUSTER`` when Ray is imported; setting the variable
after that import has no effect, so the constant is set too.
"""

from __future__ import annotations

import os

from ray._private import ray_constants


def keep_local_ray_on_loopback() -> None:
    """Make a Ray started by this process keep every address on 127.0.0.1."""
    os.environ[ray_constants.ENABLE_RAY_CLUSTERS_ENV_VAR] = "0"
    ray_constants.ENABLE_RAY_CLUSTER = False
