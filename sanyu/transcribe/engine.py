"""Whisper on CTranslate2 with a language decided for every utterance.

The flow for a batch of recordings (`WhisperEngine.transcribe_many`):

  VAD utterances ─▶ windows: consecutive utterances of a recording packed into ≤ 30 s
    (windows.py) ─▶ encode each window once, in batches ─▶ each utterance's language from its
    own frames of that encoder output: the language detector, and for Chinese, Cantonese or
    Mandarin (dialect.py); where the shared window may mislead (a change of language inside it,
    an unsure dialect call), checked again on the utterance alone ─▶ a window whose utterances
    differ in language is cut into runs of one language, encoded afresh (a run of one
    utterance takes the encoder output of its check) ─▶ decode every window once, in batches
    that mix languages
    (decoding.py; Cantonese under a Cantonese prompt on models without `<|yue|>`) ─▶ speech the
    decoder skipped is decoded on its own, and what a decode left unfinished from where it
    stopped; what still has no text is recorded as dropped, with the guard that dropped it ─▶
    hallucination guards, script conversion ─▶ one Transcript each.

On a model without `<|yue|>` and without a trained dialect probe, Chinese windows are decoded
under the Cantonese prompt and weighed by the Cantonese words written (language.py); the ones
that turn out Mandarin are decoded again without it.

Windows go through the stages in waves, so the encoder output held at once stays bounded
however long the recordings are.
"""

from __future__ import annotations

import logging
from collections import defaultdict

import ctranslate2
import numpy as np

from sanyu.adapters.faster_whisper import WhisperBackend
from sanyu.audio import Audio
from sanyu.models import resolve_whisper
from sanyu.options import ModelOptions, TranscribeOptions
from sanyu.schema import Dropped, Segment, Transcript
from sanyu.transcribe import guards
from sanyu.transcribe.decoding import Decoded, Decoder, EncodedWindow
from sanyu.transcribe.dialect import probe_for
from sanyu.transcribe.language import CANTONESE_PROMPT, decide_dialect, restrict_language
from sanyu.transcribe.results import Result, loops, segment_of, tag_word_languages, uncovered
from sanyu.transcribe.script import apply_script
from sanyu.transcribe.speech import SpeechPlan, plan_speech, speech_regions, window_samples, windows_of
from sanyu.transcribe.windows import (
    Utterance,
    Window,
    differs_from_neighbours,
    on_its_own,
    pack,
    split_by,
    utterance_at,
    windows_for,
)

log = logging.getLogger(__name__)

# Windows encoded and decoded together, unless the options say: a CPU gains little past 8, a
# GPU gains up to 32 and more.
CPU_BATCH, GPU_BATCH = 8, 32
# Windows taken through every stage together, in batches: a wave bounds the encoder output held
# at once, and is several batches deep so that batches stay full.
WAVE_BATCHES = 4
FALLBACK_SEED = 20241123
# Rounds of decoding on from where a decode left its window unfinished (faster-whisper seeks on
# to the end of the audio; each round starts later, so this bounds the work).
RESUME_ROUNDS = 3


def resolve_device(device: str) -> str:
    if device != "auto":
        return device
    return "cuda" if ctranslate2.get_cuda_device_count() > 0 else "cpu"


def resolve_compute_type(compute_type: str, device: str) -> str:
    if compute_type != "auto":
        return compute_type
    return "float16" if device == "cuda" else "int8"


