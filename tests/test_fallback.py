"""Temperature fallback as faster-whisper does it, on a scripted model (fast, no weights)."""

from __future__ import annotations

import ctranslate2
import numpy as np

from sanyu.adapters.faster_whisper import EncoderOutput, Generation
from sanyu.transcribe.decoding import FALLBACK_TEMPERATURES, Decoder, EncodedWindow
from sanyu.transcribe.windows import Window


class ScriptedBackend:
    """Answers each decode with the scores its script gives for (row text, temperature)."""

    def __init__(self, scores: dict[tuple[int, float], float]):
        self.scores = scores
        self.calls: list[tuple[float, list[int]]] = []

    def generate(self, view, prompts, caps, *, beam_size, temperature=0.0, best_of=5):
        rows = [prompt[0] for prompt in prompts]
        self.calls.append((temperature, rows))
        return [
            Generation(tokens=[row, int(temperature * 10)], avg_logprob=self.scores[row, temperature],
                       no_speech_prob=0.0, capped=False, temperature=temperature)
            for row in rows
        ]

    def decode_text(self, tokens):
        return " ".join(f"word{t}" for t in tokens)

    def split_segments(self, language, tokens, duration):
        return [{"tokens": tokens, "start": 0.0, "end": duration}], None

    def language_token(self, language):
        return f"<|{language}|>"


def _decode(scores: dict[tuple[int, float], float], rows: int):
    backend = ScriptedBackend(scores)
    encoded = EncoderOutput(ctranslate2.StorageView.from_array(np.zeros((rows, 4, 2), np.float32)), False)
    items = [EncodedWindow(Window(0, [], [(0.0, 5.0)], "yue"), encoded, row) for row in range(rows)]
    decoder = Decoder(backend, batch_size=8, token_language=lambda window: window.language)
    return decoder.decode(items, [[row] for row in range(rows)], beam_size=5, words=False), backend


def test_when_every_temperature_fails_the_beam_decode_can_still_win():
    # Row 0 is unsure at every temperature, its beam decode the most likely; row 1 is sure.
    scores = {(0, 0.0): -1.2, (1, 0.0): -0.3}
    scores.update({(0, t): -1.5 - t for t in FALLBACK_TEMPERATURES})
    decoded, backend = _decode(scores, 2)
    assert [g.temperature for g in (d.generation for d in decoded)] == [0.0, 0.0]
    assert decoded[0].generation.avg_logprob == -1.2
    # only the failing row was sampled again, at every temperature
    assert [rows for t, rows in backend.calls if t > 0] == [[0]] * len(FALLBACK_TEMPERATURES)


def test_a_sample_that_passes_is_kept_and_ends_the_fallback():
    scores = {(0, 0.0): -1.2, (0, 0.2): -1.4, (0, 0.4): -0.6}
    decoded, backend = _decode(scores, 1)
    assert decoded[0].generation.temperature == 0.4
    assert decoded[0].beam.temperature == 0.0
    assert [t for t, _ in backend.calls] == [0.0, 0.2, 0.4]


def test_a_more_likely_failing_sample_is_chosen_over_the_beam():
    scores = {(0, 0.0): -1.6}
    scores.update({(0, t): -1.1 if t == 0.6 else -1.9 for t in FALLBACK_TEMPERATURES})
    decoded, _ = _decode(scores, 1)
    assert decoded[0].generation.temperature == 0.6
