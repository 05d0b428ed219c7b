"""`sanyu eval` on multi-speaker clips: DER at both collars with its split, and cpWER, per clip
and pooled (slow: transcribes two real recordings with the session's models)."""

from __future__ import annotations

import os

import pytest
from rich.console import Console

from conftest import eval_clip

pytestmark = pytest.mark.slow


def test_eval_reports_der_split_and_cpwer_per_clip_and_pooled(tmp_path, transcriber):
    from sanyu.evaluation.dataset import load_clips
    from sanyu.evaluation.report import print_report
    from sanyu.evaluation.runner import evaluate_clips
    from sanyu.options import TranscribeOptions

    (tmp_path / "multi").mkdir()
    for name in ("pyannote_sample", "en_fasterwhisper_stereo_diarization"):
        for path in eval_clip(f"multi/{name}.wav").parent.glob(f"{name}.*"):
            if path.suffix != ".txt":
                os.symlink(path, tmp_path / "multi" / path.name)
    clips = load_clips(tmp_path, ("multi",))
    options = TranscribeOptions(language="en", diarize=True)
    results = evaluate_clips(clips, transcriber, options, baseline=False)
    by_name = {r.clip.name: r for r in results}
    sample = by_name["pyannote_sample"]
    assert set(sample.der) == {0.25, 0.0}
    assert sample.der[0.25].rate <= sample.der[0.0].rate <= 0.3  # the collar forgives edges
    assert sample.der[0.0].total == pytest.approx(24.35, abs=0.01)  # reference speech, overlap twice
    assert sample.cpwer is not None and sample.cpwer.rate < 0.3
    stereo = by_name["en_fasterwhisper_stereo_diarization"]
    assert stereo.der[0.25].rate < 0.3 and stereo.cpwer is None  # no per-speaker transcript

    console = Console(record=True, width=200)
    print_report(results, console=console)
    text = console.export_text()
    assert "DER 0.25 s" in text and "DER 0 s" in text and "confusion" in text and "cpWER" in text
    pooled = next(line for line in text.splitlines() if "pooled (2 clips)" in line)
    assert f"{100 * sample.cpwer.rate:.1f}%" in pooled
