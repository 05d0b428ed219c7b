"""``sanyu transcribe``: the inputs one after another in this process, with a progress bar."""

from __future__ import annotations

import logging
import sys
import time
from dataclasses import dataclass

import click
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from sanyu.api import Transcriber
from sanyu.audio import decode_audio
from sanyu.cli.options import (
    build_options, input_options, list_or_exit, log_option, model_options, option, output_options,
    parse_formats_option, transcribe_options,
)
from sanyu.errors import SanyuError
from sanyu.inputs import InputItem, local_copy
from sanyu.options import TranscribeOptions
from sanyu.output import write_outputs
from sanyu.schema import Dropped

log = logging.getLogger(__name__)


@dataclass
class FileOutcome:
    path: str
    duration: float = 0.0
    seconds: float = 0.0
    outputs: tuple[str, ...] = ()
    error: str | None = None
    dropped: tuple[Dropped, ...] = ()


@click.command("transcribe")
@input_options
@output_options
@model_options
@transcribe_options
@option("--debug/--no-debug", default=False, show_default=True,
        help="List every utterance that ended without text, with the guard that dropped it "
             "(the JSON output always counts them).")
@log_option
def transcribe_command(inputs, storage_options, output, formats, debug, **kwargs):
    """Transcribe INPUTS into OUTPUT: audio or video files, folders (searched recursively),
    globs, manifests (.csv/.tsv/.jsonl) or s3:// prefixes, named as `sanyu batch` names them.

    Every input ends written or reported; the exit code is 1 if any failed.
    """
    formats = parse_formats_option(formats)
    models, options = build_options(kwargs)
    items = list_or_exit(inputs, storage_options)
    console = Console(stderr=True)
    transcriber = Transcriber(models)
    outcomes: list[FileOutcome] = []
    started = time.perf_counter()
    with Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), TextColumn("{task.fields[status]}"),
        TimeElapsedColumn(), console=console, transient=False,
    ) as progress:
        task = progress.add_task("files", total=len(items), status="")
        for item in items:
            progress.update(task, status=escape(item.display.rsplit("/", 1)[-1]))
            outcome = _transcribe_one(transcriber, item, options, output, formats, storage_options)
            if outcome.error:
                console.print(f"[red]error[/red] {escape(outcome.error)}", highlight=False)
            outcomes.append(outcome)
            progress.advance(task)
    _print_summary(console, outcomes, time.perf_counter() - started, output)
    if debug:
        for o in outcomes:
            for d in o.dropped:
                console.print(f"dropped {o.path} {d.start:.2f}-{d.end:.2f} s: {d.reason}",
                              markup=False, highlight=False)
    sys.exit(1 if any(o.error for o in outcomes) else 0)


def _transcribe_one(
    transcriber: Transcriber, item: InputItem, options: TranscribeOptions, output: str,
    formats: tuple[str, ...], storage_options: dict,
) -> FileOutcome:
    outcome = FileOutcome(item.display)
    started = time.perf_counter()
    try:
        if item.problem:
            raise SanyuError(f"{item.display}: {item.problem}")
        per_input = options.with_(
            language=item.language or options.language,
            num_speakers=item.num_speakers or options.num_speakers,
        )
        with local_copy(item.uri, storage_options) as path:
            audio = decode_audio(path)
        audio.source = item.display
        outcome.duration = audio.duration
        transcript = transcriber.transcribe_audio(audio, per_input)
        outcome.dropped = tuple(transcript.dropped)
        outcome.outputs = tuple(
            write_outputs(transcript, output, item.stem, formats, per_input.speaker_names, storage_options)
        )
    except SanyuError as exc:
        outcome.error = str(exc)
    except Exception as exc:  # one bad file must not stop the others
        log.debug("transcribing %s failed", item.display, exc_info=True)
        outcome.error = f"{item.display}: {type(exc).__name__}: {exc}"
    outcome.seconds = time.perf_counter() - started
    return outcome


def _print_summary(console: Console, outcomes: list[FileOutcome], wall: float, output: str) -> None:
    table = Table(title="Sanyu transcription summary")
    for column in ("file", "audio", "wall", "RTF", "dropped", "result"):
        table.add_column(column)
    for o in outcomes:
        rtf = f"{o.seconds / o.duration:.2f}" if o.duration else "-"
        dropped = f"{len(o.dropped)} ({sum(d.duration for d in o.dropped):.1f} s)" if o.dropped else "0"
        table.add_row(
            escape(o.path), f"{o.duration:.1f} s", f"{o.seconds:.1f} s", rtf, dropped,
            "[red]failed[/red]" if o.error else "ok",
        )
    audio = sum(o.duration for o in outcomes)
    failed = sum(1 for o in outcomes if o.error)
    table.add_row(
        f"{len(outcomes)} files", f"{audio:.1f} s", f"{wall:.1f} s",
        f"{wall / audio:.2f}" if audio else "-", str(sum(len(o.dropped) for o in outcomes)),
        f"{len(outcomes) - failed} ok, {failed} failed",
        style="bold",
    )
    console.print(table)
    console.print(f"transcripts written to {output}", markup=False, highlight=False)
    for o in outcomes:
        for written in o.outputs:
            click.echo(written)
