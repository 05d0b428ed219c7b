"""Sanyu (三語): speaker-attributed transcription of Cantonese, Mandarin and English meetings."""

from sanyu.api import Transcriber, get_transcriber, transcribe_file
from sanyu.audio import Audio, decode_audio
from sanyu.errors import AudioError, ModelError, SanyuError
from sanyu.options import ModelOptions, TranscribeOptions
from sanyu.schema import Segment, SpeakerTurn, Transcript, Word

__version__ = "0.1.0"

__all__ = [
    "Audio",
    "AudioError",
    "ModelError",
    "ModelOptions",
    "SanyuError",
    "Segment",
    "SpeakerTurn",
    "Transcriber",
    "Transcript",
    "TranscribeOptions",
    "Word",
    "decode_audio",
    "get_transcriber",
    "transcribe_file",
]
