"""What a transcription job is asked to do; shared by the CLI, the batch job and the HTTP API."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

LANGUAGES = ("auto", "yue", "zh", "en")
# What people write for the three languages, as the CLI, manifests and HTTP requests accept it.
LANGUAGE_ALIASES = {
    "cantonese": "yue", "zh-hk": "yue", "zh-yue": "yue", "yue-hk": "yue", "yue-hant": "yue",
    "mandarin": "zh", "chinese": "zh", "cmn": "zh", "zh-cn": "zh", "zh-tw": "zh", "zh-hans": "zh",
    "zh-hant": "zh", "english": "en", "en-us": "en", "en-gb": "en",
}
SCRIPTS = ("auto", "traditional", "simplified", "original")
MANDARIN_SCRIPTS = ("simplified", "traditional")


def language_code(value: str) -> str:
    """``auto`` or the Whisper code of a language as a user writes it ("Cantonese", "zh-HK",
    "YUE"); ValueError naming the value otherwise."""
    from sanyu.adapters.faster_whisper import language_codes

    key = value.strip().lower().replace("_", "-")
    language = LANGUAGE_ALIASES.get(key, key)
    if language != "auto" and language not in language_codes():
        raise ValueError(
            f"unsupported language {value!r}: use auto, yue, zh, en or another Whisper language code"
        )
    return language


def speaker_counts_problem(
    number: int | None, least: int | None, most: int | None
) -> tuple[str, str] | None:
    """(the field at fault, why) when speaker counts contradict each other, else None."""
    if least and most and least > most:
        return "min_speakers", "min_speakers is larger than max_speakers"
    if number and ((least and number < least) or (most and number > most)):
        return "num_speakers", "num_speakers is outside min_speakers..max_speakers"
    return None


@dataclass(frozen=True)
class ModelOptions:
    """What is loaded once per process (or Ray actor): changing these means loading models again."""

    model: str = "base"
    device: str = "auto"  # auto | cpu | cuda
    compute_type: str = "auto"  # auto: int8 on CPU, float16 on GPU
    cpu_threads: int = 0  # 0: CTranslate2's default


@dataclass(frozen=True)
class TranscribeOptions:
    """What may change from one file or request to the next with the same loaded models."""

    language: str = "auto"  # auto | yue | zh | en, or any Whisper language code
    # Languages `auto` chooses from: a meeting's three by default, so that Cantonese is not
    # misheard as Japanese or Vietnamese; an empty tuple allows every language the model has.
    candidate_languages: tuple[str, ...] = ("yue", "zh", "en")
    script: str = "auto"  # auto | traditional | simplified | original
    mandarin_script: str = "simplified"
    beam_size: int = 5
    vad: bool = True
    word_timestamps: bool = True
    prompt: str | None = None
    hotwords: str | None = None
    glossary: tuple[str, ...] = ()
    # Windows encoded and decoded together; None: 8 on a CPU, 32 on a GPU (where a batch costs
    # little more than one window).
    batch_size: int | None = None
    diarize: bool = False
    num_speakers: int | None = None
    min_speakers: int | None = None
    max_speakers: int | None = None
    speaker_names: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.script not in SCRIPTS:
            raise ValueError(f"script must be one of {', '.join(SCRIPTS)}, not {self.script!r}")
        if self.mandarin_script not in MANDARIN_SCRIPTS:
            raise ValueError(
                f"mandarin_script must be one of {', '.join(MANDARIN_SCRIPTS)}, "
                f"not {self.mandarin_script!r}"
            )
        if self.beam_size < 1 or (self.batch_size is not None and self.batch_size < 1):
            raise ValueError("beam_size and batch_size must be at least 1")
        for name in ("num_speakers", "min_speakers", "max_speakers"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"{name} must be at least 1")
        # Only min against max: a manifest row's num_speakers may differ from the run's range,
        # and is that row's own setting.
        if problem := speaker_counts_problem(None, self.min_speakers, self.max_speakers):
            raise ValueError(problem[1])

    def with_(self, **changes: Any) -> TranscribeOptions:
        return replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TranscribeOptions:
        names = {f.name for f in fields(cls)}
        values = {k: tuple(v) if isinstance(v, list) else v for k, v in data.items() if k in names}
        return cls(**values)


def settings_key(model: ModelOptions, options: TranscribeOptions, fingerprint: dict | None = None) -> str:
    """A short stable hash of every setting that changes a transcript (for resumable jobs):
    the model and its compute type as asked, the options, and ``fingerprint``, what only the
    place the models run knows (their content, the compute type ``auto`` became, the piece
    length: `sanyu.models.fingerprint.result_fingerprint`)."""
    payload = {
        "model": model.model, "compute_type": model.compute_type, "options": options.to_dict(),
        "fingerprint": dict(fingerprint or {}),
    }
    blob = json.dumps(payload, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]