class WhisperEngine:
    """A loaded Whisper model and the per-utterance-language transcription around it."""

    def __init__(self, model_options: ModelOptions | None = None):
        self.model_options = model_options or ModelOptions()
        self.device = resolve_device(self.model_options.device)
        self.compute_type = resolve_compute_type(self.model_options.compute_type, self.device)
        self.model_path = resolve_whisper(self.model_options.model)
        # Temperature fallback samples. CTranslate2 seeds each worker thread's generator once,
        # from this seed, when the thread first samples: fixing it before the model starts makes
        # a run repeatable (the same files in the same order give the same transcripts).
        self.backend = self.load_backend()
        self.multilingual = self.backend.multilingual
        # faster-whisper accepts language="yue" on every model, but only models whose tokenizer
        # has the token (large-v3 and later) can use it; on others it silently yields garbage.
        self.has_yue_token = self.backend.has_language_token("yue")
        self.dialect_probe = None if self.has_yue_token else probe_for(self.model_path)
        cantonese = (
            "its own <|yue|> token" if self.has_yue_token
            else "a dialect probe" if self.dialect_probe is not None
            else "Cantonese words written under a Cantonese prompt"
        )
        log.info(
            "Whisper %s on %s (%s): %d mel bins; Cantonese from %s", self.model_options.model,
            self.device, self.compute_type, self.backend.n_mels, cantonese,
        )

    def load_backend(self) -> WhisperBackend:
        """The engine's model, loaded anew: new worker threads, whose generators are seeded
        from FALLBACK_SEED when they first sample."""
        ctranslate2.set_random_seed(FALLBACK_SEED)
        return WhisperBackend(self.model_path, self.device, self.compute_type, self.model_options.cpu_threads)

    def fresh_sampler(self) -> None:
        """Sample from here on as a new engine would: the model is loaded again if it has
        sampled (its worker threads, and so their generators, are new). For scoring each clip
        independently of the clips before it (`sanyu eval`); a load per call is too dear to do
        per file in a job."""
        if self.backend.sampled:
            self.backend = self.load_backend()

    @property
    def model(self):
        """The faster-whisper WhisperModel underneath (for side-by-side baselines)."""
        return self.backend.model

    def batch_size(self, options: TranscribeOptions) -> int:
        return options.batch_size or (GPU_BATCH if self.device == "cuda" else CPU_BATCH)

    def transcribe(self, audio: Audio, options: TranscribeOptions) -> Transcript:
        return self.transcribe_many([audio], options)[0]

    def transcribe_many(
        self,
        audios: list[Audio],
        options: TranscribeOptions,
        plans: list[SpeechPlan] | None = None,
    ) -> list[Transcript]:
        """Transcribe several recordings, their windows batched together on the model.

        ``plans``: each recording's speech regions (and window features), when the caller
        worked them out already (`sanyu.transcribe.speech.plan_speech`).
        """
        if plans is None:
            plans = [plan_speech(audio, options.vad) for audio in audios]
        windows = []
        for item, (audio, plan) in enumerate(zip(audios, plans)):
            mine = windows_of(audio, plan.regions, item)
            for window, features in zip(mine, plan.features or [None] * len(mine)):
                window.features = features
            windows += mine
        utterances = [[u for w in windows if w.item == i for u in w.utterances] for i in range(len(audios))]
        results: list[Result] = []
        wave = WAVE_BATCHES * self.batch_size(options)
        for start in range(0, len(windows), wave):
            results += _Wave(self, audios, options).run(windows[start : start + wave])
        return [
            self._assemble(audio, mine, [r for r in results if r.window.item == item], options)
            for item, (audio, mine) in enumerate(zip(audios, utterances))
        ]

    def chinese_embeddings(
        self, audio: Audio, options: TranscribeOptions | None = None
    ) -> list[tuple[Utterance, np.ndarray]]:
        """What the dialect probe sees: the mean encoder frame of each utterance the detector
        calls Chinese, windows packed and encoded as for transcription (to train a probe)."""
        options = (options or TranscribeOptions()).with_(language="auto")
        wave = _Wave(self, [audio], options)
        out = []
        for e in wave._encode(windows_of(audio, speech_regions(audio, options.vad))):
            for u in e.window.utterances:
                start, end = wave._detect(e, u)
                if u.language == "zh":
                    out.append((u, self.backend.embedding(e.encoded, e.row, start, end)))
        return out

    def _assemble(
        self, audio: Audio, utterances: list[Utterance], results: list[Result],
        options: TranscribeOptions,
    ) -> Transcript:
        segments = sorted((s for r in results for s in r.segments), key=lambda s: s.start)
        for segment in segments:
            if options.word_timestamps:
                tag_word_languages(segment)
            else:
                segment.words = []
            apply_script(segment, options.script, options.mandarin_script)
        speech_time: dict[str, float] = defaultdict(float)
        for segment in segments:
            speech_time[segment.language] += segment.duration
        return Transcript(
            source=audio.source,
            duration=round(audio.duration, 3),
            segments=segments,
            model=self.model_options.model,
            languages=sorted(speech_time, key=speech_time.get, reverse=True),
            options=options.to_dict(),
            dropped=[
                Dropped(round(u.start, 3), round(u.end, 3), u.drop_reason or "empty")
                for u in utterances
                if not any(s.end > u.start and s.start < u.end for s in segments)
            ],
        )


