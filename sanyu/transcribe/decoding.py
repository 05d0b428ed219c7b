"""Decoding windows in batches: prompts, token caps, temperature fallback, segments and words.

Each window is decoded once with beam search, in batches that mix languages (CTranslate2 takes
one prompt per row, so long as start-of-transcript sits at the same position in every row: rows
are grouped by the length of the text before it). A window whose decode looks like a failure by
faster-whisper's own rule (its text compresses more than 2.4 times, a loop; or its average
log-probability is under -1) is decoded again by temperature fallback, the failing windows of a
batch together. A decode that reaches its token cap, which grows with the window's length, ran
away and counts as a failure too, so a loop never runs to the model's 448-token limit.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field

from sanyu.adapters.faster_whisper import (
    EncoderOutput,
    Generation,
    WhisperBackend,
    compression_ratio,
    gather,
)
from sanyu.transcribe import guards
from sanyu.transcribe.windows import Window

log = logging.getLogger(__name__)

FALLBACK_TEMPERATURES = (0.2, 0.4, 0.6, 0.8, 1.0)
# New tokens a window may take: timestamps plus text at a fast speaker's rate, with room to spare.
CAP_BASE_TOKENS = 24
CAP_TOKENS_PER_SECOND = 20.0


def token_cap(duration: float) -> int:
    return int(CAP_BASE_TOKENS + CAP_TOKENS_PER_SECOND * duration)


@dataclass
class Decoded:
    """One window's decode: segments in window seconds, each with text, tokens and words."""

    window: Window
    segments: list[dict] = field(default_factory=list)
    generation: Generation | None = None  # the decode kept
    beam: Generation | None = None  # the first, beam-search decode
    resume_at: float | None = None  # where the decode left the window unfinished (window seconds)

    @property
    def silent(self) -> bool:
        """Whisper's no-speech rule, on the beam-search decode."""
        g = self.beam or self.generation
        return g is not None and guards.is_silence(g.no_speech_prob, g.avg_logprob)



@dataclass
class EncodedWindow:
    window: Window
    encoded: EncoderOutput
    row: int


def _failed_by_loop(generation: Generation, text: str) -> bool:
    """A runaway decode: it reached the cap its window's length allows (a decode that filled
    the model's whole room is only cut short: the rest of its window is decoded again), or its
    text compresses like a repetition loop."""
    if generation.capped and not generation.full:
        return True
    return compression_ratio(text) > guards.COMPRESSION_RATIO_THRESHOLD


def _failed(generation: Generation, text: str) -> bool:
    """faster-whisper's fallback rule: a loop, or an unsure decode."""
    return _failed_by_loop(generation, text) or generation.avg_logprob < guards.LOGPROB_THRESHOLD


