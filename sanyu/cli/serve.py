"""``sanyu serve``: the Serve application (`sanyu.serve`) on a local Ray or a cluster.

The options are the application's arguments (`sanyu.serve.config.ServeConfig`, what
``serve run sanyu.serve:app key=value`` and a Serve config file take), plus where to listen.
"""

from __future__ import annotations

import click

from sanyu.cli.options import (
    log_option, model_options, option, parse_storage_options, read_glossary, speaker_names,
    transcribe_options,
)
from sanyu.processes import command_process


@click.command("serve")
@option("--host", default="127.0.0.1", show_default=True,
        help="Interface the HTTP endpoint listens on; 0.0.0.0 makes it reachable from other "
             "machines (the rest of a local Ray stays on 127.0.0.1).")
@option("--port", type=click.IntRange(1, 65535), default=8000, show_default=True,
        help="Port of the HTTP endpoint.")
@option("--address", default=None,
        help="Ray cluster to join (auto, HOST:PORT or ray://HOST:10001); default: a local Ray "
             "whose every port is on 127.0.0.1.")
@option("--replicas", default="1", show_default=True,
        help="Model replicas: a number, or auto (autoscaling from 1 to --max-replicas).")
@option("--max-replicas", type=click.IntRange(min=1), default=4, show_default=True,
        help="Most model replicas with --replicas auto.")
@option("--replica-cpus", type=float, default=0.5, show_default=True,
        help="Ray CPUs reserved per model replica (fractional is fine).")
@option("--replica-gpus", type=float, default=None,
        help="GPUs per model replica; default 1 when the model runs on CUDA, else 0.")
@option("--api-key", envvar=["SANYU_SERVE_API_KEY", "SANYU_API_KEY"], default=None,
        help="Require `Authorization: Bearer KEY` on /v1 and the API schema. Visible to every "
             "user in `ps`: prefer --api-key-file or the environment variable.")
@option("--api-key-file", type=click.File("r", encoding="utf-8"), default=None,
        help="Read the API key from this file (its first line), e.g. a secret mounted 0600.")
@option("--max-upload-mb", type=click.FloatRange(min=0, min_open=True), default=200,
        show_default=True, help="Largest request body, checked while it streams in.")
@option("--timeout", "request_timeout_s", type=float, default=900, show_default=True,
        help="Seconds before a transcription request is answered 504.")
@option("--max-pending-requests", type=click.IntRange(min=1), default=128, show_default=True,
        help="Transcription requests in progress at once; more are answered 429 (Retry-After).")
@option("--max-queued-jobs", type=click.IntRange(min=1), default=32, show_default=True,
        help="Jobs queued or running at once; more are answered 429.")
@option("--max-spool-mb", type=click.FloatRange(min=0, min_open=True), default=2048,
        show_default=True, help="Uploads held on disk at once (requests and jobs); past it, 429.")
@option("--job-timeout", "job_timeout_s", type=click.FloatRange(min=0, min_open=True),
        default=12 * 3600, show_default=True, help="Seconds a job may run before it fails.")
@option("--max-batch-size", type=click.IntRange(min=1), default=8, show_default=True,
        help="Requests batched together on a replica (@serve.batch).")
@option("--max-batch-audio", "max_batch_audio_s", type=float, default=300, show_default=True,
        help="Seconds of audio per model call; larger batches are split.")
@option("--batch-wait-ms", type=float, default=100, show_default=True,
        help="How long a batch waits to fill.")
@option("--output", default="sanyu-jobs", show_default=True,
        help="Folder or fsspec URL where /v1/jobs results are written.")
@option("--input-root", "input_roots", multiple=True,
        help="Folder or storage URL prefix /v1/jobs may read a `uri` from (repeatable); "
             "none: jobs take uploads only.")
@option("--storage-option", "storage_options", multiple=True, metavar="KEY=VALUE",
        callback=lambda ctx, param, value: parse_storage_options(value),
        help="fsspec option for s3:// job inputs and outputs, e.g. endpoint_url=http://host:9000 "
             "(repeatable).")
@option("--spool-dir", default=None,
        help="Folder for uploads while they are read and transcribed (removed after each); "
             "default: the system's temporary folder.")
@option("--preload-diarizer/--lazy-diarizer", default=True, show_default=True,
        help="Load the diarization model at start (readiness waits for it).")
@model_options
@transcribe_options
@log_option
def serve_command(host, port, address, batch_wait_ms, glossary, api_key_file, **kwargs):
    """Serve transcription over HTTP (Ray Serve): an OpenAI-compatible
    POST /v1/audio/transcriptions, async POST/GET /v1/jobs, /healthz and /readyz.

    The transcription options below are every request's defaults; requests may override
    language, prompt, script, diarization and speaker counts.

    Without --address, Ray runs here with every port on 127.0.0.1; only the HTTP endpoint
    follows --host. SIGTERM or Ctrl-C stops the server and every process it started.
    """
    # Ray Serve and FastAPI load only for this command (seconds, and an optional extra).
    from sanyu.serve import ServeConfig
    from sanyu.serve.server import serve_forever

    kwargs["speaker_names"] = speaker_names(kwargs.pop("speaker_names"), kwargs.pop("speaker_names_file"))
    if api_key_file is not None:
        if kwargs["api_key"]:
            raise click.UsageError("give the API key once: --api-key (or its variable) or --api-key-file")
        kwargs["api_key"] = (api_key_file.readline().strip() or None)
        if kwargs["api_key"] is None:
            raise click.BadParameter("the file's first line is empty", param_hint="--api-key-file")
    try:
        config = ServeConfig(
            **kwargs, glossary=read_glossary(glossary), batch_wait_timeout_s=batch_wait_ms / 1000
        )
    except ValueError as exc:  # pydantic's ValidationError: one line per bad field
        errors = exc.errors() if hasattr(exc, "errors") else [{"loc": (), "msg": str(exc)}]
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'options'}: {e['msg']}" for e in errors)
        raise click.UsageError(problems) from None
    with command_process():
        serve_forever(config, host, port, address, echo=lambda line: click.echo(line, err=True))
