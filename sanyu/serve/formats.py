"""Transcripts in the response shapes of OpenAI's audio API, plus Sanyu's own formats.

``json``          ``{"text", "languages": [{"code"}], "usage"}`` (OpenAI's Transcription)
``verbose_json``  ``{"task", "language", "duration", "text", "segments", "words", "usage"}``
                  (OpenAI's TranscriptionVerbose) with Sanyu extras: ``languages`` (codes by
                  speech time), ``speakers``, and ``language``/``speaker`` on each segment and
                  word. ``language`` at the top is the main language's English name, as OpenAI
                  writes it ("english", "chinese", "cantonese"); the codes are in ``languages``.
``diarized_json`` ``{"task", "duration", "text", "segments": [{"type", "id", "start", "end",
                  "text", "speaker"}]}`` (OpenAI's TranscriptionDiarized)
``text``          the transcript text (OpenAI's plain text)
``srt``, ``vtt``  subtitles from :func:`sanyu.output.render`, with ``[Speaker]`` prefixes when
                  diarized
``txt``, ``tsv``, ``rttm``, ``sanyu_json``  Sanyu's own writers (``txt`` is the minutes layout
                  with times and speakers; ``sanyu_json`` the full Transcript JSON).
``docx``, ``md``  the minutes as a Word document (sent as an attachment) and as Markdown.
"""

from __future__ import annotations

import zlib
from typing import Any
from urllib.parse import quote

from fastapi.responses import JSONResponse, PlainTextResponse, Response

from sanyu.output import render_file, rttm_file_id
from sanyu.output.minutes import DOCX_MEDIA_TYPE
from sanyu.schema import Transcript

OPENAI_FORMATS = ("json", "text", "srt", "vtt", "verbose_json", "diarized_json")
SANYU_FORMATS = ("txt", "tsv", "rttm", "sanyu_json", "md", "docx")
RESPONSE_FORMATS = OPENAI_FORMATS + SANYU_FORMATS

LANGUAGE_NAMES = {
    "yue": "cantonese", "zh": "chinese", "en": "english", "ja": "japanese", "ko": "korean",
    "fr": "french", "de": "german", "es": "spanish", "it": "italian", "pt": "portuguese",
    "ru": "russian", "vi": "vietnamese", "th": "thai", "id": "indonesian", "ms": "malay",
    "hi": "hindi", "ar": "arabic", "tl": "tagalog", "nl": "dutch",
}

_MEDIA_TYPES = {
    "text": "text/plain; charset=utf-8",
    "txt": "text/plain; charset=utf-8",
    "srt": "application/x-subrip; charset=utf-8",
    "vtt": "text/vtt; charset=utf-8",
    "tsv": "text/tab-separated-values; charset=utf-8",
    "rttm": "text/plain; charset=utf-8",
    "md": "text/markdown; charset=utf-8",
    "docx": DOCX_MEDIA_TYPE,
}


def _compression_ratio(text: str) -> float:
    data = text.encode("utf-8")
    return round(len(data) / len(zlib.compress(data)), 4) if data else 0.0


def _number(value: float | None, default: float = 0.0) -> float:
    return default if value is None else float(value)


def _usage(transcript: Transcript) -> dict[str, Any]:
    return {"type": "duration", "seconds": round(transcript.duration, 3)}


def to_json(transcript: Transcript) -> dict[str, Any]:
    return {
        "text": transcript.text,
        "languages": [{"code": code} for code in transcript.languages],
        "usage": _usage(transcript),
    }


def to_verbose_json(
    transcript: Transcript, segments: bool = True, words: bool = False
) -> dict[str, Any]:
    main = transcript.languages[0] if transcript.languages else ""
    body: dict[str, Any] = {
        "task": "transcribe",
        "language": LANGUAGE_NAMES.get(main, main),
        "duration": round(transcript.duration, 3),
        "text": transcript.text,
        "languages": list(transcript.languages),
        "speakers": list(transcript.speakers),
        "model": transcript.model,
        "usage": _usage(transcript),
    }
    if segments:
        body["segments"] = [
            {
                "id": index,
                "seek": int(round(segment.start * 100)),  # in 10 ms frames, as Whisper counts
                "start": segment.start,
                "end": segment.end,
                "text": segment.text,
                "tokens": [],  # token ids are not kept (Sanyu decodes in batches)
                "temperature": 0.0,
                "avg_logprob": _number(segment.avg_logprob),
                "compression_ratio": _compression_ratio(segment.text),
                "no_speech_prob": _number(segment.no_speech_prob),
                "language": segment.language,
                "speaker": segment.speaker,
            }
            for index, segment in enumerate(transcript.segments)
        ]
    if words:
        body["words"] = [
            {
                "word": word.text,
                "start": word.start,
                "end": word.end,
                "probability": word.probability,
                "language": word.language or segment.language,
                "speaker": word.speaker or segment.speaker,
            }
            for segment in transcript.segments
            for word in segment.words
        ]
    return body


def to_diarized_json(transcript: Transcript) -> dict[str, Any]:
    return {
        "task": "transcribe",
        "duration": round(transcript.duration, 3),
        "text": transcript.text,
        "segments": [
            {
                "type": "transcript.text.segment",
                "id": f"seg_{index}",
                "start": segment.start,
                "end": segment.end,
                "text": segment.text,
                "speaker": segment.speaker or "",
                "language": segment.language,
            }
            for index, segment in enumerate(transcript.segments)
        ],
        "usage": _usage(transcript),
    }


def render_response(
    transcript: Transcript,
    response_format: str,
    granularities: tuple[str, ...] = (),
    speaker_names: tuple[str, ...] = (),
) -> Response:
    """The HTTP response for one transcript in the asked format (validated beforehand)."""
    if response_format == "json":
        return JSONResponse(to_json(transcript))
    if response_format == "verbose_json":
        segments = "segment" in granularities or not granularities
        return JSONResponse(to_verbose_json(transcript, segments=segments, words="word" in granularities))
    if response_format == "diarized_json":
        return JSONResponse(to_diarized_json(transcript))
    if response_format == "sanyu_json":
        return JSONResponse(transcript.to_dict())
    if response_format == "text":
        return PlainTextResponse(transcript.text + "\n", media_type=_MEDIA_TYPES["text"])
    body = render_file(transcript, response_format, speaker_names)
    headers = {}
    if response_format == "docx":
        name = rttm_file_id(transcript.source) + ".docx"
        plain = "".join(c if c.isascii() and c.isprintable() and c not in '"\\' else "_" for c in name)
        headers["Content-Disposition"] = f"attachment; filename=\"{plain}\"; filename*=UTF-8''{quote(name)}"
    return Response(body, media_type=_MEDIA_TYPES[response_format], headers=headers)
