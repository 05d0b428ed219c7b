"""The Cantonese/Mandarin probe as pure logic: fitting, the cost-weighted threshold, files."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from sanyu.transcribe import dialect
from sanyu.transcribe.dialect import DialectProbe, fit, probe_for


def _data(rng, n=40, shift=1.5, dims=8):
    cantonese = np.arange(n) % 2 == 0
    x = rng.standard_normal((n, dims))
    x[cantonese, 0] += shift
    return x, cantonese


def test_fit_separates_and_roundtrips_through_json():
    rng = np.random.default_rng(0)
    x, y = _data(rng, shift=6.0)
    probe = fit(x, y, np.arange(len(y)) % 5, models=(("ab" * 32, 123),))
    calls = np.array([probe.is_cantonese(e)[0] for e in x])
    assert (calls == y).all()
    again = DialectProbe.from_json(probe.to_json())
    assert again.models == (("ab" * 32, 123),)
    assert again.threshold == pytest.approx(probe.threshold)
    assert again.probability(x[0]) == pytest.approx(probe.probability(x[0]))


def test_threshold_favours_missing_cantonese_over_false_cantonese():
    rng = np.random.default_rng(1)
    x, y = _data(rng, n=200, shift=1.0)  # overlapping classes: errors either way are possible
    probe = fit(x, y, np.arange(len(y)) % 5)
    x, y = _data(np.random.default_rng(2), n=200, shift=1.0)  # unseen utterances
    p = np.array([probe.probability(e) for e in x])
    false_cantonese = np.sum((p > probe.threshold) & ~y)
    missed = np.sum((p <= probe.threshold) & y)
    assert false_cantonese < missed
    assert probe.threshold > 0.5


def test_probability_is_bounded_for_extreme_inputs():
    probe = DialectProbe(np.zeros(2), np.ones(2), np.array([1e6, 0.0]), 0.0, 0.5)
    assert probe.probability(np.array([1.0, 0.0])) == pytest.approx(1.0)
    assert probe.probability(np.array([-1.0, 0.0])) == pytest.approx(0.0)


def test_a_probe_is_found_only_for_the_weights_it_was_trained_on(tmp_path, monkeypatch):
    model = tmp_path / "model"
    model.mkdir()
    (model / "model.bin").write_bytes(b"weights")
    digest = hashlib.sha256(b"weights").hexdigest()
    probes = tmp_path / "probes"
    probes.mkdir()
    monkeypatch.setattr(dialect, "PROBES_DIR", probes)
    assert probe_for(model) is None
    probe = DialectProbe(np.zeros(2), np.ones(2), np.ones(2), 0.0, 0.5, ((digest, 7),))
    (probes / "tiny.json").write_text(probe.to_json())
    assert probe_for(model) is not None
    (model / "model.bin").write_bytes(b"other!!")  # same size, other content
    assert probe_for(model) is None