class Decoder:
    """Turns encoded windows into segments with one model: see the module doc."""

    def __init__(
        self, backend: WhisperBackend, batch_size: int, token_language: Callable[[Window], str]
    ):
        self.backend = backend
        self.batch_size = batch_size
        self.token_language = token_language  # the language token a window is decoded with

    def decode(
        self,
        items: list[EncodedWindow],
        prompts: list[list[int]],
        beam_size: int,
        words: bool,
    ) -> list[Decoded]:
        """Decode ``items`` (``prompts[i]`` for ``items[i]``), with word timings if ``words``.

        A window that loops or is unsure goes to temperature fallback, as in faster-whisper;
        one that still loops keeps its repetition collapsed, and the engine decodes the looping
        stretch again on its own."""
        results: list[Decoded | None] = [None] * len(items)
        for indices in self._batches(prompts):
            batch = [items[i] for i in indices]
            view = gather([(item.encoded, item.row) for item in batch])
            batch_prompts = [prompts[i] for i in indices]
            caps = [token_cap(item.window.duration) for item in batch]
            if log.isEnabledFor(logging.DEBUG):
                tokens = sorted({self.backend.language_token(self.token_language(i.window)) for i in batch})
                log.debug("decoding %d windows with %s", len(batch), ", ".join(tokens))
            first = self.backend.generate(view, batch_prompts, caps, beam_size=beam_size)
            # Silence is judged on the beam search alone: a window whose best decode is unsure
            # and that the model thinks holds no speech. Fallback samples are unsure by nature,
            # and must not make a window of speech (VAD found it) look silent.
            retry = [
                k for k, g in enumerate(first)
                if not guards.is_silence(g.no_speech_prob, g.avg_logprob)
                and _failed(g, self._text(g))
            ]
            chosen = list(first)
            if retry:
                for k, generation in zip(retry, self._fallback(batch, batch_prompts, caps, first, retry)):
                    chosen[k] = generation
            decoded = []
            for item, g, beam in zip(batch, chosen, first):
                segments, resume_at = self._segments(item.window, g)
                decoded.append(Decoded(item.window, segments, g, beam, resume_at))
            if words:
                self._add_words(decoded, batch)
            for i, d in zip(indices, decoded):
                results[i] = d
        return [r for r in results if r is not None]

    def _batches(self, prompts: list[list[int]]) -> list[list[int]]:
        """Row indices in batches of ``batch_size`` whose prompts align (same text before
        start-of-transcript), in order of first appearance."""
        groups: dict[int, list[int]] = defaultdict(list)
        for i, prompt in enumerate(prompts):
            groups[len(prompt)].append(i)
        return [
            group[start : start + self.batch_size]
            for group in groups.values()
            for start in range(0, len(group), self.batch_size)
        ]

    def _text(self, generation: Generation) -> str:
        return self.backend.decode_text(generation.tokens)

    def _fallback(
        self, batch: list[EncodedWindow], prompts: list[list[int]], caps: list[int],
        first: list[Generation], rows: list[int],
    ) -> list[Generation]:
        """faster-whisper's temperature fallback, for the failing rows of a batch together
        (``first``: the beam-search decodes of the whole batch)."""
        attempts: dict[int, list[Generation]] = {k: [first[k]] for k in rows}
        pending = list(rows)
        for temperature in FALLBACK_TEMPERATURES:
            if not pending:
                break
            view = gather([(batch[k].encoded, batch[k].row) for k in pending])
            generations = self.backend.generate(
                view, [prompts[k] for k in pending], [caps[k] for k in pending],
                beam_size=1, temperature=temperature,
            )
            still = []
            for k, generation in zip(pending, generations):
                attempts[k].append(generation)
                if _failed(generation, self._text(generation)):
                    still.append(k)
            pending = still
        chosen = []
        for k in rows:
            tried = attempts[k]
            if k not in pending:
                chosen.append(tried[-1])
                continue
            # Every temperature failed: the most likely attempt that did not loop, the beam
            # search's included, as faster-whisper picks (repetitions are collapsed later).
            unlooped = [g for g in tried if not _failed_by_loop(g, self._text(g))]
            chosen.append(max(unlooped or tried, key=lambda g: g.avg_logprob))
        return chosen

    def _segments(self, window: Window, generation: Generation) -> tuple[list[dict], float | None]:
        """The decode's segments with text, and where it left the window unfinished."""
        segments, resume_at = self.backend.split_segments(
            self.token_language(window), generation.tokens, window.duration
        )
        for segment in segments:
            segment["text"] = self.backend.decode_text(segment["tokens"])
        return [s for s in segments if s["text"].strip()], resume_at

    def _add_words(self, decoded: list[Decoded], batch: list[EncodedWindow]) -> None:
        """Word timings, aligned per language (the aligner takes one start sequence)."""
        by_language: dict[str, list[int]] = defaultdict(list)
        for k, d in enumerate(decoded):
            if d.segments:
                by_language[self.token_language(d.window)].append(k)
        for language, ks in by_language.items():
            rows = [(batch[k].encoded, batch[k].row) for k in ks]
            self.backend.add_words(
                language, [decoded[k].segments for k in ks], gather(rows),
                [decoded[k].window.duration for k in ks],
            )
