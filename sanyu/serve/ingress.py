"""The HTTP ingress: FastAPI routes in front of the model deployment.

    client ──HTTP──▶ Serve proxy ──▶ SanyuAPI (this FastAPI ingress)
                                       │ admitted (or 429), upload streamed to a private
                                       │ temp folder, size-checked, opened once, probed,
                                       │ decoded in pieces (sanyu.serve.recording)
                                       ▼
                                     SanyuModel replicas (`sanyu.serve.model`)

Routes (see ``sanyu/serve/__init__.py`` for the whole contract):
``POST /v1/audio/transcriptions`` (OpenAI-compatible), ``POST /v1/jobs``, ``GET /v1/jobs/{id}``,
``GET /v1/models``, ``GET /v1/stats``, ``GET /healthz``, ``GET /readyz``, and the API's schema
(``/openapi.json``, ``/docs``, ``/redoc``) behind the key like the rest of ``/v1``.

Every request runs within its deadline (``request_timeout_s``; ``X-Sanyu-Timeout`` may only
shorten it), whatever headers the client sends.
"""

# No `from __future__ import annotations` here: FastAPI reads the route signatures' types.
import asyncio
import hmac
import logging
import time
from typing import Any

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse
from ray import serve
from ray.serve.handle import DeploymentHandle

from sanyu.adapters.ray_serve import bind_replica_grpc_to_loopback
from sanyu.models.fingerprint import result_fingerprint
from sanyu.serve.admission import Admission
from sanyu.serve.config import ServeConfig
from sanyu.serve.errors import APIError, bad_request, install_handlers, timed_out, unauthorized
from sanyu.serve.formats import render_response
from sanyu.serve.jobs import JobManager
from sanyu.serve.params import parse_request
from sanyu.serve.recording import Recordings
from sanyu.serve.upload import check_content_type, open_upload, read_form, safe_label, spool

log = logging.getLogger("sanyu.serve")

# A client may shorten (never lengthen) the server's request timeout with this header, in seconds.
TIMEOUT_HEADER = "x-sanyu-timeout"
# How long a model replica that said it was ready, then answers /readyz's probe too slowly
# (busy), is still reported ready.
READY_GRACE_S = 120.0

api = FastAPI(
    title="Sanyu transcription API",
    description="Cantonese, Mandarin and English transcripts with speakers; OpenAI-compatible.",
    version="1",
    # Served below, behind the API key: the schema names every route and field.
    openapi_url=None, docs_url=None, redoc_url=None,
)
install_handlers(api)

@serve.deployment(name="SanyuAPI")
@serve.ingress(api)
class SanyuAPI:
    def __init__(self, model: DeploymentHandle, config: ServeConfig):
        bind_replica_grpc_to_loopback()
        self.model = model
        self.config = config
        self.admission = Admission(config)
        self.recordings = Recordings(model, config, self.admission)
        self.jobs = JobManager(config, self.recordings, self.admission, self.fingerprint)
        self._ready_at: float | None = None  # when a model replica last said it was ready
        self._fingerprint: dict | None = None

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

    async def fingerprint(self) -> dict:
        """What a job's result key holds of the models as they run (`result_fingerprint`);
        waits for the models to load (within the job's deadline)."""
        if self._fingerprint is None:
            while not (state := await self.model.ready.remote()).get("compute_type"):
                if state.get("error"):
                    raise APIError(503, f"not ready: {state['error']}", code="not_ready")
                await asyncio.sleep(1.0)
            self._fingerprint = await asyncio.to_thread(
                result_fingerprint, self.config.model, state["compute_type"], self.config.piece_seconds
            )
        return self._fingerprint

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
        """How requests were batched on the replica that answers, its Ray node, and what this
        ingress holds (requests, jobs, upload bytes, long recordings waiting)."""
        self.authorize(request)
        return {**await self.model.batch_stats.remote(), "admission": self.admission.stats()}

    @api.get("/openapi.json", include_in_schema=False)
    async def openapi(self, request: Request) -> JSONResponse:
        self.authorize(request)
        return JSONResponse(api.openapi())

    @api.get("/docs", include_in_schema=False)
    async def docs(self, request: Request) -> HTMLResponse:
        self.authorize(request)
        return get_swagger_ui_html(openapi_url="/openapi.json", title=api.title)

    @api.get("/redoc", include_in_schema=False)
    async def redoc(self, request: Request) -> HTMLResponse:
        self.authorize(request)
        return get_redoc_html(openapi_url="/openapi.json", title=api.title)

    @api.post("/v1/audio/transcriptions")
    async def transcriptions(self, request: Request):
        """OpenAI's `audio.transcriptions.create`, with Sanyu's extra fields."""
        self.authorize(request)
        timeout = self.timeout_for(request)
        with self.admission.requests.take():
            try:
                return await asyncio.wait_for(self._transcription(request), timeout)
            except TimeoutError:
                raise timed_out(timeout) from None

    async def _transcription(self, request: Request):
        share = self.admission.spool.reserve()
        async with spool(self.config.spool_dir, share) as directory:
            form = await read_form(request, directory, self.config.max_upload_bytes, share)
            if form.file is None:
                raise bad_request(
                    "no audio: send the recording as the multipart field 'file'",
                    code="missing_file", param="file",
                )
            label = safe_label(form.file.filename)
            check_content_type(form.file.content_type, label)
            params = parse_request(form, self.config.default_options, self.config.allow_diarize)
            media, _ = await asyncio.to_thread(open_upload, form.file.path, label)
            with media:
                transcript = await self.recordings.transcribe(
                    media, params.options, self.config.max_request_audio_s,
                    too_long_hint="; send long recordings to POST /v1/jobs",
                )
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
