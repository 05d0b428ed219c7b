"""faster-whisper and CTranslate2 internals (tested with faster-whisper 1.2.1, CTranslate2 4.8.5).

Sanyu drives the model stage by stage (encode once; detect language on each utterance's frames of
the encoder output; generate in batches; align words), where faster-whisper's own pipelines run
all stages at once. What it borrows from faster-whisper is small and pinned in the lock file:
the model loader, the feature extractor, the tokenizer, prompt building, the timestamp-token
parser `_split_segments_by_timestamps` and the word aligner `add_word_timestamps`.
`tests/test_whisper_adapter.py` calls each of them and fails if their shape changes.
`language_codes`: the Whisper language codes, which faster-whisper keeps in the private
``faster_whisper.tokenizer._LANGUAGE_CODES`` (the HTTP layer checks a request before any model is
at hand).

Encoder output stays where the model runs: a NumPy array on the CPU, a torch tensor on CUDA
(through ``__cuda_array_interface__``, no host copy), so rows and frame spans can be taken from it
for detection and decoding without a round trip.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from functools import lru_cache

import ctranslate2
import numpy as np
from faster_whisper import WhisperModel
from faster_whisper.audio import pad_or_trim
from faster_whisper.feature_extractor import FeatureExtractor
from faster_whisper.tokenizer import _LANGUAGE_CODES, Tokenizer
from faster_whisper.transcribe import get_suppressed_tokens
from faster_whisper.vad import VadOptions, get_speech_timestamps

SAMPLE_RATE = 16000
ENCODER_FRAMES_PER_SECOND = 50  # one encoder frame per 20 ms
PREPEND_PUNCTUATIONS = "\"'“¿([{-"
APPEND_PUNCTUATIONS = "\"'.。,，!！?？:：”)]}、"


def language_codes() -> frozenset[str]:
    return frozenset(_LANGUAGE_CODES)


def speech_timestamps(
    samples: np.ndarray, threshold: float, min_silence_ms: int, pad_ms: int, max_speech_s: float
) -> list[tuple[float, float]]:
    """Silero VAD (shipped with faster-whisper): speech regions in seconds."""
    options = VadOptions(
        threshold=threshold, min_silence_duration_ms=min_silence_ms, speech_pad_ms=pad_ms,
        max_speech_duration_s=max_speech_s,
    )
    return [
        (ts["start"] / SAMPLE_RATE, ts["end"] / SAMPLE_RATE)
        for ts in get_speech_timestamps(samples, options)
    ]


class LogMel:
    """A model's log-mel front end (80 or 128 bins, from its preprocessor_config.json), built
    without loading the model: for CPU work ahead of a model actor."""

    def __init__(self, model_path: str):
        self.extractor = FeatureExtractor(**WhisperModel._get_feature_kwargs(None, model_path))

    def __call__(self, samples: np.ndarray) -> np.ndarray:
        """Features of up to 30 s of audio, padded to a full window."""
        return pad_or_trim(self.extractor(samples)[..., :-1])


def compression_ratio(text: str) -> float:
    """gzip ratio of a text, Whisper's measure of a repetition loop."""
    data = text.encode("utf-8")
    return len(data) / len(zlib.compress(data)) if data else 0.0


def frame_span(start: float, end: float) -> tuple[int, int]:
    """Encoder frames covering ``start``..``end`` seconds of a window (at least one)."""
    first = max(0, int(start * ENCODER_FRAMES_PER_SECOND))
    return first, max(first + 1, int(np.ceil(end * ENCODER_FRAMES_PER_SECOND)))


@dataclass
class Generation:
    """One decoded window: text and timestamp tokens (end-of-text stripped), and its scores."""

    tokens: list[int]
    avg_logprob: float
    no_speech_prob: float
    capped: bool  # stopped at its token cap, not by end-of-text
    full: bool = False  # stopped because no decoder position was left (not a loop by itself)
    temperature: float = 0.0


