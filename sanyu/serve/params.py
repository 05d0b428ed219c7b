"""Request parameters: OpenAI's form fields and Sanyu's extras, checked and turned into options.

OpenAI fields: ``model``, ``language``, ``prompt``, ``response_format``, ``temperature``
(accepted, not used: decoding is beam search with Sanyu's own fallback), ``timestamp_granularities[]``,
``known_speaker_names[]`` (names for SPEAKER_00, SPEAKER_01, ... in speaker order, one per element),
``keywords[]`` (hotwords), ``stream`` (only false). Sanyu extras: ``diarize``, ``num_speakers``, ``min_speakers``,
``max_speakers`` (the server's, from ``sanyu serve``, where a request names no count), ``script``,
``mandarin_script``, ``speaker_names`` (comma-separated), ``hotwords``.

``model``: the server has one loaded Whisper model; any name (``whisper-1``, ``base``,
``large-v3``...) is accepted and served by it, and the response names the model that ran.
"""

from __future__ import annotations

from dataclasses import dataclass

from sanyu.options import (
    MANDARIN_SCRIPTS, SCRIPTS, TranscribeOptions, language_code, speaker_counts_problem,
)
from sanyu.serve.errors import bad_request
from sanyu.serve.formats import RESPONSE_FORMATS
from sanyu.serve.upload import Form

GRANULARITIES = ("segment", "word")
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def parse_language(value: str | None, default: str) -> str:
    """A request's language (``default``, the server's, where it names none)."""
    if value is None or not value.strip():
        return default
    try:
        return language_code(value)
    except ValueError as exc:
        raise bad_request(str(exc), code="unsupported_language", param="language") from None


def parse_bool(value: str | None, name: str, default: bool = False) -> bool:
    if value is None:
        return default
    key = value.strip().lower()
    if key in _TRUE:
        return True
    if key in _FALSE:
        return False
    raise bad_request(f"{name} must be true or false, not {value!r}", param=name)


def parse_int(value: str | None, name: str, minimum: int = 1, maximum: int = 64) -> int | None:
    if value is None or not value.strip():
        return None
    try:
        number = int(value)
    except ValueError:
        raise bad_request(f"{name} must be a whole number, not {value!r}", param=name) from None
    if not minimum <= number <= maximum:
        raise bad_request(f"{name} must be between {minimum} and {maximum}", param=name)
    return number


def parse_choice(value: str | None, name: str, choices: tuple[str, ...], default: str) -> str:
    if value is None or not value.strip():
        return default
    key = value.strip().lower()
    if key not in choices:
        raise bad_request(f"{name} must be one of {', '.join(choices)}, not {value!r}", param=name)
    return key


def _each(values: list[str]) -> tuple[str, ...]:
    """One entry per array element, as OpenAI's ``known_speaker_names[]`` and ``keywords[]``
    are: "CHAN, Tai-man" is one name."""
    return tuple(value.strip() for value in values if value.strip())


def _names(values: list[str]) -> tuple[str, ...]:
    """Comma-separated entries (Sanyu's ``speaker_names``, like the CLI's --speaker-names)."""
    return tuple(name.strip() for value in values for name in value.split(",") if name.strip())


def _speaker_counts(form: Form, defaults: TranscribeOptions) -> tuple[int | None, int | None, int | None]:
    """(num, min, max) speakers: the request's where it gives any, else the server's."""
    counts = tuple(parse_int(form.get(name), name) for name in ("num_speakers", "min_speakers", "max_speakers"))
    if not any(counts):
        counts = (defaults.num_speakers, defaults.min_speakers, defaults.max_speakers)
    if problem := speaker_counts_problem(*counts):
        raise bad_request(problem[1], param=problem[0])
    return counts


@dataclass(frozen=True)
class TranscriptionRequest:
    """What one request asks: the options for the model, and how to answer."""

    options: TranscribeOptions
    response_format: str = "json"
    granularities: tuple[str, ...] = ()
    model: str | None = None


def parse_request(form: Form, defaults: TranscribeOptions, allow_diarize: bool = True) -> TranscriptionRequest:
    """Check every field and build the request; a 400 naming the field otherwise."""
    response_format = parse_choice(form.get("response_format"), "response_format", RESPONSE_FORMATS, "json")
    granularities = tuple(
        dict.fromkeys(
            parse_choice(value, "timestamp_granularities[]", GRANULARITIES, "segment")
            for value in form.getlist("timestamp_granularities[]", "timestamp_granularities")
            if value.strip()
        )
    )
    if granularities and response_format != "verbose_json":
        raise bad_request(
            "timestamp_granularities[] needs response_format=verbose_json",
            param="timestamp_granularities[]",
        )
    if parse_bool(form.get("stream"), "stream"):
        raise bad_request("streaming is not supported: send stream=false", param="stream")
    temperature = form.get("temperature")
    if temperature is not None and temperature.strip():
        try:
            if not 0.0 <= float(temperature) <= 1.0:
                raise ValueError
        except ValueError:
            raise bad_request("temperature must be a number between 0 and 1", param="temperature") from None
    diarize = parse_bool(form.get("diarize"), "diarize", defaults.diarize)
    if response_format == "diarized_json":
        diarize = True
    if diarize and not allow_diarize:
        raise bad_request("this server does not run speaker diarization", param="diarize")
    num_speakers, min_speakers, max_speakers = _speaker_counts(form, defaults)
    speaker_names = (
        _each(form.getlist("known_speaker_names[]", "known_speaker_names"))
        + _names(form.getlist("speaker_names"))
    )
    hotwords = " ".join(
        [*(v.strip() for v in form.getlist("hotwords") if v.strip()),
         *_each(form.getlist("keywords[]", "keywords"))]
    )
    prompt = form.get("prompt")
    options = defaults.with_(
        language=parse_language(form.get("language"), defaults.language),
        script=parse_choice(form.get("script"), "script", SCRIPTS, defaults.script),
        mandarin_script=parse_choice(
            form.get("mandarin_script"), "mandarin_script", MANDARIN_SCRIPTS, defaults.mandarin_script
        ),
        prompt=prompt.strip() if prompt and prompt.strip() else defaults.prompt,
        hotwords=hotwords or defaults.hotwords,
        diarize=diarize,
        num_speakers=num_speakers if diarize else None,
        min_speakers=min_speakers if diarize else None,
        max_speakers=max_speakers if diarize else None,
        speaker_names=speaker_names or defaults.speaker_names,
    )
    model = form.get("model")
    return TranscriptionRequest(options, response_format, granularities, model.strip() if model else None)
