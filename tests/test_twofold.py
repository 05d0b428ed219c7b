"""`sanyu eval --folds`: each fold scored with the dialect probe refit on the other fold only,
whichever languages are scored (slow: real clips with the session's model)."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.slow

FOLDS = {
    "A": ["yue/yue_sherpa_yue-0.wav", "yue/yue_wsyue_gd0049244_775890_782910.wav",
          "zh/zh_aishell_BAC009S0724W0121.wav", "zh/zh_sensevoice_zh.wav"],
    "B": ["yue/yue_sherpa_yue-1.wav", "yue/yue_sensevoice_yue.wav",
          "zh/zh_funasr_asr_example.wav", "zh/zh_cosyvoice_zero_shot_prompt.wav"],
}


def test_scoring_one_language_refits_the_probe_on_the_other_fold_and_joins_its_clips(tmp_path, shared_eval, transcriber, monkeypatch):
    import sanyu.evaluation.twofold as twofold
    from sanyu.audio import decode_audio
    from sanyu.options import TranscribeOptions
    from sanyu.schema import join_texts

    rows = ["file\tfold"] + [f"{path}\t{fold}" for fold, paths in FOLDS.items() for path in paths]
    (tmp_path / "FOLDS.tsv").write_text("\n".join(rows) + "\n")
    trained_on = []
    train = twofold.train
    monkeypatch.setattr(twofold, "train", lambda engine, clips: trained_on.append(
        sorted(c.relative for c in clips)) or train(engine, clips))
    shipped = transcriber.engine.dialect_probe

    folds = twofold.evaluate_folds(
        shared_eval, tmp_path / "FOLDS.tsv", transcriber, TranscribeOptions(),
        baseline=False, language_id=False, languages=("yue",),
    )
    assert [(f.fold, f.trained_on) for f in folds] == [("A", "B"), ("B", "A")]
    # each probe saw the other fold's Cantonese and Mandarin, never a clip of the fold it scores
    assert trained_on == [sorted(FOLDS["B"]), sorted(FOLDS["A"])]
    for fold in folds:
        assert sorted(r.clip.relative for r in fold.results) == sorted(p for p in FOLDS[fold.fold] if p.startswith("yue/"))
        # transcribed and scored (an empty transcript scores 1.0)
        assert all(r.hypothesis and r.score.rate < 0.8 for r in fold.results), [(r.clip.name, r.score.rate) for r in fold.results]
        # and the fold's Cantonese clips, joined in name order, as one long recording
        [joined] = fold.joined
        members = sorted((p for p in FOLDS[fold.fold] if p.startswith("yue/")), key=lambda p: p.split("/")[1])
        durations = [decode_audio(shared_eval / p).duration for p in members]
        assert joined.clip.language == "yue" and joined.system == "sanyu"
        assert joined.audio_seconds == pytest.approx(sum(durations) + len(durations), abs=0.05)
        assert joined.clip.reference == join_texts([(shared_eval / p).with_suffix(".txt").read_text().strip() for p in members])
        assert joined.hypothesis and joined.score.rate < 0.8
    assert transcriber.engine.dialect_probe is shipped  # the shipped probe is back
