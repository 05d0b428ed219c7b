"""Whisper on CTranslate2 (faster-whisper), with a language decided per chunk of speech.

The flow for a batch of recordings:
  VAD splits each recording into utterances (those closer than 0.3 s are kept together) → in
  batches across recordings, each utterance is encoded once, and that one encoder pass serves
  every use of it: the model's language scores pick its language among the candidates, it is
  decoded (faster-whisper's batched decoder), and Chinese ones are decoded under a Cantonese prompt
  and checked for Cantonese, then decoded again as Mandarin when the evidence says so (see
  language.py) → hallucination guards → script conversion → one Transcript per recording.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass, field

import ctranslate2
import numpy as np
from faster_whisper import BatchedInferencePipeline, WhisperModel
from faster_whisper.audio import pad_or_trim
from faster_whisper.tokenizer import Tokenizer
from faster_whisper.transcribe import TranscriptionOptions, get_compression_ratio
from faster_whisper.vad import VadOptions, get_speech_timestamps

from sanyu.audio import SAMPLE_RATE, Audio
from sanyu.models import resolve_whisper
from sanyu.options import ModelOptions, TranscribeOptions
from sanyu.schema import Segment, Transcript, Word
from sanyu.transcribe import guards
from sanyu.transcribe.language import cantonese_score, is_latin_word, restrict_language, tonality
from sanyu.transcribe.script import apply_script

log = logging.getLogger(__name__)

CHUNK_SECONDS = 30.0
# A decode that stops this long before its chunk ends is continued from where it stopped
# (Whisper sometimes emits end-of-text early; the sequential decoder would seek on).
CONTINUE_AFTER_S = 2.0
MAX_CONTINUATIONS = 3
# Utterances closer than this are kept in one chunk. Kept short: Cantonese and Mandarin both
# detect as `zh`, and a chunk gets one dialect decision, so utterances split by a real pause
# (VAD: ≥ 0.5 s of silence) stay apart.
MERGE_GAP_S = 0.3
# Written in colloquial Cantonese, so the model may write the particles it hears.
CANTONESE_PROMPT = "以下係廣東話嘅句子，佢哋喺度講緊嘢。"
# Calibrated on the shared clips (docs/language.md): a Mandarin chunk decoded as Cantonese costs
# far more accuracy than the reverse, so the evidence must be clearly positive.
CANTONESE_THRESHOLD = 0.0
FALLBACK_TEMPERATURES = (0.2, 0.4, 0.6, 0.8, 1.0)
FALLBACK_SEED = 20241123


def resolve_device(device: str) -> str:
    if device != "auto":
        return device
    return "cuda" if ctranslate2.get_cuda_device_count() > 0 else "cpu"


def resolve_compute_type(compute_type: str, device: str) -> str:
    if compute_type != "auto":
        return compute_type
    return "float16" if device == "cuda" else "int8"


@dataclass(eq=False)
class _Chunk:
    item: int  # index of the recording in the batch
    start: float
    end: float
    language: str = "zh"
    language_probability: float = 1.0
    tonal_lean: float = 0.0
    # The decode ran away (a repetition loop) and was kept as it is, for now (see _decode).
    looped: bool = False
    segments: list[Segment] = field(default_factory=list)
    # Set on a continuation: the rest of a chunk whose decode ended early.
    parent: _Chunk | None = None

    @property
    def duration(self) -> float:
        return self.end - self.start


class _WhisperModel(WhisperModel):
    """A WhisperModel whose `encode` passes encoder output through unchanged.

    faster-whisper's batched decoder encodes the features it is given; handing it encoder output
    instead lets one encoder pass serve language detection and every decode of a chunk.
    """

    def encode(self, features):
        if isinstance(features, ctranslate2.StorageView):
            return features
        return super().encode(features)


class WhisperEngine:
    """A loaded Whisper model and the per-chunk-language transcription around it."""

    def __init__(self, model_options: ModelOptions | None = None):
        self.model_options = model_options or ModelOptions()
        self.device = resolve_device(self.model_options.device)
        self.compute_type = resolve_compute_type(self.model_options.compute_type, self.device)
        self.model_path = resolve_whisper(self.model_options.model)
        # Temperature fallback samples. CTranslate2 seeds each worker thread's generator once,
        # from this seed, when the thread first samples: fixing it before the model starts makes
        # a run repeatable (the same files in the same order give the same transcripts).
        ctranslate2.set_random_seed(FALLBACK_SEED)
        self.model = _WhisperModel(
            self.model_path,
            device=self.device,
            compute_type=self.compute_type,
            cpu_threads=self.model_options.cpu_threads,
        )
        self.batched = BatchedInferencePipeline(self.model)
        # faster-whisper accepts language="yue" on every model, but only models whose tokenizer
        # has the token (large-v3 and later) can use it; on others it silently yields garbage.
        self.has_yue_token = self.model.hf_tokenizer.token_to_id("<|yue|>") is not None
        self.multilingual = self.model.model.is_multilingual

    # ---- public -------------------------------------------------------------------------

    def transcribe(self, audio: Audio, options: TranscribeOptions) -> Transcript:
        return self.transcribe_many([audio], options)[0]

    def transcribe_many(self, audios: list[Audio], options: TranscribeOptions) -> list[Transcript]:
        """Transcribe several recordings, batching their chunks together on the model."""
        chunks = [
            _Chunk(i, start, end)
            for i, audio in enumerate(audios)
            for start, end in _merge_close(self._speech_regions(audio, options))
        ]
        for batch in _batches(chunks, options.batch_size):
            encoded = self._encode(audios, batch)
            self._assign_languages(batch, encoded, options)
            self._decode(audios, batch, encoded, options)
        return [self._assemble(i, audio, chunks, options) for i, audio in enumerate(audios)]

    # ---- stages -------------------------------------------------------------------------

    def _speech_regions(self, audio: Audio, options: TranscribeOptions) -> list[tuple[float, float]]:
        if audio.duration == 0:
            return []
        if not options.vad:
            windows = [
                (float(start), min(float(start) + CHUNK_SECONDS, audio.duration))
                for start in np.arange(0, audio.duration, CHUNK_SECONDS)
            ]
            # Without VAD, still never decode digital silence: Whisper invents text there.
            return [w for w in windows if not guards.is_digital_silence(audio.slice(*w))]
        vad = VadOptions(
            min_silence_duration_ms=500, speech_pad_ms=200, max_speech_duration_s=CHUNK_SECONDS - 1
        )
        return [
            (ts["start"] / SAMPLE_RATE, ts["end"] / SAMPLE_RATE)
            for ts in get_speech_timestamps(audio.samples, vad)
        ]

    def _encode(self, audios: list[Audio], chunks: list[_Chunk]) -> np.ndarray:
        """The encoder output of each chunk's 30 s window, on the CPU (so it can be sub-batched)."""
        features = np.stack([self._features(audios[c.item], c) for c in chunks])
        encoded = self.model.model.encode(ctranslate2.StorageView.from_array(features), to_cpu=True)
        return np.asarray(encoded)

    def _features(self, audio: Audio, chunk: _Chunk) -> np.ndarray:
        samples = audio.slice(chunk.start, chunk.end)
        return pad_or_trim(self.model.feature_extractor(samples)[..., :-1])

    def _assign_languages(
        self, chunks: list[_Chunk], encoded: np.ndarray, options: TranscribeOptions
    ) -> None:
        if options.language != "auto" or not self.multilingual:
            language = options.language if self.multilingual else "en"
            for chunk in chunks:
                chunk.language = language
            return
        detected = self.model.model.detect_language(ctranslate2.StorageView.from_array(encoded))
        for chunk, scores in zip(chunks, detected):
            probabilities = [(token[2:-2], p) for token, p in scores]
            chunk.language, chunk.language_probability = restrict_language(
                probabilities, options.candidate_languages
            )
            chunk.tonal_lean = tonality(dict(probabilities))

    def _decode(
        self, audios: list[Audio], chunks: list[_Chunk], encoded: np.ndarray, options: TranscribeOptions
    ) -> None:
        """Decode one batch of chunks from their encoder output (row i belongs to chunks[i])."""
        rows = dict(zip(chunks, encoded))
        # Chunks the acoustic scores call Chinese: decode under a Cantonese prompt first, unless
        # the user fixed Mandarin, or the model can write Cantonese with its own token.
        candidates_yue = options.language == "auto" and "yue" in options.candidate_languages
        cantonese_first = []
        for chunk in chunks:
            if chunk.language == "yue" and not self.has_yue_token:
                chunk.language = "zh"
                cantonese_first.append(chunk)
            elif chunk.language == "zh" and candidates_yue and not self.has_yue_token:
                cantonese_first.append(chunk)
        others = [c for c in chunks if c not in cantonese_first]
        self._run(audios, others, rows, options, dialect_prompt=None)
        if not cantonese_first:
            return
        # Unless the user fixed Cantonese, this decode is also a probe. A chunk that loops in it is
        # first judged as it is, and rescued by temperature fallback (the costliest path, which
        # a tongue twister can spend half a minute in) only if that judgement is Cantonese.
        probing = options.language != "yue"
        self._run(
            audios, cantonese_first, rows, options, dialect_prompt=CANTONESE_PROMPT,
            fallback=not probing,
        )
        if not probing:
            for chunk in cantonese_first:
                chunk.language = "yue"
            return
        # Chunks whose Cantonese decode and tonality do not make the case are Mandarin: decode
        # them again without the Cantonese prompt.
        mandarin = []
        for chunk in cantonese_first:
            if chunk.looped and _sounds_cantonese(chunk):
                # Judged again on the fallback's text: a loop of one marker proves little.
                prompt = _join_prompt(CANTONESE_PROMPT, options)
                audio = audios[chunk.item]
                raw = self._fallback(audio, chunk, options, prompt)
                self._accept(audio, chunk, raw, options, prompt, fallback=False)
            if _sounds_cantonese(chunk):
                chunk.language = "yue"
            else:
                chunk.language = "zh"
                mandarin.append(chunk)
        self._run(audios, mandarin, rows, options, dialect_prompt=None)

    def _run(
        self,
        audios: list[Audio],
        chunks: list[_Chunk],
        rows: dict[_Chunk, np.ndarray],
        options: TranscribeOptions,
        dialect_prompt: str | None,
        fallback: bool = True,
    ) -> None:
        """Decode chunks grouped by the language token their prompt needs.

        `rows` holds the encoder output of the chunks; a continuation (the rest of a chunk whose
        decode stopped early) starts a new window and is encoded afresh.
        """
        by_language: dict[str, list[_Chunk]] = defaultdict(list)
        for chunk in chunks:
            by_language[chunk.language].append(chunk)
        for language, group in by_language.items():
            prompt = _join_prompt(dialect_prompt, options)
            tokenizer = Tokenizer(
                self.model.hf_tokenizer, self.multilingual, task="transcribe", language=language
            )
            decode_options = self._decode_options(options, prompt, tokenizer)
            pending = group
            for _ in range(1 + MAX_CONTINUATIONS):
                continuations = []
                for batch in _batches(pending, options.batch_size):
                    if all(chunk in rows for chunk in batch):
                        encoded = np.stack([rows[chunk] for chunk in batch])
                    else:  # continuations
                        encoded = self._encode(audios, batch)
                    metadata = [{"offset": c.start, "duration": c.duration} for c in batch]
                    outputs = self.batched.forward(
                        ctranslate2.StorageView.from_array(encoded), tokenizer, metadata,
                        decode_options,
                    )
                    for chunk, raw_segments in zip(batch, outputs):
                        self._accept(
                            audios[chunk.item], chunk, raw_segments, options, prompt, fallback
                        )
                        rest = _continuation(chunk, raw_segments)
                        if rest is not None:
                            continuations.append(rest)
                if not continuations:
                    break
                pending = continuations

    def _decode_options(
        self, options: TranscribeOptions, prompt: str | None, tokenizer: Tokenizer
    ) -> TranscriptionOptions:
        return TranscriptionOptions(
            beam_size=options.beam_size,
            best_of=5,
            patience=1.0,
            length_penalty=1.0,
            repetition_penalty=1.0,
            no_repeat_ngram_size=0,
            log_prob_threshold=guards.LOGPROB_THRESHOLD,
            no_speech_threshold=guards.NO_SPEECH_THRESHOLD,
            compression_ratio_threshold=guards.COMPRESSION_RATIO_THRESHOLD,
            condition_on_previous_text=False,
            prompt_reset_on_temperature=0.5,
            temperatures=[0.0],
            initial_prompt=prompt,
            prefix=None,
            suppress_blank=True,
            suppress_tokens=[-1],
            without_timestamps=False,
            max_initial_timestamp=0.0,
            # Always on: the Cantonese/Mandarin decision weighs each word's probability.
            word_timestamps=True,
            prepend_punctuations="\"'“¿([{-",
            append_punctuations="\"'.。,，!！?？:：”)]}、",
            multilingual=False,
            max_new_tokens=None,
            clip_timestamps="0",
            hallucination_silence_threshold=None,
            hotwords=options.hotwords,
        )

    def _accept(
        self,
        audio: Audio,
        chunk: _Chunk,
        raw_segments: list[dict],
        options: TranscribeOptions,
        prompt: str | None,
        fallback: bool = True,
    ) -> None:
        """Turn one chunk's decoder output into Segments, re-decoding it (with `fallback`) if it
        ran away, else marking it `looped`."""
        text = "".join(s["text"] for s in raw_segments)
        if text.strip() and get_compression_ratio(text) > guards.COMPRESSION_RATIO_THRESHOLD:
            if fallback:
                raw_segments = self._fallback(audio, chunk, options, prompt)
            else:
                (chunk.parent or chunk).looped = True
        segments = []
        for raw in raw_segments:
            seg_text = guards.collapse_repetitions(raw["text"].strip())
            if not seg_text or guards.is_silence(raw["no_speech_prob"], raw["avg_logprob"]):
                continue
            if prompt and guards.echoes_prompt(seg_text, [prompt]):
                continue
            words = [
                Word(
                    start=round(w["start"], 3),
                    end=round(w["end"], 3),
                    text=w["word"],
                    probability=round(w["probability"], 4),
                )
                for w in raw.get("words") or []
            ]
            segments.append(
                Segment(
                    start=round(max(raw["start"], chunk.start), 3),
                    end=round(min(raw["end"], chunk.end), 3),
                    text=seg_text,
                    language=chunk.language,
                    words=words,
                    avg_logprob=round(raw["avg_logprob"], 4),
                    no_speech_prob=round(raw["no_speech_prob"], 4),
                )
            )
        if chunk.parent is None:
            chunk.segments = segments
        else:
            chunk.parent.segments.extend(segments)

    def _fallback(
        self, audio: Audio, chunk: _Chunk, options: TranscribeOptions, prompt: str | None
    ) -> list[dict]:
        """Decode one chunk again with temperature fallback (faster-whisper's sequential path)."""
        segments, _ = self.model.transcribe(
            audio.slice(chunk.start, chunk.end),
            language=chunk.language,
            beam_size=options.beam_size,
            initial_prompt=prompt,
            hotwords=options.hotwords,
            temperature=FALLBACK_TEMPERATURES,
            word_timestamps=options.word_timestamps,
            condition_on_previous_text=False,
            vad_filter=False,
        )
        raw = [
            {
                "text": s.text,
                "start": s.start + chunk.start,
                "end": s.end + chunk.start,
                "avg_logprob": s.avg_logprob,
                "no_speech_prob": s.no_speech_prob,
                "words": [
                    {
                        "word": w.word,
                        "start": w.start + chunk.start,
                        "end": w.end + chunk.start,
                        "probability": w.probability,
                    }
                    for w in s.words or []
                ],
            }
            for s in segments
        ]
        # Even if every temperature still loops, faster-whisper's own pick among its attempts is
        # a better start than the looping greedy decode; repetitions are collapsed afterwards.
        return raw

    def _assemble(
        self, item: int, audio: Audio, chunks: list[_Chunk], options: TranscribeOptions
    ) -> Transcript:
        segments = []
        for chunk in sorted((c for c in chunks if c.item == item), key=lambda c: c.start):
            for segment in chunk.segments:
                segment.language = chunk.language  # decided after decoding for Chinese chunks
                if options.word_timestamps:
                    _tag_word_languages(segment)
                else:
                    segment.words = []
                segments.append(apply_script(segment, options.script, options.mandarin_script))
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
        )


