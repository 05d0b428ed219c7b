"""ffprobe behind the whitelists: which container a file is, and how long it says it is."""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass

from sanyu.audio.media import MediaFile, Source, opened
from sanyu.audio.process import Cancel, Child
from sanyu.errors import AudioError

PROBE_TIMEOUT_S = 30.0
_PROBE_OUTPUT_BYTES = 1 << 20

# ffmpeg's demuxer names for plain audio/video containers. Every other format is refused, above
# all those that make ffmpeg open further files or URLs: HLS and DASH playlists, concat/ffconcat
# scripts, SDP, image sequences.
ALLOWED_DEMUXERS = (
    "wav", "w64", "flac", "mp3", "ogg", "matroska", "webm", "mov", "mp4", "m4a", "3gp", "3g2",
    "mj2", "aac", "avi", "asf", "amr", "amrnb", "amrwb", "caf", "aiff", "au", "mpeg", "mpegts",
    "mpegps", "flv", "wv", "ape", "tta", "mpc", "mpc8", "dts", "ac3", "eac3", "truehd", "mlp",
    "loas", "latm", "s16le", "opus", "shn", "voc", "xwma", "gsm", "sox", "rm", "nut",
)
# Input options for every ffprobe/ffmpeg call: local files only, plain containers only.
INPUT_WHITELISTS = ("-protocol_whitelist", "file", "-format_whitelist", ",".join(ALLOWED_DEMUXERS))
_WATCH = {
    "refused": re.compile(r"not on whitelist"),
    "estimated": re.compile(r"Estimating duration from bitrate"),
}


@dataclass(frozen=True)
class MediaInfo:
    """What the container says about a file's first audio stream.

    ``duration`` is the audio stream's own, else the container's (None when neither is
    given). ``exact`` is False when that figure cannot be held against the decoded length:
    estimated from the bitrate (an MP3 without a VBR header), or the container's length of a
    file that has other streams too (a video runs on after its sound ends).
    """

    format_name: str
    duration: float | None
    exact: bool


def probe(source: Source, *, timeout: float = PROBE_TIMEOUT_S, cancel: Cancel | None = None) -> MediaInfo:
    """The container of ``source`` and its declared audio duration, read by ffprobe restricted
    to local files and plain media demuxers. AudioError naming the file and the reason when it
    is unreadable, not a plain audio/video format (a playlist or script), or has no sound."""
    with opened(source) as media:
        return probe_media(media, timeout=timeout, cancel=cancel)


def probe_duration(path: Source) -> float | None:
    """Duration in seconds that the container declares for its first audio stream, if any."""
    return probe(path).duration


def probe_media(media: MediaFile, *, timeout: float, cancel: Cancel | None) -> MediaInfo:
    argv = [
        "ffprobe", "-hide_banner", "-v", "warning", *INPUT_WHITELISTS,
        "-show_entries", "format=format_name,duration:stream=codec_type,duration",
        "-of", "json", media.url(),
    ]
    with Child(argv, name=media.name, timeout=timeout, cancel=cancel, pass_fds=(media.fd,),
               watch=_WATCH) as child:
        output = child.read_all(_PROBE_OUTPUT_BYTES)
        code = child.wait()
    if code != 0:
        if "refused" in child.log.first:
            reason = "not a plain audio or video format: playlists, scripts and images are refused"
        else:
            reason = child.log.reason("format not recognised")
        raise AudioError(media.name, f"not a readable media file ({reason})")
    try:
        info = json.loads(output or b"{}")
    except ValueError:
        raise AudioError(media.name, "not a readable media file (ffprobe's answer was not JSON)") from None
    streams = info.get("streams") or []
    audio = [s for s in streams if s.get("codec_type") == "audio"]
    if not audio:
        raise AudioError(media.name, "no audio stream (not an audio or video file with sound)")
    container = info.get("format") or {}
    estimated = "estimated" in child.log.first
    duration, exact = _seconds(audio[0].get("duration")), not estimated
    if duration is None:
        duration = _seconds(container.get("duration"))
        exact = exact and len(audio) == len(streams)
    return MediaInfo(format_name=str(container.get("format_name", "")), duration=duration,
                     exact=exact and duration is not None)


def _seconds(value) -> float | None:
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        return None
    return seconds if math.isfinite(seconds) and seconds >= 0 else None