class EncoderOutput:
    """A batch of encoder output, kept on the model's device."""

    def __init__(self, storage: ctranslate2.StorageView, cuda: bool):
        if cuda:
            import torch

            self.array = torch.as_tensor(storage, device="cuda")
        else:
            self.array = np.asarray(storage)
        self.cuda = cuda

    def __len__(self) -> int:
        return int(self.array.shape[0])

    def rows(self, indices: list[int]) -> Batch:
        if indices == list(range(len(self))):
            return Batch(self.array, self.cuda)
        return Batch(self.array[indices], self.cuda)

    def frames(self, row: int, start: int, end: int) -> Batch:
        return Batch(self.array[row : row + 1, start:end], self.cuda)

    def mean(self, row: int, start: int, end: int) -> np.ndarray:
        """The mean encoder frame of a span, as float64 on the host."""
        frames = self.array[row, start:end]
        if self.cuda:
            return frames.float().mean(dim=0).cpu().numpy().astype(np.float64)
        return frames.astype(np.float64).mean(axis=0)


class Batch:
    """Encoder output as CTranslate2 takes it: ``view`` borrows ``array``'s memory, so the two
    live together."""

    def __init__(self, array, cuda: bool):
        self.array = array.contiguous() if cuda else np.ascontiguousarray(array)
        self.cuda = cuda
        self.view = ctranslate2.StorageView.from_array(self.array)

    def row(self, index: int) -> Batch:
        return Batch(self.array[index : index + 1], self.cuda)


def gather(rows: list[tuple[EncoderOutput, int]]) -> Batch:
    """One batch from rows of (possibly different) encoder outputs, on their device."""
    first = rows[0][0]
    if all(output is first for output, _ in rows):
        return first.rows([row for _, row in rows])
    if first.cuda:
        import torch

        return Batch(torch.stack([output.array[row] for output, row in rows]), True)
    return Batch(np.stack([output.array[row] for output, row in rows]), False)


