"""Decoding real and bad inputs: every failure names the file and the reason."""

from __future__ import annotations

import os
import subprocess

import numpy as np
import pytest

from conftest import eval_clip, write_wav
from sanyu.audio import SAMPLE_RATE, decode_audio, probe_duration
from sanyu.errors import AudioError


def test_decodes_stereo_44k_flac_to_16k_mono():
    clip = eval_clip("en/en_jfk_whisper.flac")  # stereo, 44.1 kHz
    audio = decode_audio(clip)
    assert audio.sample_rate == SAMPLE_RATE
    assert audio.samples.dtype == np.float32 and audio.samples.ndim == 1
    assert audio.duration == pytest.approx(11.0, abs=0.05)
    assert 0.01 < float(np.abs(audio.samples).max()) < 1.5  # resampling may overshoot 1.0 a little


@pytest.mark.parametrize("codec,suffix", [("libmp3lame", ".mp3"), ("libopus", ".ogg"), ("aac", ".m4a")])
def test_decodes_compressed_formats(tmp_path, codec, suffix):
    source = eval_clip("zh/zh_aishell_BAC009S0724W0121.wav")
    target = tmp_path / f"clip{suffix}"
    subprocess.run(
        ["ffmpeg", "-nostdin", "-loglevel", "error", "-i", str(source), "-c:a", codec, str(target)],
        check=True,
    )
    assert decode_audio(target).duration == pytest.approx(4.28, abs=0.1)


def test_decodes_audio_track_of_a_video(tmp_path):
    source = eval_clip("en/en_ljspeech_LJ002-0020.wav")
    video = tmp_path / "meeting.mp4"
    subprocess.run(
        ["ffmpeg", "-nostdin", "-loglevel", "error", "-f", "lavfi", "-i", "color=c=black:s=64x64:d=2",
         "-i", str(source), "-shortest", "-c:v", "libx264", "-c:a", "aac", str(video)],
        check=True,
    )
    assert decode_audio(video).duration > 1.0


def _error(path, **kwargs) -> AudioError:
    with pytest.raises(AudioError) as info:
        decode_audio(path, **kwargs)
    assert str(path) in str(info.value)
    return info.value


def test_missing_file(tmp_path):
    assert "not found" in _error(tmp_path / "nope.wav").reason


def test_zero_length_file(tmp_path):
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    assert "empty file" in _error(empty).reason


def test_not_audio(tmp_path):
    text = tmp_path / "minutes.wav"
    text.write_text("this is a text file pretending to be audio\n" * 20)
    assert "not a readable media file" in _error(text).reason


@pytest.mark.parametrize(
    "name,output,reason",
    [("silent.mp4", ["-t", "1", "-c:v", "libx264"], "no audio stream"),
     ("still.png", ["-frames:v", "1"], "not a plain audio or video format")],  # images: not media
)
def test_pictures_without_sound(tmp_path, name, output, reason):
    picture = tmp_path / name
    subprocess.run(
        ["ffmpeg", "-nostdin", "-loglevel", "error", "-f", "lavfi", "-i", "color=c=red:s=16x16",
         *output, str(picture)],
        check=True,
    )
    assert reason in _error(picture).reason


def test_directory_is_rejected(tmp_path):
    assert "not a regular file" in _error(tmp_path).reason


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their mode")
def test_unreadable_file(tmp_path):
    locked = write_wav(tmp_path / "locked.wav", np.zeros(16000, dtype=np.float32))
    locked.chmod(0)
    assert "permission denied" in _error(locked).reason


def test_truncated_wav(tmp_path):
    whole = eval_clip("yue/yue_sherpa_yue-6.wav").read_bytes()  # 30 s
    cut = tmp_path / "cut.wav"
    cut.write_bytes(whole[: len(whole) // 5])  # header still claims 30 s
    assert "truncated" in _error(cut).reason


def test_header_only_wav(tmp_path):
    header = tmp_path / "header.wav"
    header.write_bytes(eval_clip("yue/yue_sherpa_yue-6.wav").read_bytes()[:44])
    reason = _error(header).reason
    assert "not a readable media file" in reason or "zero-length" in reason or "truncated" in reason


def test_too_long_is_refused_before_decoding(tmp_path):
    clip = eval_clip("yue/yue_sherpa_yue-6.wav")
    assert "too long" in _error(clip, max_duration=10.0).reason


def test_other_sample_rates_are_resampled(tmp_path):
    tone = np.sin(2 * np.pi * 440 * np.arange(8000 * 2) / 8000).astype(np.float32) * 0.5
    path = write_wav(tmp_path / "8k.wav", tone, sample_rate=8000)
    audio = decode_audio(path)
    assert audio.duration == pytest.approx(2.0, abs=0.01)
    assert len(audio.samples) == 32000


def test_silence_decodes_to_silence(tmp_path):
    path = write_wav(tmp_path / "silence.wav", np.zeros(16000 * 3, dtype=np.float32))
    audio = decode_audio(path)
    assert audio.duration == pytest.approx(3.0) and not audio.samples.any()


@pytest.mark.parametrize(
    "name",
    ["concat:a.wav|b.wav", "http:evil.wav", "-i evil.wav", "$(touch pwned).wav", "會議 錄音 (1).wav",
     "pipe:0", "line\nbreak.wav"],
)
def test_hostile_names_are_plain_local_files(tmp_path, name, monkeypatch):
    monkeypatch.chdir(tmp_path)
    source = eval_clip("en/en_ljspeech_LJ002-0020.wav")
    path = tmp_path / name
    path.write_bytes(source.read_bytes())
    assert decode_audio(name).duration == pytest.approx(1.54, abs=0.05)
    assert probe_duration(name) == pytest.approx(1.54, abs=0.05)
    assert not (tmp_path / "pwned").exists()


def test_protocol_urls_never_reach_ffmpeg(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for url in ("http://127.0.0.1:9/x.wav", "concat:/etc/passwd", "file:/etc/passwd"):
        with pytest.raises(AudioError):
            decode_audio(url)