def _sounds_cantonese(chunk: _Chunk) -> bool:
    """Whether a chunk decoded under the Cantonese prompt makes the case for Cantonese."""
    words = [(w.text, w.probability) for s in chunk.segments for w in s.words]
    score = cantonese_score(words, chunk.tonal_lean)
    log.debug("chunk %.2f-%.2f of item %d: Cantonese score %.3f", chunk.start, chunk.end, chunk.item, score)
    return score > CANTONESE_THRESHOLD


def _tag_word_languages(segment: Segment) -> None:
    """In Chinese segments, mark Latin-script words as English (code-switching)."""
    if segment.language in ("zh", "yue"):
        for word in segment.words:
            if is_latin_word(word.text):
                word.language = "en"


def _merge_close(regions: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """Join speech regions less than MERGE_GAP_S apart, as long as the result fits a window."""
    merged: list[tuple[float, float]] = []
    for start, end in regions:
        if merged and start - merged[-1][1] <= MERGE_GAP_S and end - merged[-1][0] <= CHUNK_SECONDS:
            merged[-1] = (merged[-1][0], end)
        else:
            merged.append((start, end))
    return merged


def _continuation(chunk: _Chunk, raw_segments: list[dict]) -> _Chunk | None:
    """The undecoded rest of a chunk whose decode ended well before the chunk did."""
    if not raw_segments:
        return None  # nothing decoded at all: silence or noise, not an early stop
    stopped = max(raw["end"] for raw in raw_segments)
    if chunk.end - stopped < CONTINUE_AFTER_S:
        return None
    root = chunk.parent or chunk
    return _Chunk(
        chunk.item, stopped, chunk.end, chunk.language, chunk.language_probability,
        chunk.tonal_lean, parent=root,
    )


def _batches(items: list, size: int):
    for i in range(0, len(items), size):
        yield items[i : i + size]


def _join_prompt(dialect_prompt: str | None, options: TranscribeOptions) -> str | None:
    parts = [dialect_prompt, options.prompt, "、".join(options.glossary) or None]
    text = " ".join(p for p in parts if p)
    return text or None

