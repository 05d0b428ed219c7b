"""The options the commands share, spelled the same everywhere, and how they become settings.

Every option can also be set from the environment (`Option`): ``SANYU_<COMMAND>_<OPTION>``
for one command (``SANYU_BATCH_MODEL=base``) or ``SANYU_<OPTION>`` for all of them
(``SANYU_MODEL=base``); ``--help`` lists both. A flag given on the command line wins.
"""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Callable
from pathlib import Path

import click

from sanyu import runtime
from sanyu.inputs import InputItem, list_inputs
from sanyu.options import (
    LANGUAGES, MANDARIN_SCRIPTS, SCRIPTS, ModelOptions, TranscribeOptions, language_code,
    speaker_counts_problem,
)
from sanyu.errors import SanyuError
from sanyu.output import ALL, FORMATS, parse_formats
from sanyu.output.speakers import read_names_file

ENV_PREFIX = "SANYU"
DEFAULT_OUTPUT = "transcripts"
DEFAULT_FORMATS = "txt,srt,json"
_MODEL = ModelOptions()  # the library's defaults are the command line's
_OPTIONS = TranscribeOptions()


class Option(click.Option):
    """A click option that is also read from ``SANYU_<COMMAND>_<OPTION>`` or ``SANYU_<OPTION>``
    (unless it names its own variables), and shows them in ``--help``. ``<OPTION>`` is the
    long flag's name: ``--storage-option`` is ``SANYU_STORAGE_OPTION``."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("show_envvar", True)
        super().__init__(*args, **kwargs)

    def envvars(self, ctx: click.Context) -> tuple[str, ...]:
        if self.envvar:
            return (self.envvar,) if isinstance(self.envvar, str) else tuple(self.envvar)
        flags = [flag for flag in self.opts if flag.startswith("--")]
        if not (self.allow_from_autoenv and ctx.auto_envvar_prefix and flags):
            return ()
        name = max(flags, key=len)[2:].upper().replace("-", "_")
        return tuple(dict.fromkeys((f"{ctx.auto_envvar_prefix}_{name}", f"{ENV_PREFIX}_{name}")))

    def resolve_envvar_value(self, ctx: click.Context) -> str | None:
        for name in self.envvars(ctx):
            if value := os.environ.get(name):
                return value
        return None

    def get_help_extra(self, ctx: click.Context):
        extra = super().get_help_extra(ctx)
        if self.show_envvar and (names := self.envvars(ctx)):
            extra["envvars"] = names
        return extra


def option(*names: str, **kwargs) -> Callable:
    """``click.option`` with `Option` (environment variables, shown in --help)."""
    return click.option(*names, cls=Option, **kwargs)


def apply(func: Callable, decorators: list[Callable]) -> Callable:
    for decorator in reversed(decorators):
        func = decorator(func)
    return func


def _configure_logging(ctx: click.Context, param: click.Parameter, value: str) -> str:
    runtime.configure_logging(value)
    return value


def log_option(func: Callable) -> Callable:
    """``--log-level``: Python logging, configured once, at once; Ray workers get the same."""
    return option(
        "--log-level", type=click.Choice(runtime.LOG_LEVELS, case_sensitive=False),
        default="warning", show_default=True, is_eager=True, expose_value=False,
        callback=_configure_logging,
        help="Log messages of this level and above to stderr (Ray workers too).",
    )(func)


def model_options(func: Callable) -> Callable:
    """Options that choose and load the models."""
    return apply(func, [
        option("--model", default=_MODEL.model, show_default=True,
               help="Registered name, local CTranslate2 directory, or hub id."),
        option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default=_MODEL.device,
               show_default=True, help="Where the models run; auto: a GPU when CTranslate2 sees one."),
        option("--compute-type", default=_MODEL.compute_type, show_default=True,
               help="CTranslate2 compute type; auto: int8 on CPU, float16 on GPU."),
        option("--cpu-threads", type=click.IntRange(min=0), default=_MODEL.cpu_threads,
               show_default=True,
               help="CTranslate2 threads per model. 0: CTranslate2's default (sanyu batch: "
                    "1 per worker, with a worker per core)."),
    ])


def _language(context, param, value: str) -> str:
    try:
        return language_code(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


def transcribe_options(func: Callable) -> Callable:
    """Options that shape each transcript."""
    return apply(func, [
        option("--language", default=_OPTIONS.language, show_default=True, callback=_language,
               help=f"{'|'.join(LANGUAGES)} or any Whisper code; a fixed one skips detection."),
        option("--script", type=click.Choice(SCRIPTS), default=_OPTIONS.script, show_default=True,
               help="auto: Cantonese in HK Traditional, Mandarin per --mandarin-script."),
        option("--mandarin-script", type=click.Choice(MANDARIN_SCRIPTS),
               default=_OPTIONS.mandarin_script, show_default=True,
               help="How Mandarin is written when --script is auto."),
        option("--prompt", default=None, help="Initial prompt for decoding."),
        option("--hotwords", default=None, help="Hotwords for decoding."),
        option("--glossary", type=click.Path(exists=True, dir_okay=False), default=None,
               help="File of terms, one per line (names, committee titles)."),
        option("--beam-size", type=click.IntRange(min=1), default=_OPTIONS.beam_size,
               show_default=True, help="Beam search width (1: greedy decoding, fastest)."),
        option("--batch-size", type=click.IntRange(min=1), default=None,
               help="Speech windows encoded and decoded together [default: 8 on a CPU, 32 on a "
                    "GPU]."),
        option("--vad/--no-vad", default=_OPTIONS.vad, show_default=True,
               help="Find speech with Silero VAD first and transcribe only that."),
        option("--diarize/--no-diarize", default=_OPTIONS.diarize, show_default=True,
               help="Label speakers with pyannote.audio."),
        option("--num-speakers", type=click.IntRange(min=1), default=None,
               help="Exact number of speakers, when known (with --diarize)."),
        option("--min-speakers", type=click.IntRange(min=1), default=None,
               help="At least this many speakers (with --diarize)."),
        option("--max-speakers", type=click.IntRange(min=1), default=None,
               help="At most this many speakers (with --diarize)."),
        option("--speaker-names", default=None,
               help="Comma-separated names for SPEAKER_00, SPEAKER_01, ..., or LABEL=Name "
                    "entries (SPEAKER_01=Secretary); these win over --speaker-names-file."),
        option("--speaker-names-file", type=click.Path(exists=True, dir_okay=False), default=None,
               help="File of LABEL=Name lines (SPEAKER_00=Chair); # starts a comment."),
    ])


def _output_aliases(func: Callable) -> Callable:
    """The old spellings, hidden: ``--output-dir`` for ``-o``, ``--formats`` for ``-f``."""

    @functools.wraps(func)
    def wrapper(*args, output_dir_alias=None, formats_alias=None, **kwargs):
        kwargs["output"] = output_dir_alias or kwargs["output"]
        kwargs["formats"] = formats_alias or kwargs["formats"]
        return func(*args, **kwargs)

    return apply(wrapper, [
        click.option("--output-dir", "output_dir_alias", hidden=True, allow_from_autoenv=False),
        click.option("--formats", "formats_alias", hidden=True, allow_from_autoenv=False),
    ])


def output_options(func: Callable) -> Callable:
    """Where transcripts go and in which formats (``sanyu transcribe`` and ``sanyu batch``)."""
    return apply(func, [
        option("-o", "--output", default=DEFAULT_OUTPUT, show_default=True,
               help="Folder or fsspec URL (s3://bucket/prefix) for the transcripts."),
        option("-f", "--format", "formats", default=DEFAULT_FORMATS, show_default=True,
               help=f"Comma-separated: {', '.join(FORMATS)}, or {ALL}."),
        _output_aliases,
    ])


def input_options(func: Callable) -> Callable:
    """INPUTS and how to read them (``sanyu transcribe`` and ``sanyu batch``)."""
    return apply(func, [
        click.argument("inputs", nargs=-1, required=True),
        option("--storage-option", "storage_options", multiple=True, metavar="KEY=VALUE",
               callback=lambda ctx, param, value: parse_storage_options(value),
               help="fsspec option for s3:// inputs and outputs, e.g. endpoint_url=http://host:9000 "
                    "(repeatable)."),
    ])


def parse_formats_option(value: str) -> tuple[str, ...]:
    try:
        formats = parse_formats(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="-f") from None
    if not formats:
        raise click.BadParameter(f"no format given; choose from {', '.join(FORMATS)} or {ALL}",
                                 param_hint="-f")
    return tuple(formats)


def parse_storage_options(pairs: tuple[str, ...]) -> dict:
    """KEY=VALUE pairs for fsspec; values that read as JSON (true, 3) are taken as such."""
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


def csv(value: str | None) -> tuple[str, ...]:
    return tuple(v.strip() for v in (value or "").split(",") if v.strip())


def read_glossary(path: str | None) -> tuple[str, ...]:
    """One term per line; blank lines and lines starting with # are skipped."""
    if not path:
        return ()
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    return tuple(line.strip() for line in lines if line.strip() and not line.startswith("#"))


