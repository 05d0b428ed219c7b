"""Audio in: every entry point decodes through here, to 16 kHz mono float32, with clear errors.

- ``media``: an input opened once and checked (regular file, not empty); ffmpeg reads that
  descriptor, never a name.
- ``process``: ffprobe/ffmpeg children with a deadline, a bounded log, and a kill switch
  (``Cancel``, ``run_cancellable`` for asyncio).
- ``probe``: ffprobe behind the protocol (``file`` only) and format (plain audio/video
  containers: no playlists or scripts) whitelists.
- ``decode``: whole files (``decode_audio``, ``decode_audio_async``) or block by block
  (``stream_audio``), bounded in length, memory and time.
"""

from __future__ import annotations

from sanyu.audio.decode import (
    BLOCK_SECONDS,
    DEFAULT_MAX_DURATION_S,
    SAMPLE_RATE,
    Audio,
    AudioStream,
    decode_audio,
    decode_audio_async,
    decode_timeout,
    shortfall_tolerance,
    stream_audio,
)
from sanyu.audio.media import MediaFile, Source
from sanyu.audio.probe import (
    ALLOWED_DEMUXERS,
    INPUT_WHITELISTS,
    PROBE_TIMEOUT_S,
    MediaInfo,
    probe,
    probe_duration,
)
from sanyu.audio.process import Cancel, run_cancellable

__all__ = [
    "ALLOWED_DEMUXERS", "BLOCK_SECONDS", "DEFAULT_MAX_DURATION_S",
    "INPUT_WHITELISTS", "PROBE_TIMEOUT_S", "SAMPLE_RATE", "Audio", "AudioStream", "Cancel",
    "MediaFile", "MediaInfo", "Source", "decode_audio", "decode_audio_async", "decode_timeout",
    "probe", "probe_duration", "run_cancellable", "shortfall_tolerance",
    "stream_audio",
]
