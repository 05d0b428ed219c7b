"""Cantonese or Mandarin from the sound itself: a linear probe on Whisper's encoder output.

Whisper base has no Cantonese token, and its language detector scores Cantonese and Mandarin
alike as `zh`. Its encoder still tells them apart: averaged over an utterance, the encoder
frames of Cantonese and Mandarin speech are separated by a linear boundary well enough that a
logistic regression trained on some recordings holds on recordings of other sources (the
protocol and figures are in docs/language.md). The decision is made before decoding, from the
encoder output every utterance has anyway, so each utterance is decoded once, with the right
prompt, and it does not depend on what a prompt made the decoder write.

A probe belongs to one model's encoder: its file lists the model weights (sha256 and size) it
was trained on, and `probe_for` finds it only for those. `python -m sanyu.evaluation.dialect_training`
trains one.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sanyu.models.cache import sha256_file

PROBES_DIR = Path(__file__).with_name("probes")
# A Mandarin utterance decoded as Cantonese costs more than the reverse: the threshold is chosen
# to minimise this many false Cantonese calls per missed one (see `fit`).
FALSE_CANTONESE_COST = 3.0
# Within this many logits of the threshold, the probe is unsure (the engine weighs the utterance
# again on an encoder pass of its own).
UNSURE_LOGITS = 1.5


@dataclass(frozen=True)
class DialectProbe:
    """P(Cantonese) = sigmoid(weights · (x - mean) / scale + bias) for an utterance's mean
    encoder frame x; Cantonese when it exceeds ``threshold``."""

    mean: np.ndarray
    scale: np.ndarray
    weights: np.ndarray
    bias: float
    threshold: float
    models: tuple[tuple[str, int], ...] = ()  # (sha256, bytes) of the model.bin it fits

    def probability(self, embedding: np.ndarray) -> float:
        z = float(np.dot(self.weights, (embedding - self.mean) / self.scale) + self.bias)
        return 1.0 / (1.0 + math.exp(-max(-60.0, min(60.0, z))))

    def is_cantonese(self, embedding: np.ndarray) -> tuple[bool, float]:
        p = self.probability(embedding)
        return p > self.threshold, p

    def unsure(self, probability: float) -> bool:
        return abs(_logit(probability) - _logit(self.threshold)) < UNSURE_LOGITS

    def to_json(self) -> str:
        return json.dumps(
            {
                "mean": self.mean.tolist(), "scale": self.scale.tolist(),
                "weights": self.weights.tolist(), "bias": self.bias,
                "threshold": self.threshold,
                "models": [{"sha256": s, "bytes": b} for s, b in self.models],
            }
        )

    @classmethod
    def from_json(cls, text: str) -> DialectProbe:
        data = json.loads(text)
        return cls(
            mean=np.asarray(data["mean"], dtype=np.float64),
            scale=np.asarray(data["scale"], dtype=np.float64),
            weights=np.asarray(data["weights"], dtype=np.float64),
            bias=float(data["bias"]),
            threshold=float(data["threshold"]),
            models=tuple((m["sha256"], int(m["bytes"])) for m in data.get("models", [])),
        )


def _logit(p: float) -> float:
    p = min(max(p, 1e-9), 1 - 1e-9)
    return math.log(p / (1 - p))


def _train(x: np.ndarray, y: np.ndarray, regularisation: float) -> DialectProbe:
    from sklearn.linear_model import LogisticRegression

    mean, scale = x.mean(axis=0), x.std(axis=0) + 1e-6
    model = LogisticRegression(C=regularisation, max_iter=5000).fit((x - mean) / scale, y)
    return DialectProbe(mean, scale, model.coef_[0], float(model.intercept_[0]), 0.5)


def held_out_probabilities(
    x: np.ndarray, y: np.ndarray, groups: np.ndarray, regularisation: float = 1.0
) -> np.ndarray:
    """Each utterance's P(Cantonese) from a probe trained without its group (0.5 where the
    rest lacks one of the two dialects)."""
    groups = np.asarray(groups)
    held_out = np.full(len(y), 0.5)
    for group in np.unique(groups):
        out = groups == group
        if len(set(y[~out])) == 2:
            probe = _train(x[~out], y[~out], regularisation)
            held_out[out] = [probe.probability(e) for e in x[out]]
    return held_out


def fit(
    embeddings: np.ndarray, cantonese: np.ndarray, groups: np.ndarray,
    models: tuple[tuple[str, int], ...] = (), regularisation: float = 1.0,
) -> DialectProbe:
    """Train a probe: standardised features and L2 logistic regression (scikit-learn).

    Its threshold is chosen on held-out probabilities, each group (a recording, or a source)
    left out in turn: on its own training utterances a probe is always right, so only unseen
    ones show where its errors fall. The threshold minimises FALSE_CANTONESE_COST × false
    Cantonese + missed Cantonese there (ties: the one nearest 0.5)."""
    x = np.asarray(embeddings, dtype=np.float64)
    y = np.asarray(cantonese, dtype=bool)
    held_out = held_out_probabilities(x, y, groups, regularisation)
    ordered = np.sort(held_out)
    candidates = np.unique(np.concatenate([[0.5], (ordered[1:] + ordered[:-1]) / 2]))

    def cost(t: float) -> tuple[float, float]:
        errors = FALSE_CANTONESE_COST * np.sum((held_out > t) & ~y) + np.sum((held_out <= t) & y)
        return float(errors), abs(t - 0.5)

    final = _train(x, y, regularisation)
    threshold = float(min(candidates, key=cost))
    return DialectProbe(final.mean, final.scale, final.weights, final.bias, threshold, models)


def probe_for(model_path: str | Path) -> DialectProbe | None:
    """The shipped probe trained on this model's weights, if there is one."""
    weights = Path(model_path) / "model.bin"
    if not weights.is_file() or not PROBES_DIR.is_dir():
        return None
    size = weights.stat().st_size
    probes = [DialectProbe.from_json(p.read_text()) for p in sorted(PROBES_DIR.glob("*.json"))]
    matching = [p for p in probes if any(b == size for _, b in p.models)]
    if not matching:
        return None
    digest = sha256_file(weights)
    return next((p for p in matching if any(s == digest for s, _ in p.models)), None)
