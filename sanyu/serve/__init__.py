"""Sanyu over HTTP: a Ray Serve application.

Start it with ``sanyu serve``, ``serve run sanyu.serve:app model=base ...``, or a Serve config
file (``serve run`` / ``serve deploy docs/serve-config.yaml``); `app` is the application
builder and `ServeConfig` its arguments.

Endpoints:

``POST /v1/audio/transcriptions``
    OpenAI-compatible (the official ``openai`` client works unchanged): multipart ``file``,
    ``model`` (any name; the loaded model answers), ``language`` (auto|yue|zh|en or a Whisper
    code), ``prompt``, ``response_format`` (json|text|srt|vtt|verbose_json|diarized_json, and
    Sanyu's txt|tsv|rttm|sanyu_json|md|docx: docx as an attachment), ``timestamp_granularities[]``
    (segment|word), plus Sanyu's ``diarize``, ``num_speakers``, ``min_speakers``,
    ``max_speakers``, ``script``, ``mandarin_script``, ``speaker_names`` (LABEL=Name entries too)
    / ``known_speaker_names[]``, ``hotwords`` / ``keywords[]``. Header ``X-Sanyu-Timeout: <s>``
    may shorten the server's timeout.
``POST /v1/jobs``, ``GET /v1/jobs/{id}``
    Asynchronous transcription of an upload or a ``uri`` under an allowed input root; results
    are written to storage in the batch job's layout, under the names the batch job gives.
``GET /v1/models``, ``GET /healthz`` (liveness), ``GET /readyz`` (200 once models are loaded).

Errors are JSON in OpenAI's shape ``{"error": {"message", "type", "code", "param"}}``: 401 without
the API key (when one is set), 413 for an upload over the limit (checked while it streams in),
415 for content that is not audio or video, 400 for an empty, undecodable, truncated or too long
file or a bad field, 403 for a job URI outside the allowed roots, 408 for a job whose upload
does not arrive in time, 429 (with ``Retry-After``) when the server holds all it may
(`sanyu.serve.admission`), 504 past the request timeout. ``/openapi.json``, ``/docs`` and
``/redoc`` need the key too. docs/hardening.md lists every bound.
"""

from sanyu.serve.application import build_app
from sanyu.serve.config import ServeConfig

app = build_app  # `serve run sanyu.serve:app key=value ...`

__all__ = ["ServeConfig", "app", "build_app"]