class WhisperBackend:
    """A loaded CTranslate2 Whisper model with the operations the engine needs."""

    max_length = 448  # decoder positions, prompt included

    def __init__(self, path: str, device: str, compute_type: str, cpu_threads: int):
        self.path = path
        self.model = WhisperModel(path, device=device, compute_type=compute_type, cpu_threads=cpu_threads)
        self.sampled = False  # whether a decode has sampled (temperature fallback) yet
        self.cuda = device == "cuda"
        self.multilingual = self.model.model.is_multilingual
        self.n_mels = self.model.model.n_mels

    def has_language_token(self, code: str) -> bool:
        return self.model.hf_tokenizer.token_to_id(self.language_token(code)) is not None

    @staticmethod
    def language_token(code: str) -> str:
        return f"<|{code}|>"

    @lru_cache(maxsize=None)
    def tokenizer(self, language: str | None) -> Tokenizer:
        return Tokenizer(self.model.hf_tokenizer, self.multilingual, task="transcribe", language=language)

    @property
    def _text_tokenizer(self) -> Tokenizer:
        """For text alone (encoding text does not depend on the language token)."""
        return self.tokenizer("en" if self.multilingual else None)

    @lru_cache(maxsize=None)
    def suppressed_tokens(self) -> tuple[int, ...]:
        return tuple(get_suppressed_tokens(self._text_tokenizer, [-1]))

    def text_tokens(self, text: str) -> list[int]:
        return self._text_tokenizer.encode(" " + text.strip())

    def prompt(self, language: str, previous: list[int], hotwords: str | None) -> list[int]:
        """Prompt tokens: previous text (and hotwords) then the start-of-transcript sequence."""
        return self.model.get_prompt(
            self.tokenizer(language), previous, without_timestamps=False, hotwords=hotwords
        )

    def decode_text(self, tokens: list[int]) -> str:
        """The text of tokens (timestamp and special tokens left out)."""
        return self._text_tokenizer.decode(tokens)

    # ---- model calls --------------------------------------------------------------------

    def transcribe_plain(self, samples: np.ndarray, beam_size: int) -> str:
        """Plain faster-whisper, `WhisperModel.transcribe` with its defaults (one language
        detected per file): the baseline Sanyu is measured against."""
        segments = list(self.model.transcribe(samples, beam_size=beam_size)[0])
        self.sampled = self.sampled or any(s.temperature > 0 for s in segments)
        return "".join(s.text for s in segments)

    def features(self, samples: np.ndarray) -> np.ndarray:
        """Log-mel features of up to 30 s of audio, padded to a full window."""
        return pad_or_trim(self.model.feature_extractor(samples)[..., :-1])

    def encode(self, features: np.ndarray) -> EncoderOutput:
        storage = self.model.model.encode(ctranslate2.StorageView.from_array(features), to_cpu=False)
        return EncoderOutput(storage, self.cuda)

    def detect(self, encoded: EncoderOutput, row: int, start: float, end: float) -> dict[str, float]:
        """Language probabilities of the speech between ``start`` and ``end`` seconds of a window:
        the decoder attends to those encoder frames only."""
        scores = self.model.model.detect_language(encoded.frames(row, *frame_span(start, end)).view)[0]
        return {token[2:-2]: probability for token, probability in scores}

    @staticmethod
    def embedding(encoded: EncoderOutput, row: int, start: float, end: float) -> np.ndarray:
        """The mean encoder frame of the speech between ``start`` and ``end`` seconds."""
        return encoded.mean(row, *frame_span(start, end))

    def room(self, prompt_length: int, max_length: int | None = None) -> int:
        """New tokens CTranslate2 lets a decode with this prompt write within ``max_length``:
        never more than half of it (like openai/whisper's sample_len), nor past it."""
        max_length = self.max_length if max_length is None else max_length
        return min(max_length // 2, max_length - prompt_length + 1)

    def generate(
        self,
        encoded: Batch,
        prompts: list[list[int]],
        caps: list[int],
        *,
        beam_size: int,
        temperature: float = 0.0,
        best_of: int = 5,
    ) -> list[Generation]:
        """Decode a batch. Every prompt must put start-of-transcript at the same position
        (CTranslate2's rule); ``caps`` bounds each row's new tokens (the batch runs to the largest,
        and a row past its own cap counts as capped)."""
        longest, prompt_length = max(caps), len(prompts[0])
        self.sampled = self.sampled or temperature > 0
        max_length = min(self.max_length, max(2 * longest, longest + prompt_length - 1))
        sampling = (
            {"beam_size": 1, "num_hypotheses": best_of, "sampling_topk": 0, "sampling_temperature": temperature}
            if temperature > 0
            else {"beam_size": beam_size, "patience": 1.0}
        )
        results = self.model.model.generate(
            encoded.view,
            prompts,
            max_length=max_length,
            return_scores=True,
            return_no_speech_prob=True,
            suppress_blank=True,
            suppress_tokens=list(self.suppressed_tokens()),
            **sampling,
        )
        room = self.room(prompt_length)
        generations = []
        for result, cap in zip(results, caps):
            tokens = list(result.sequences_ids[0])
            limit = min(cap, room)
            cumulative = result.scores[0] * len(tokens)  # score is length-normalised (penalty 1)
            generations.append(
                Generation(
                    tokens=tokens[:limit],
                    avg_logprob=cumulative / (len(tokens) + 1),
                    no_speech_prob=result.no_speech_prob,
                    capped=len(tokens) >= limit,
                    full=len(tokens) >= room,
                    temperature=temperature,
                )
            )
        return generations

    def split_segments(
        self, language: str, tokens: list[int], duration: float
    ) -> tuple[list[dict], float | None]:
        """Timestamped segments ``{start, end, tokens}`` (window seconds) of one decoded window,
        and where the decode left the window unfinished: faster-whisper drops a last segment
        that was opened and not closed, and seeks to its start to decode the rest of the audio
        again. None where the decode speaks for the whole window."""
        segments, seek, _ = self.model._split_segments_by_timestamps(
            tokenizer=self.tokenizer(language),
            tokens=tokens,
            time_offset=0.0,
            segment_size=int(np.ceil(duration) * self.model.frames_per_second),
            segment_duration=duration,
            seek=0,
        )
        resume = seek / self.model.frames_per_second
        return segments, (resume if resume < duration else None)

    def add_words(
        self, language: str, windows: list[list[dict]], encoded: Batch, durations: list[float]
    ) -> None:
        """Word timings and probabilities (``words``) on each segment of each window, by
        cross-attention alignment; faster-whisper's heuristics included."""
        # One window at a time: faster-whisper carries the end of the last speech from each
        # window of a call to the next (its windows follow one another in one recording), and
        # its word-length heuristics would then depend on which windows shared a batch.
        for i, (segments, duration) in enumerate(zip(windows, durations)):
            for segment in segments:
                segment.setdefault("seek", 0)
            self.model.add_word_timestamps(
                [segments],
                self.tokenizer(language),
                encoded.row(i).view,
                [int(np.ceil(duration) * self.model.frames_per_second)],
                PREPEND_PUNCTUATIONS,
                APPEND_PUNCTUATIONS,
                0.0,
            )
