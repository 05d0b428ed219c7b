"""The library API: the one code path the CLI, the Ray batch job and the HTTP endpoint all call."""

from __future__ import annotations

import os
import threading
from functools import cached_property
from typing import TYPE_CHECKING

from sanyu.audio import Audio, decode_audio
from sanyu.diarize.merge import apply_diarization
from sanyu.options import ModelOptions, TranscribeOptions
from sanyu.schema import Transcript

if TYPE_CHECKING:
    from sanyu.transcribe.speech import SpeechPlan


class Transcriber:
    """Holds loaded models (Whisper, and the diarization pipeline once asked for) for many inputs.

    Models load lazily, once per instance: a Ray actor or a Serve replica keeps one Transcriber.
    """

    def __init__(self, model_options: ModelOptions | None = None):
        self.model_options = model_options or ModelOptions()
        self._lock = threading.Lock()

    # The engine and the diarizer import CTranslate2, torch and pyannote.audio (seconds, and
    # hundreds of MB): only when a model is first used.
    @cached_property
    def engine(self):
        from sanyu.transcribe.engine import WhisperEngine

        return WhisperEngine(self.model_options)

    @cached_property
    def diarizer(self):
        from sanyu.diarize.pipeline import Diarizer

        return Diarizer(device=self.model_options.device)

    def transcribe_audio(self, audio: Audio, options: TranscribeOptions | None = None) -> Transcript:
        return self.transcribe_many([audio], options)[0]

    def transcribe_file(
        self, path: str | os.PathLike, options: TranscribeOptions | None = None
    ) -> Transcript:
        return self.transcribe_audio(decode_audio(path), options)

    def transcribe_many(
        self, audios: list[Audio], options: TranscribeOptions | None = None,
        plans: list[SpeechPlan] | None = None,
    ) -> list[Transcript]:
        """Transcribe several recordings, their speech windows batched together on the model.

        ``plans``: each recording's speech regions and window features, when they were worked
        out ahead (`sanyu.transcribe.speech.plan_speech`; the batch job does, in CPU tasks)."""
        options = options or TranscribeOptions()
        with self._lock:
            transcripts = self.engine.transcribe_many(audios, options, plans)
            if options.diarize:
                transcripts = [self.diarize(audio, t, options) for audio, t in zip(audios, transcripts)]
        return transcripts

    def diarize(self, audio: Audio, transcript: Transcript, options: TranscribeOptions) -> Transcript:
        """Put speakers on `transcript` of `audio` (what `transcribe_many` does with diarize=True),
        and keep the diarizer's turns in it (`apply_diarization`)."""
        diarization = self.diarizer.diarize(
            audio,
            num_speakers=options.num_speakers,
            min_speakers=options.min_speakers,
            max_speakers=options.max_speakers,
        )
        return apply_diarization(transcript, diarization)


_shared: dict[ModelOptions, Transcriber] = {}


def get_transcriber(model_options: ModelOptions | None = None) -> Transcriber:
    """A process-wide Transcriber per model setting, so repeated calls reuse loaded models."""
    model_options = model_options or ModelOptions()
    if model_options not in _shared:
        _shared[model_options] = Transcriber(model_options)
    return _shared[model_options]


def transcribe_file(
    path: str | os.PathLike,
    options: TranscribeOptions | None = None,
    model_options: ModelOptions | None = None,
) -> Transcript:
    """Transcribe one local audio or video file."""
    return get_transcriber(model_options).transcribe_file(path, options)
