"""The Ray Serve application: a FastAPI ingress in front of a batching model deployment.

    client ──HTTP──▶ Serve proxy (127.0.0.1) ──▶ SanyuAPI (FastAPI ingress)
                                                   │ upload streamed to a private temp folder,
                                                   │ size-checked, probed, decoded, folder removed
                                                   ▼
                                                 SanyuModel replicas (`@serve.batch`)
                                                   one Transcriber each; concurrent requests
                                                   grouped by options, cut by audio seconds,
                                                   run through Transcriber.transcribe_many

Routes (see ``sanyu/serve/__init__.py`` for the whole contract):
``POST /v1/audio/transcriptions`` (OpenAI-compatible), ``POST /v1/jobs``, ``GET /v1/jobs/{id}``,
``GET /v1/models``, ``GET /healthz``, ``GET /readyz``.
"""

# No `from __future__ import annotations` here: FastAPI reads the route signatures' types.
import asyncio
import hmac
import logging
import os
import re
import threading
import time
from dataclasses import dataclass, replace
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from ray import serve
from ray.serve.handle import DeploymentHandle

from sanyu.audio import Audio
from sanyu.options import TranscribeOptions
from sanyu.schema import Transcript
from sanyu.serve.batching import BatchStats, Coalescer, run_planned
from sanyu.serve.config import ServeConfig
from sanyu.serve.errors import APIError, bad_request, install_handlers, timed_out, unauthorized
from sanyu.serve.formats import render_response
from sanyu.serve.jobs import JobManager
from sanyu.serve.params import parse_request
from sanyu.serve.upload import check_content_type, load_audio, read_form, spool

log = logging.getLogger("sanyu.serve")

# A client may shorten (never lengthen) the server's request timeout with this header, in seconds.
TIMEOUT_HEADER = "x-sanyu-timeout"
# How long a model replica that said it was ready, then answers /readyz's probe too slowly
# (busy), is still reported ready.
READY_GRACE_S = 120.0


def _available_cpus() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def _keep_replica_on_loopback(config: ServeConfig) -> None:
    """Serve replicas open an inter-deployment gRPC port on every interface ("[::]:0"); on a
    loopback-only node (the local Ray `sanyu serve` starts) bind it to 127.0.0.1 instead.

    Called in each replica's constructor, which runs before the replica opens that port.
    """
    import ray
    from ray.serve._private import replica

    if config.host not in ("127.0.0.1", "localhost", "::1"):
        return
    if ray.util.get_node_ip_address() != "127.0.0.1":
        return
    original = replica.add_port_to_grpc_server
    if getattr(original, "_sanyu_loopback", False):
        return

    def add_port_loopback(server, address):
        if isinstance(address, str) and address.startswith("[::]:"):
            address = "127.0.0.1:" + address[len("[::]:"):]
        return original(server, address)

    add_port_loopback._sanyu_loopback = True
    replica.add_port_to_grpc_server = add_port_loopback


@dataclass
class _Item:
    audio: Audio
    options: TranscribeOptions


# ---------------------------------------------------------------------------------------
# The model deployment


@serve.deployment(name="SanyuModel")
class SanyuModel:
    """One loaded Transcriber; concurrent requests are batched onto it with `@serve.batch`."""

    def __init__(self, config: ServeConfig):
        from sanyu.api import Transcriber

        _keep_replica_on_loopback(config)
        self.config = config
        model_options = config.model_options
        if model_options.cpu_threads == 0:
            # Ray sets OMP_NUM_THREADS to the replica's (fractional) CPUs; use the cores instead.
            model_options = replace(model_options, cpu_threads=_available_cpus())
        self.transcriber = Transcriber(model_options)
        self.stats = BatchStats()
        self.coalescer = self._new_coalescer()
        self._loaded = threading.Event()
        self._load_error: str | None = None
        self._load_seconds: float | None = None
        self.transcribe_batch.set_max_batch_size(config.max_batch_size)
        self.transcribe_batch.set_batch_wait_timeout_s(config.batch_wait_timeout_s)
        threading.Thread(target=self._load, name="sanyu-model-load", daemon=True).start()

    def _load(self) -> None:
        started = time.perf_counter()
        try:
            self.transcriber.engine  # noqa: B018 - loads Whisper
            if self.config.preload_diarizer and self.config.allow_diarize:
                self.transcriber.diarizer  # noqa: B018 - loads pyannote
        except Exception as exc:  # reported by ready() and to every request
            log.exception("loading models failed")
            self._load_error = f"{type(exc).__name__}: {exc}"
        finally:
            self._load_seconds = time.perf_counter() - started
            self._loaded.set()

    def ready(self) -> dict[str, Any]:
        return {
            "ready": self._loaded.is_set() and self._load_error is None,
            "loading": not self._loaded.is_set(),
            "error": self._load_error,
            "model": self.config.model_options.model,
            "load_seconds": self._load_seconds,
        }

    def _new_coalescer(self) -> Coalescer:
        return Coalescer(
            self._run_batch,
            max_items=self.config.max_batch_size,
            max_seconds=self.config.max_batch_audio_s,
            seconds=lambda item: item.audio.duration,
            stats=self.stats,
        )

    def batch_stats(self) -> dict[str, Any]:
        return {**self.stats.to_dict(), "waiting": self.coalescer.waiting}

    def reset_stats(self) -> None:
        self.stats = BatchStats()
        self.coalescer.stats = self.stats

    async def transcribe(self, audio: Audio, options: TranscribeOptions) -> Transcript:
        while not self._loaded.is_set():
            await asyncio.sleep(0.1)
        if self._load_error:
            raise RuntimeError(f"models failed to load: {self._load_error}")
        result = await (await self.transcribe_batch(_Item(audio, options)))
        if isinstance(result, BaseException):
            raise result
        return result

    # Requests are batched here (max_batch_size and the wait are set from the config in
    # __init__). Serve forms the next batch while the model is still busy with the last one, so
    # the handler only queues its batch for the model and returns one future per request; the
    # coalescer merges the batches waiting for the model into calls of up to max_batch_size.
    @serve.batch(max_batch_size=8, batch_wait_timeout_s=0.1)
    async def transcribe_batch(self, items: list[_Item]) -> list[asyncio.Future]:
        self.stats.batches += 1
        return self.coalescer.enqueue(items)

    def _run_batch(self, items: list[_Item]) -> list[Transcript | Exception]:
        return run_planned(
            items,
            keys=[item.options for item in items],
            durations=[item.audio.duration for item in items],
            max_seconds=self.config.max_batch_audio_s,
            call=lambda batch, options: self.transcriber.transcribe_many(
                [item.audio for item in batch], options
            ),
            stats=self.stats,
        )


