"""The Serve application builder: what ``serve run sanyu.serve:app``, ``serve deploy`` with a
config file, a KubeRay RayService and ``sanyu serve`` all build the server with.

Ray Serve calls an application builder with the application's arguments (``key=value`` pairs of
``serve run``, or the ``args:`` of a config file); annotated with the pydantic `ServeConfig`,
they are validated by Serve before the builder runs. See docs/serve-config.yaml.
"""

# No `from __future__ import annotations`: Ray Serve reads the builder's annotation.
from typing import Any

import ray
from ray.serve import Application

from sanyu.serve.config import ServeConfig
from sanyu.serve.ingress import SanyuAPI
from sanyu.serve.model import SanyuModel


def _replica_gpus(config: ServeConfig) -> float:
    if config.replica_gpus is not None:
        return config.replica_gpus
    if config.device == "cuda":
        return 1.0
    if config.device == "auto" and ray.is_initialized() and ray.cluster_resources().get("GPU", 0) > 0:
        return 1.0
    return 0.0


def build_app(args: ServeConfig) -> Application:
    """The Serve application for ``args`` (a `ServeConfig`, or the dict Serve passes)."""
    config = args if isinstance(args, ServeConfig) else ServeConfig.model_validate(args or {})
    model_options: dict[str, Any] = {
        "max_ongoing_requests": config.model_max_ongoing_requests,
        "ray_actor_options": {"num_cpus": config.replica_cpus, "num_gpus": _replica_gpus(config)},
        "health_check_period_s": 10,
        "graceful_shutdown_timeout_s": 30,
    }
    if config.replicas == "auto":
        model_options["autoscaling_config"] = {
            "min_replicas": 1,
            "max_replicas": max(1, config.max_replicas),
            "target_ongoing_requests": config.max_batch_size,
        }
    else:
        model_options["num_replicas"] = config.replicas
    model = SanyuModel.options(**model_options).bind(config)
    return SanyuAPI.options(
        num_replicas=config.ingress_replicas,
        max_ongoing_requests=1000,
        ray_actor_options={"num_cpus": config.ingress_cpus},
    ).bind(model, config)
