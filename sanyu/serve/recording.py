"""One recording on the server, from an open file to a transcript, in pieces.

    MediaFile ──▶ sanyu.pieces (stream_audio: decoded as it streams, cut at pauses)
              ──▶ SanyuModel.transcribe, one call per piece, at most WINDOW in flight
              ──▶ merge_pieces ──▶ (diarized whole, when asked and in several pieces)

A recording of at most 1.25 pieces is one piece, sent as an interactive request. A longer one
first takes a long-recording turn (`sanyu.serve.admission`), and its pieces go to the model as
bulk work, which the model serves only when no interactive request waits
(`sanyu.serve.batching.Coalescer`). So no process holds a long recording whole (the ingress
holds a few pieces of it, the model one), and a short request waits at most for the piece the
model is on. Jobs send even a short recording as bulk work.

Diarizing a recording of several pieces needs it whole, for speaker labels that hold
throughout: it is decoded again (bounded by ``max_diarize_audio_s``) and diarized on a model
replica beside transcription.

Cancelling the awaiting task (client gone, deadline) kills ffmpeg and cancels the calls in
flight.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections import deque
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor

from ray.serve.handle import DeploymentHandle, DeploymentResponse

from sanyu.audio import Audio, Cancel, MediaFile, decode_audio
from sanyu.errors import AudioError
from sanyu.options import TranscribeOptions
from sanyu.pieces import Piece, Pieces, merge_pieces, shift_transcript
from sanyu.schema import Transcript
from sanyu.serve.admission import Admission
from sanyu.serve.config import ServeConfig
from sanyu.serve.errors import APIError, bad_request
from sanyu.serve.upload import audio_error

log = logging.getLogger("sanyu.serve")

WINDOW = 2  # pieces of one recording on their way to the model at once
DECODE_THREADS = 16  # ffmpeg readers of one ingress replica (each mostly waits on its pipe)


class Recordings:
    """Transcribes recordings through the model deployment (see the module doc)."""

    def __init__(self, model: DeploymentHandle, config: ServeConfig, admission: Admission):
        self.model, self.config, self.admission = model, config, admission
        self.executor = ThreadPoolExecutor(DECODE_THREADS, thread_name_prefix="sanyu-decode")

    async def transcribe(self, media: MediaFile, options: TranscribeOptions, max_duration: float,
                         *, bulk: bool = False, too_long_hint: str = "") -> Transcript:
        """The transcript of ``media``; APIError 400 naming the file for bad audio, 500 when
        the model fails."""
        cancel = Cancel()
        try:
            pieces = await self._run(
                cancel, Pieces, media, self.config.piece_seconds, max_duration, cancel=cancel
            )
        except AudioError as exc:
            raise audio_error(exc, too_long_hint) from None
        declared = pieces.info.duration or 0.0
        if options.diarize and declared > self.config.max_diarize_audio_s:
            pieces.close()
            raise self._too_long_to_diarize(media)
        async with contextlib.AsyncExitStack() as stack:
            stack.callback(_close, pieces)
            transcripts = await self._pieces_to_model(pieces, cancel, options, bulk, stack,
                                                      too_long_hint)
        if len(transcripts) == 1:
            transcript = transcripts[0]
        else:
            transcript = merge_pieces(transcripts)
            if options.diarize:
                transcript = await self._diarize_whole(media, transcript, options)
        transcript.source = media.name
        return transcript

    async def _pieces_to_model(self, pieces: Pieces, cancel: Cancel, options: TranscribeOptions,
                               bulk: bool, stack: contextlib.AsyncExitStack,
                               too_long_hint: str) -> list[Transcript]:
        inflight: deque[tuple[float, DeploymentResponse]] = deque()
        transcripts: list[Transcript] = []
        asr = options
        try:
            async for piece in self._decoded(pieces, cancel, too_long_hint):
                if not piece.last and asr is options:  # the first of several: a long recording
                    await stack.enter_async_context(self.admission.long_recording())
                    asr, bulk = options.with_(diarize=False), True
                audio = Audio(samples=piece.samples, source=pieces.name)
                inflight.append((piece.offset, self.model.transcribe.remote(audio, asr, bulk)))
                del audio, piece  # sent: only the model holds it now
                if len(inflight) >= WINDOW:
                    transcripts.append(await self._result(*inflight.popleft()))
            while inflight:
                transcripts.append(await self._result(*inflight.popleft()))
        except BaseException:
            for _, response in inflight:
                response.cancel()
            raise
        return transcripts

    async def _decoded(self, pieces: Pieces, cancel: Cancel, too_long_hint: str) -> AsyncIterator[Piece]:
        """The pieces, each decoded in a thread."""
        iterator = iter(pieces)
        try:
            while True:
                try:
                    piece = await self._run(cancel, next, iterator, None)
                except AudioError as exc:
                    raise audio_error(exc, too_long_hint) from None
                if piece is None:
                    return
                yield piece
        finally:
            cancel.cancel()
            with contextlib.suppress(Exception):
                iterator.close()

    async def _result(self, offset: float, response: DeploymentResponse) -> Transcript:
        try:
            transcript = await response
        except asyncio.CancelledError:
            response.cancel()
            raise
        except APIError:
            raise
        except Exception as exc:
            raise model_failure(exc) from None
        return shift_transcript(transcript, offset)

    async def _diarize_whole(self, media: MediaFile, transcript: Transcript,
                             options: TranscribeOptions) -> Transcript:
        cancel = Cancel()
        try:
            audio = await self._run(cancel, decode_audio, media, self.config.max_diarize_audio_s,
                                    cancel=cancel)
        except AudioError as exc:
            if exc.reason.startswith("too long"):
                raise self._too_long_to_diarize(media) from None
            raise audio_error(exc) from None
        response = self.model.diarize.remote(audio, transcript, options)
        del audio
        try:
            return await response
        except asyncio.CancelledError:
            response.cancel()
            raise
        except Exception as exc:
            raise model_failure(exc) from None

    def _too_long_to_diarize(self, media: MediaFile) -> APIError:
        limit = self.config.max_diarize_audio_s
        return bad_request(
            f"{media.name}: too long to diarize on this server (the limit is {limit / 3600:g} h); "
            "send it without diarize, or use sanyu batch", code="invalid_audio", param="diarize",
        )

    async def _run(self, switch: Cancel, function, /, *args, **kwargs):
        """``function`` in a decoding thread; cancelling the awaiting task kills its ffmpeg
        (``switch``) and waits for the thread to let go."""
        loop = asyncio.get_running_loop()
        future = loop.run_in_executor(self.executor, functools.partial(function, *args, **kwargs))
        try:
            return await asyncio.shield(future)
        except asyncio.CancelledError:
            switch.cancel()
            with contextlib.suppress(BaseException):
                await asyncio.wait({future}, timeout=10.0)
            raise


def _close(pieces: Pieces) -> None:
    # ffmpeg is killed already when this runs after a cancellation; a decoding thread still
    # inside the stream (past the wait for it) must not turn the cancellation into another error
    with contextlib.suppress(Exception):
        pieces.close()


def model_failure(exc: BaseException) -> APIError:
    cause = getattr(exc, "cause", None) or exc
    log.error("transcription failed: %s", exc)
    return APIError(500, f"transcription failed: {type(cause).__name__}: {str(cause)[:500]}",
                    code="transcription_failed")
