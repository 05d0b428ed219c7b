"""``sanyu batch``: the inputs through the Ray Data job (`sanyu.pipeline`), resumably."""

from __future__ import annotations

import sys

import click
from rich.console import Console

from sanyu.cli.options import (
    build_options, input_options, list_or_exit, log_option, model_options, option, output_options,
    parse_formats_option, transcribe_options,
)
from sanyu.lock import OutputBusy
from sanyu.pipeline.settings import DEFAULT_PIECE_SECONDS, BatchSettings
from sanyu.processes import command_process

_DEFAULTS = BatchSettings(output="")


@click.command("batch")
@input_options
@output_options
@option("--address", default=None,
        help="Ray cluster to join: auto, HOST:PORT or ray://HOST:10001. "
             "Default: a local Ray on 127.0.0.1.")
@option("--workers", type=click.IntRange(min=1), default=None,
        help="Whisper workers. Default: one per GPU; on CPU one per core (--cpu-threads "
             "each, 1 by default), as many as fit in half the memory. With --diarize, "
             "one diarizer per two workers.")
@option("--files-per-batch", type=click.IntRange(min=1), default=_DEFAULTS.files_per_batch,
        help="Recordings (or pieces) each worker transcribes together. Default: 1 on CPU "
             "workers (no worker left alone with a batch at the end), 4 on GPUs (fuller "
             "batches).")
@option("--piece-minutes", type=click.FloatRange(min=0.5), default=DEFAULT_PIECE_SECONDS / 60,
        show_default=True, help="Longer recordings are cut at pauses into pieces of about this length.")
@option("--progress/--no-progress", default=_DEFAULTS.progress, show_default=True,
        help="Show live progress (files, audio hours, ETA) on stderr.")
@model_options
@transcribe_options
@log_option
def batch_command(inputs, storage_options, output, formats, address, workers, files_per_batch,
          piece_minutes, progress, **kwargs):
    """Transcribe every recording of INPUTS with Ray Data into OUTPUT, resumably.

    INPUTS: folders (searched recursively), globs, manifests (.csv/.tsv/.jsonl with `path` and
    optional `language`, `num_speakers`), s3:// prefixes or files, named as `sanyu transcribe`
    names them. Inputs already done with the same content and settings are skipped; the exit
    code is 1 if any input failed. One run at a time writes to an OUTPUT (a second refuses).

    Without --address, Ray runs here with every port on 127.0.0.1. SIGTERM or Ctrl-C stops the
    run and every process it started; running the command again goes on from there.
    """
    # Ray and Ray Data load only for this command (seconds, and an optional extra).
    from sanyu.pipeline.driver import run_batch
    from sanyu.pipeline.progress import print_summary

    formats = parse_formats_option(formats)
    models, options = build_options(kwargs)
    items = list_or_exit(inputs, storage_options)
    settings = BatchSettings(
        output=output, model=models, options=options, formats=formats,
        storage_options=storage_options, address=address, workers=workers,
        files_per_batch=files_per_batch, piece_seconds=piece_minutes * 60, progress=progress,
    )
    console = Console(stderr=True)
    try:
        with command_process():
            summary = run_batch(items, settings, console)
    except OutputBusy as exc:
        raise click.ClickException(str(exc)) from None
    except KeyboardInterrupt:
        console.print("interrupted: run the same command again to go on where this run stopped")
        sys.exit(130)
    print_summary(summary, console)
    sys.exit(1 if summary.failed else 0)