def speaker_names(names: str | None, path: str | None) -> tuple[str, ...]:
    """The entries of the names file, then those of ``--speaker-names`` (which win: a later
    ``LABEL=Name`` entry names the label again)."""
    try:
        from_file = read_names_file(path) if path else ()
    except SanyuError as exc:
        raise click.BadParameter(str(exc), param_hint="--speaker-names-file") from None
    return from_file + csv(names)


def build_options(kwargs: dict) -> tuple[ModelOptions, TranscribeOptions]:
    """The model and transcription options out of a command's keyword arguments (removed)."""
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
            speaker_names=speaker_names(kwargs.pop("speaker_names"), kwargs.pop("speaker_names_file")),
        )
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None
    if problem := speaker_counts_problem(options.num_speakers, options.min_speakers, options.max_speakers):
        raise click.BadParameter(problem[1])
    return models, options


def list_or_exit(inputs: tuple[str, ...], storage_options: dict) -> list[InputItem]:
    """The inputs INPUTS name (`sanyu.inputs.list_inputs`); a usage error when one names
    nothing or none holds a recording."""
    try:
        items = list_inputs(inputs, storage_options)
    except (OSError, ValueError) as exc:
        raise click.UsageError(str(exc)) from None
    if not items:
        raise click.UsageError(f"no audio or video files found in {', '.join(inputs)}")
    return items