class _Wave:
    """One wave of windows through every stage (see the module doc)."""

    def __init__(self, engine: WhisperEngine, audios: list[Audio], options: TranscribeOptions):
        self.engine = engine
        self.backend = engine.backend
        self.audios = audios
        self.options = options
        self.batch_size = engine.batch_size(options)
        self.decoder = Decoder(engine.backend, self.batch_size, self._token_language)
        self.auto = options.language == "auto" and engine.multilingual
        wants_yue = options.language == "yue" or (
            self.auto and "yue" in options.candidate_languages
        )
        without_token = engine.multilingual and not engine.has_yue_token
        # Cantonese is written under the Cantonese prompt where the model has no token for it;
        # and, lacking a probe too, it is told from Mandarin by what that prompt makes it write.
        self.prompted_cantonese = wants_yue and without_token
        self.weigh_words = self.prompted_cantonese and self.auto and engine.dialect_probe is None
        self.words = options.word_timestamps or options.diarize or self.weigh_words

    def run(self, windows: list[Window]) -> list[Result]:
        encoded = self._encode(windows)
        alone = self._decide_languages(encoded)
        encoded = self._split(encoded, alone)
        decoded = self._decode(encoded)
        if self.weigh_words:
            decoded = self._weigh_dialects(decoded, encoded)
        return self._rescue([self._result(d) for d in decoded])

    # ---- languages ----------------------------------------------------------------------

    def _decide_languages(self, encoded: list[EncodedWindow]) -> dict[WindowAudio, EncodedWindow]:
        """Each utterance's language, from its frames of its window's encoder output: the
        detector, and (a model without `<|yue|>`) the dialect probe for Chinese. Where the
        window may have misled them, they look again at the utterance on its own; returns those
        windows of one utterance, encoded, by their audio (`_audio_of`)."""
        if not self.auto:
            fixed = self.options.language if self.engine.multilingual else "en"
            for e in encoded:
                for u in e.window.utterances:
                    u.language = fixed
            return {}
        for e in encoded:
            for u in e.window.utterances:
                self._listen(e, u)
        checked: set[int] = set()
        alone_encoded = {}
        for islands in (True, False):
            unsure = [
                (e.window, u) for e in encoded for u in e.window.utterances
                if id(u) not in checked and self._unsure(e.window, u, islands)
            ]
            checked |= {id(u) for _, u in unsure}
            alone = [on_its_own(window, u, self._duration(window)) for window, u in unsure]
            for e in self._encode(alone):
                self._listen(e, e.window.utterances[0])
                alone_encoded[_audio_of(e.window)] = e
        return alone_encoded

    def _listen(self, e: EncodedWindow, u: Utterance) -> None:
        """An utterance's language from its frames of ``e``."""
        start, end = self._detect(e, u)
        probe = self.engine.dialect_probe if self.prompted_cantonese else None
        if u.language != "zh":
            return
        if probe is not None:
            embedding = self.backend.embedding(e.encoded, e.row, start, end)
            cantonese, u.dialect_score = probe.is_cantonese(embedding)
            u.language = "yue" if cantonese else "zh"
        elif self.weigh_words:
            u.language = "yue"  # for now: weighed once decoded under the prompt

    def _unsure(self, window: Window, u: Utterance, islands: bool) -> bool:
        """In a shared window, self-attention lends each utterance some of its neighbours'
        sound: a Mandarin turn right after a Cantonese one can read as Cantonese, an English
        sentence after Chinese ones as Chinese. So a language that changes inside a window, or
        a dialect call the probe is unsure of, is checked on the utterance alone: first an
        utterance whose language differs from all its neighbours (``islands``: the detector errs
        most on short spans, and the odd one out is often the wrong one), then, where a change
        holds, the utterances on both sides of it."""
        if len(window.utterances) == 1:
            return False
        if differs_from_neighbours(window, u, every=islands):
            return True
        probe = self.engine.dialect_probe
        return u.dialect_score is not None and probe is not None and probe.unsure(u.dialect_score)

    def _detect(self, e: EncodedWindow, u: Utterance) -> tuple[float, float]:
        """The detector on an utterance's frames, restricted to the candidate languages;
        returns the utterance's span in window time."""
        start, end = e.window.to_window(u.start), e.window.to_window(u.end)
        u.scores = self.backend.detect(e.encoded, e.row, start, end)
        u.language, u.language_probability = restrict_language(
            sorted(u.scores.items(), key=lambda kv: -kv[1]), self.options.candidate_languages
        )
        return start, end

    def _split(
        self, encoded: list[EncodedWindow], alone: dict[WindowAudio, EncodedWindow]
    ) -> list[EncodedWindow]:
        """Windows whose utterances differ in language cut into runs, encoded afresh; a run of
        one utterance that its language check encoded on its own (``alone``: the same audio,
        so the same encoder output) is not encoded again."""
        kept, parts = [], []
        for e in encoded:
            pieces = split_by(e.window, lambda u: u.language, self._duration(e.window))
            if len(pieces) == 1:
                kept.append(e)
            parts += pieces if len(pieces) > 1 else []
        for e in kept:
            e.window.language = e.window.utterances[0].language
        for part in parts:
            part.language = part.utterances[0].language
        fresh = iter(self._encode([p for p in parts if _audio_of(p) not in alone]))
        reused = [alone.get(_audio_of(p)) for p in parts]
        return kept + [
            EncodedWindow(p, r.encoded, r.row) if r else next(fresh) for p, r in zip(parts, reused)
        ]

    def _weigh_dialects(self, decoded: list[Decoded], encoded: list[EncodedWindow]) -> list[Decoded]:
        """Without a probe: weigh each Chinese utterance by the Cantonese words the prompt let
        the model write; windows that turn out Mandarin are decoded again without it."""
        by_window = {id(e.window): e for e in encoded}
        settled, same_audio, parts = [], [], []
        for d in decoded:
            window = d.window
            if window.language != "yue":
                settled.append(d)
                continue
            for u in window.utterances:
                decision = decide_dialect(_words_of(u, d))
                u.dialect_score = decision.score
                u.language = "yue" if decision.cantonese else "zh"
            pieces = split_by(window, lambda u: u.language, self._duration(window))
            if len(pieces) == 1 and window.utterances[0].language == "yue":
                settled.append(d)
            elif len(pieces) == 1:
                window.language = "zh"
                same_audio.append(by_window[id(window)])
            else:
                for piece in pieces:
                    piece.language = piece.utterances[0].language
                parts += pieces
        return settled + self._decode(same_audio + self._encode(parts))

    # ---- model stages -------------------------------------------------------------------

    def _encode(self, windows: list[Window]) -> list[EncodedWindow]:
        out = []
        size = self.batch_size
        for start in range(0, len(windows), size):
            batch = windows[start : start + size]
            features = np.stack([self._features(w) for w in batch])
            encoded = self.backend.encode(features)
            out += [EncodedWindow(w, encoded, row) for row, w in enumerate(batch)]
        return out

    def _features(self, window: Window) -> np.ndarray:
        if window.features is not None:
            return window.features
        return self.backend.features(window_samples(self.audios[window.item], window))

    def _decode(self, encoded: list[EncodedWindow]) -> list[Decoded]:
        if not encoded:
            return []
        prompts = [self._prompt_tokens(e.window) for e in encoded]
        return self.decoder.decode(encoded, prompts, self.options.beam_size, self.words)

    def _prompt_text(self, window: Window) -> str | None:
        cantonese = window.language == "yue" and self.prompted_cantonese
        parts = [CANTONESE_PROMPT if cantonese else None, self.options.prompt,
                 "、".join(self.options.glossary) or None]
        return " ".join(p for p in parts if p) or None

    def _prompt_tokens(self, window: Window) -> list[int]:
        text = self._prompt_text(window)
        previous = self.backend.text_tokens(text) if text else []
        return self.backend.prompt(self._token_language(window), previous, self.options.hotwords)

    def _token_language(self, window: Window) -> str:
        """The language token a window is decoded with (Cantonese as `zh` without `<|yue|>`)."""
        language = window.language or "en"
        return "zh" if language == "yue" and not self.engine.has_yue_token else language

    # ---- results ------------------------------------------------------------------------

    def _result(self, decoded: Decoded) -> Result:
        window = decoded.window
        if decoded.silent:
            return Result.drop(window, "no-speech")
        prompt = self._prompt_text(window)
        resume_at = None if decoded.resume_at is None else window.to_source(decoded.resume_at)
        result, echoed = Result(window, [], resume_at=resume_at), False
        for raw in decoded.segments:
            written = raw["text"].strip()
            text = guards.collapse_repetitions(written)
            if not text:
                continue
            if prompt and guards.echoes_prompt(text, [prompt]):
                echoed = True
                continue
            segment = segment_of(window, raw, text, decoded.generation)
            result.segments.append(segment)
            if text != written:  # a runaway repetition was cut out of it
                result.looped.append(segment)
        if not result.segments:
            return Result.drop(window, "prompt-echo" if echoed else "empty", resume_at)
        return result

    def _rescue(self, results: list[Result]) -> list[Result]:
        """Speech a window's decode skipped, or wrote as a repetition loop, decoded again on its
        own (once). Skipped speech of one window is packed again into as few windows as it
        needs (a decode that stopped early leaves the rest of its window); what follows the
        point where a decode left its window unfinished starts exactly there, as faster-whisper
        seeks (audio before it would be written twice), and goes on from where such a decode
        stops in turn, for RESUME_ROUNDS in all. A loop is decoded alone, and replaced only by a
        decode that does not loop."""
        kept = self._second_pass(results, first=True)
        out = results + kept
        for _ in range(RESUME_ROUNDS - 1):
            kept = self._second_pass(kept, first=False)
            if not kept:
                break
            out += kept
        return out

    def _second_pass(self, results: list[Result], first: bool) -> list[Result]:
        """One round of `_rescue`; after the first, only what unfinished decodes left."""
        windows, replaced = [], []
        for result in results:
            duration = self._duration(result.window)
            gaps = [Utterance(u.item, start, end, u.language, parent=u.parent or u)
                    for u, start, end in uncovered(result)]
            resume_at = result.stopped_at
            skipped = [g for g in gaps if g.start < resume_at] if first else []
            rest = [g for g in gaps if g.start >= resume_at]
            for window in pack(skipped, duration) + pack(rest, duration, before=resume_at):
                window.language = result.window.language
                windows.append(window)
                replaced.append((result, None))
            for utterance, start, end, looped in loops(result) if first else []:
                piece = Utterance(utterance.item, start, end, utterance.language, parent=utterance)
                [window] = windows_for([[piece]], duration, start, end)
                window.language = result.window.language
                windows.append(window)
                replaced.append((result, looped))
        rescued = [self._result(d) for d in self._decode(self._encode(windows))]
        kept = []
        for (result, looped), rescue in zip(replaced, rescued):
            if looped is None:
                kept.append(rescue)
            elif _replaces(rescue, looped):
                result.segments.remove(looped)
                kept.append(rescue)
        return kept

    def _duration(self, window: Window) -> float:
        return self.audios[window.item].duration


# A window's audio: its recording and the source spans that make it.
WindowAudio = tuple[int, tuple[tuple[float, float], ...]]


def _audio_of(window: Window) -> WindowAudio:
    return window.item, tuple(window.spans)


def _replaces(rescue: Result, looped: Segment) -> bool:
    """Whether a stretch decoded again is worth more than the collapsed loop it would replace:
    sound (no loop, not unsure) and with more to say."""
    if not rescue.segments or rescue.looped:
        return False
    sure = all((s.avg_logprob or 0.0) >= guards.LOGPROB_THRESHOLD for s in rescue.segments)
    return sure and sum(len(s.text) for s in rescue.segments) > len(looped.text)


def _words_of(utterance: Utterance, decoded: Decoded) -> list[tuple[str, float]]:
    """(text, probability) of the decoded words that fall in ``utterance``."""
    window = decoded.window
    return [
        (w["word"], w["probability"])
        for s in decoded.segments
        for w in s.get("words", [])
        if utterance_at(window.utterances, window.to_source(w["start"]), window.to_source(w["end"]))
        is utterance
    ]