# ---------------------------------------------------------------------------------------
# The HTTP ingress

api = FastAPI(
    title="Sanyu transcription API",
    description="Cantonese, Mandarin and English transcripts with speakers; OpenAI-compatible.",
    version="1",
)
install_handlers(api)

_UNSAFE = re.compile(r"[^\w.\- ()\[\]]+", re.UNICODE)


def _label(filename: str | None) -> str:
    """A file name fit for messages and transcripts: no folders, no control characters."""
    name = os.path.basename((filename or "").replace("\\", "/"))
    name = _UNSAFE.sub("_", name).strip(" .") or "upload"
    return name[:120]


@serve.deployment(name="SanyuAPI")
@serve.ingress(api)
class SanyuAPI:
    def __init__(self, model: DeploymentHandle, config: ServeConfig):
        _keep_replica_on_loopback(config)
        self.model = model
        self.config = config
        self.jobs = JobManager(config, self.transcribe_audio)
        self._ready_at: float | None = None  # when a model replica last said it was ready

    # ---- helpers ------------------------------------------------------------------------

    def authorize(self, request: Request) -> None:
        if not self.config.api_key:
            return
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(
            token.strip().encode(), self.config.api_key.encode()
        ):
            raise unauthorized()

    def timeout_for(self, request: Request) -> float:
        timeout = self.config.request_timeout_s
        asked = request.headers.get(TIMEOUT_HEADER)
        if asked:
            try:
                value = float(asked)
            except ValueError:
                raise bad_request(f"{TIMEOUT_HEADER} must be a number of seconds") from None
            if value > 0:
                timeout = min(timeout, value)
        return timeout

    async def transcribe_audio(self, audio: Audio, options: TranscribeOptions) -> Transcript:
        response = self.model.transcribe.remote(audio, options)
        try:
            return await response
        except asyncio.CancelledError:
            response.cancel()
            raise
        except APIError:
            raise
        except Exception as exc:
            cause = getattr(exc, "cause", None) or exc
            log.error("transcription failed: %s", exc)
            raise APIError(
                500, f"transcription failed: {type(cause).__name__}: {str(cause)[:500]}",
                code="transcription_failed",
            ) from None

    # ---- routes -------------------------------------------------------------------------

    @api.get("/healthz")
    async def healthz(self) -> dict[str, str]:
        """Liveness: the HTTP server answers."""
        return {"status": "ok"}

    @api.get("/readyz")
    async def readyz(self) -> JSONResponse:
        """Readiness: 200 once the models are loaded on a replica, 503 before.

        A model replica busy with a full queue answers slowly: after it has said it is ready,
        a slow answer (within READY_GRACE_S) still counts as ready rather than failing the probe.
        """
        try:
            state = await asyncio.wait_for(self.model.ready.remote(), 2 if self._ready_at else 10)
        except Exception as exc:
            if self._ready_at is not None and time.monotonic() - self._ready_at < READY_GRACE_S:
                state = {"ready": True, "model": self.config.model_options.model}
            else:
                state = {"ready": False, "error": f"model replica not answering: {type(exc).__name__}"}
        else:
            if state.get("ready"):
                self._ready_at = time.monotonic()
        if state.get("ready"):
            return JSONResponse({"status": "ready", "model": state.get("model")})
        message = state.get("error") or "models are loading"
        body = APIError(503, f"not ready: {message}", code="not_ready").body()
        body["status"] = "loading" if state.get("loading") else "failed"
        return JSONResponse(body, status_code=503)

    @api.get("/v1/models")
    async def models(self, request: Request) -> dict[str, Any]:
        self.authorize(request)
        name = self.config.model_options.model
        return {
            "object": "list",
            "data": [
                {"id": model_id, "object": "model", "created": 0, "owned_by": "sanyu", "root": name}
                for model_id in dict.fromkeys([name, "whisper-1"])
            ],
        }

    @api.get("/v1/stats")
    async def stats(self, request: Request) -> dict[str, Any]:
        """How requests were batched on the replica that answers (for load tests)."""
        self.authorize(request)
        return await self.model.batch_stats.remote()

    @api.post("/v1/audio/transcriptions")
    async def transcriptions(self, request: Request):
        """OpenAI's `audio.transcriptions.create`, with Sanyu's extra fields."""
        self.authorize(request)
        timeout = self.timeout_for(request)
        try:
            return await asyncio.wait_for(self._transcription(request), timeout)
        except TimeoutError:
            raise timed_out(timeout) from None

    async def _transcription(self, request: Request):
        async with spool(self.config.spool_dir) as directory:
            form = await read_form(request, directory, self.config.max_upload_bytes)
            if form.file is None:
                raise bad_request(
                    "no audio: send the recording as the multipart field 'file'",
                    code="missing_file", param="file",
                )
            label = _label(form.file.filename)
            check_content_type(form.file.content_type, label)
            params = parse_request(form, self.config.default_options, self.config.allow_diarize)
            audio = await asyncio.to_thread(
                load_audio, form.file.path, label, self.config.max_request_audio_s,
                "; send long recordings to POST /v1/jobs",
            )
        transcript = await self.transcribe_audio(audio, params.options)
        return render_response(
            transcript, params.response_format, params.granularities, params.options.speaker_names
        )

    @api.post("/v1/jobs", status_code=202)
    async def create_job(self, request: Request) -> JSONResponse:
        """Start an asynchronous transcription (an upload, or a URI under an allowed root)."""
        self.authorize(request)
        job = await self.jobs.create(request)
        return JSONResponse(job, status_code=202)

    @api.get("/v1/jobs/{job_id}")
    async def get_job(self, job_id: str, request: Request) -> JSONResponse:
        self.authorize(request)
        return JSONResponse(await self.jobs.get(job_id))


