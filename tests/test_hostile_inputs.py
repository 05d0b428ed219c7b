"""#15 cases 4 and 7 on the command line and the batch job: a playlist or a concat script named
like a recording (meeting.wav naming another local file) is refused, by `sanyu transcribe` (a
real process) and by `sanyu batch` (a real local Ray), and the other inputs are still
transcribed; the key option of `sanyu serve` says where else a key can come from."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from conftest import eval_clip
from sanyu.runtime import set_offline_local_defaults
from test_batch import FAST, batch, ray_local  # noqa: F401  (the session's Ray)

REPO = Path(__file__).resolve().parents[1]


def _tricks(folder: Path, secret: Path) -> dict[str, bytes]:
    """Files named like recordings that would make ffmpeg read ``secret`` instead."""
    return {
        "meeting.wav": (f"#EXTM3U\n#EXT-X-TARGETDURATION:10\n#EXTINF:10,\nfile:{secret}\n"
                        "#EXT-X-ENDLIST\n").encode(),
        "minutes.mp3": f"ffconcat version 1.0\nfile '{secret}'\n".encode(),
        "notes.m4a": (f'<?xml version="1.0"?><MPD xmlns="urn:mpeg:dash:schema:mpd:2011"><Period>'
                      f'<AdaptationSet><Representation><BaseURL>{secret}</BaseURL></Representation>'
                      f"</AdaptationSet></Period></MPD>").encode(),
    }


def _tricked_folder(tmp_path: Path) -> Path:
    """A folder of playlists and scripts named like recordings, each naming a real recording
    outside it (elsewhere/secret.flac)."""
    secret = tmp_path / "elsewhere" / "secret.flac"
    secret.parent.mkdir()
    secret.write_bytes(eval_clip("en/en_jfk_whisper.flac").read_bytes())
    inputs = tmp_path / "in"
    inputs.mkdir()
    for name, data in _tricks(inputs, secret).items():
        (inputs / name).write_bytes(data)
    return inputs


def test_4_transcribe_refuses_playlists_named_like_recordings(tmp_path):
    inputs = _tricked_folder(tmp_path)
    (inputs / "real.wav").write_bytes(eval_clip("en/en_speechrecognition_english.wav").read_bytes())
    env = dict(os.environ)
    set_offline_local_defaults(env)
    done = subprocess.run(
        [sys.executable, "-m", "sanyu.cli", "transcribe", str(inputs), "-o", str(tmp_path / "out"),
         "-f", "txt", "--language", "en", "--beam-size", "1"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=600,
    )
    assert done.returncode == 1, done.stderr[-2000:]
    errors = "".join(done.stderr.split())  # the console wraps long lines
    for name in ("meeting.wav", "minutes.mp3", "notes.m4a"):
        assert f"{name}:notareadablemediafile" in errors, done.stderr[-3000:]
    written = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert len(written) == 1 and written[0].startswith("real-"), written
    assert "country" not in (tmp_path / "out" / written[0]).read_text().lower()


def test_4_batch_refuses_playlists_named_like_recordings(ray_local, tmp_path):  # noqa: F811
    inputs = _tricked_folder(tmp_path)
    summary = batch(str(inputs), tmp_path / "out")
    assert {Path(f.path).name: f.status for f in summary.files} == dict.fromkeys(
        ("meeting.wav", "minutes.mp3", "notes.m4a"), "failed")
    for result in summary.files:
        assert result.stage == "decode" and "not a readable media file" in result.reason, result


def test_7_the_key_option_says_it_shows_in_ps_and_offers_a_file_and_a_variable():
    from click.testing import CliRunner

    from sanyu.cli import main

    shown = " ".join(CliRunner().invoke(main, ["serve", "--help"]).output.split())
    assert "Visible to every user in `ps`" in shown and "--api-key-file" in shown
    assert "SANYU_SERVE_API_KEY" in shown and "SANYU_API_KEY" in shown