# ---------------------------------------------------------------------------------------
# Building and starting


def _replica_gpus(config: ServeConfig) -> float:
    if config.replica_gpus is not None:
        return config.replica_gpus
    device = config.model_options.device
    if device == "cuda":
        return 1.0
    if device == "auto":
        import ray

        if ray.is_initialized() and ray.cluster_resources().get("GPU", 0) > 0:
            return 1.0
    return 0.0


def build_app(config: ServeConfig):
    """The Serve application for ``config`` (pass it to ``serve.run``)."""
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


def start(config: ServeConfig, address: str | None = None) -> str:
    """Connect to (or start) Ray, start Serve's HTTP proxy on ``config.host:port`` and deploy.

    Returns the base URL once the application is deployed (models may still be loading:
    ``/readyz`` says when they are). A local Ray (no ``address``) keeps its ports on 127.0.0.1.
    """
    import ray

    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    if not ray.is_initialized():
        if not address:
            # Ray runs its workers at nice 15; the replicas are this server's whole workload.
            os.environ.setdefault("RAY_worker_niceness", "0")
        if address:
            ray.init(address=address, logging_level=logging.WARNING)
        else:
            ray.init(
                include_dashboard=False,
                logging_level=logging.WARNING,
                _node_ip_address="127.0.0.1",
            )
    serve.start(
        http_options={
            "host": config.host,
            "port": config.port,
            # A backstop behind the ingress's own 504: long enough for any request it allows.
            "request_timeout_s": config.request_timeout_s + 60,
        },
    )
    serve.run(build_app(config), name=config.app_name, route_prefix=config.route_prefix, blocking=False)
    host = "127.0.0.1" if config.host in ("0.0.0.0", "::", "") else config.host
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{config.port}"


def serve_forever(config: ServeConfig, address: str | None = None, echo=print) -> None:
    """``sanyu serve``: start, report, and run until Ctrl-C or SIGTERM, then shut Serve down
    (and the local Ray it started)."""
    import signal

    import ray

    def _stop(signum, frame):
        raise KeyboardInterrupt

    url = start(config, address)
    # After ray.init, which installs its own handlers.
    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    echo(f"Sanyu is serving model {config.model_options.model!r} at {url}/v1 "
         f"(health {url}/healthz, readiness {url}/readyz)")
    if config.host not in ("127.0.0.1", "localhost", "::1"):
        echo(f"warning: listening on {config.host}, reachable from other machines"
             + ("" if config.api_key else " without an API key"))
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        echo("shutting down")
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        serve.shutdown()
        ray.shutdown()
