"""A tiny, randomly initialised Whisper in large-v3's shape, built offline for tests.

Large-v3 differs from the Whisper models the tests otherwise load (base) in two ways that change
code paths: 128 mel bins instead of 80, and a vocabulary of 51866 tokens with a 100th language
token, `<|yue|>` (Cantonese), inserted after `<|su|>`, so that every special token after it moves
up by one. `build_tiny_large_v3` writes a CTranslate2 model with exactly that interface but tiny
layers, through the tools a real conversion uses (transformers' Whisper classes, CTranslate2's
converter), with no download: the tokenizer is base's (fetched by `make models`) with `<|yue|>`
inserted.

The weights are random, with a few levers set in the decoder so that a run goes where a real
model's run on Cantonese speech goes, whatever the audio (see `_steer`):
- at the language position the model strongly prefers `language` (`<|yue|>`), so auto-detection
  takes the model's own `<|yue|>` path;
- text positions draw from the characters of `text` (each one token), one after another, and the
  last character of `text` ends the sentence, so decoding writes short, varied, confident text
  and stops, instead of 448 random tokens per window.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

# Large-v3's special tokens, in openai/whisper's order (whisper/tokenizer.py, get_encoding):
# <|endoftext|>, <|startoftranscript|>, 100 language tokens (the last `yue`), the task and
# control tokens, then 1501 timestamps. Base has 99 languages, so from <|translate|> on its ids
# are one lower.
ENDOFTEXT = 50257
STARTOFTRANSCRIPT = 50258
FIRST_LANGUAGE = 50259  # <|en|>
YUE = 50358
TRANSLATE = 50359
TRANSCRIBE = 50360
NOSPEECH = 50363  # after <|startoflm|>, <|startofprev|>
NOTIMESTAMPS = 50364  # then <|0.00|> = 50365 ... <|30.00|> = 51865
VOCAB_SIZE = 51866
NUM_LANGUAGES = 100
N_MELS = 128

SEED = 20241123
# Characters that are one token each in Whisper's vocabulary (係 is a Cantonese marker); the last
# one ends each sentence.
CANTONESE_TEXT = "係我你好人去食飯今日都有就呢"

# The levers' strengths, in logits (random logits sit within a few units of 0), see `_steer`.
LANGUAGE_LOGIT = 30.0  # the steered language, at the language position
TEXT_LOGIT = 20.0  # each steered character, at every position
TEXT_SPREAD = 5.0  # its per-step variation, which picks one character at each step
END_CHARACTER_LOGIT = 3.0  # added for the sentence-ending character: sentences of a few characters
END_LOGIT = 40.0  # end-of-text, after the sentence-ending character
# A residual-stream vector this long outweighs everything else at its position.
DOMINANT = 1000.0
# The final LN's bias length: far above the ~1 that the random state projects on its direction,
# so that the steered logits hardly move with it.
BIAS_NORM = 20.0


def base_tokenizer_path() -> Path:
    from sanyu.models import resolve_whisper

    return Path(resolve_whisper("base")) / "tokenizer.json"


def large_v3_tokenizer(base: dict) -> dict:
    """Base's tokenizer.json (51865 tokens) turned into large-v3's (51866): `<|yue|>` inserted."""
    tokenizer = json.loads(json.dumps(base))
    added = tokenizer["added_tokens"]
    su = next((token for token in added if token["content"] == "<|su|>"), None)
    if su is None or su["id"] != YUE - 1 or any(token["content"] == "<|yue|>" for token in added):
        raise ValueError("expected a multilingual Whisper tokenizer whose 99 languages end at <|su|>")
    for token in added:
        if token["id"] >= YUE:
            token["id"] += 1
    added.append({**su, "id": YUE, "content": "<|yue|>"})
    added.sort(key=lambda token: token["id"])
    ids = {token["content"]: token["id"] for token in added}
    for special in tokenizer["post_processor"]["special_tokens"].values():
        special["ids"] = [ids[name] for name in special["tokens"]]
    return tokenizer


def build_tiny_large_v3(
    directory: Path,
    *,
    language: str | None = "yue",
    text: str | None = CANTONESE_TEXT,
    d_model: int = 64,
    layers: int = 2,
    heads: int = 2,
    seed: int = SEED,
) -> Path:
    """Write a CTranslate2 Whisper model in large-v3's shape into `directory` and return it.

    `language=None` and `text=None` leave the decoder wholly random (its text is then mostly
    timestamps, decoded to the length limit).
    """
    import torch
    from ctranslate2.converters import TransformersConverter
    from transformers import (
        GenerationConfig,
        PreTrainedTokenizerFast,
        WhisperConfig,
        WhisperFeatureExtractor,
        WhisperForConditionalGeneration,
    )

    base_path = base_tokenizer_path()
    tokenizer_json = large_v3_tokenizer(json.loads(base_path.read_text(encoding="utf-8")))
    base_config = json.loads((base_path.parent / "config.json").read_text(encoding="utf-8"))
    ids = {token["content"]: token["id"] for token in tokenizer_json["added_tokens"]}
    languages = [name for name, i in ids.items() if FIRST_LANGUAGE <= i <= YUE]
    if len(languages) != NUM_LANGUAGES:
        raise ValueError(f"{base_path}: expected {NUM_LANGUAGES - 1} languages before <|yue|>")

    config = WhisperConfig(
        vocab_size=VOCAB_SIZE,
        num_mel_bins=N_MELS,
        d_model=d_model,
        encoder_layers=layers,
        decoder_layers=layers,
        encoder_attention_heads=heads,
        decoder_attention_heads=heads,
        encoder_ffn_dim=2 * d_model,
        decoder_ffn_dim=2 * d_model,
        max_source_positions=1500,
        max_target_positions=448,
        pad_token_id=ENDOFTEXT,
        bos_token_id=ENDOFTEXT,
        eos_token_id=ENDOFTEXT,
        decoder_start_token_id=STARTOFTRANSCRIPT,
        begin_suppress_tokens=[220, ENDOFTEXT],
        # Output rows apart from input embeddings, so steering the output leaves the input random.
        tie_word_embeddings=False,
    )
    torch.manual_seed(seed)
    model = WhisperForConditionalGeneration(config).eval()
    _steer(
        model,
        language_token=ids[f"<|{language}|>"] if language else None,
        text_tokens=_text_tokens(tokenizer_json, text),
    )
    # What CTranslate2's converter reads, as in large-v3's generation_config.json. Made from
    # scratch: one derived from the model config is not read back from disk.
    model.generation_config = GenerationConfig(
        bos_token_id=ENDOFTEXT,
        eos_token_id=ENDOFTEXT,
        pad_token_id=ENDOFTEXT,
        decoder_start_token_id=STARTOFTRANSCRIPT,
        max_length=448,
        is_multilingual=True,
        lang_to_id={name: ids[name] for name in languages},
        task_to_id={"translate": TRANSLATE, "transcribe": TRANSCRIBE},
        no_timestamps_token_id=NOTIMESTAMPS,
        suppress_tokens=[i + 1 if i >= YUE else i for i in base_config["suppress_ids"]],
        begin_suppress_tokens=[220, ENDOFTEXT],
        alignment_heads=[[layer, head] for layer in range(layers // 2, layers) for head in range(heads)],
    )

    directory = Path(directory)
    with tempfile.TemporaryDirectory(prefix="tiny-large-v3-hf-") as staging:
        staging = Path(staging)
        model.save_pretrained(staging)
        tokenizer_file = staging / "tokenizer.json"
        tokenizer_file.write_text(json.dumps(tokenizer_json, ensure_ascii=False), encoding="utf-8")
        PreTrainedTokenizerFast(tokenizer_file=str(tokenizer_file)).save_pretrained(staging)
        WhisperFeatureExtractor(feature_size=N_MELS).save_pretrained(staging)
        converter = TransformersConverter(
            str(staging), copy_files=["tokenizer.json", "preprocessor_config.json"]
        )
        converter.convert(str(directory), force=True)
    return directory


def _text_tokens(tokenizer_json: dict, text: str | None) -> list[int]:
    if not text:
        return []
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_str(json.dumps(tokenizer_json))
    tokens = []
    for character in dict.fromkeys(text):
        ids = tokenizer.encode(character, add_special_tokens=False).ids
        if len(ids) != 1:
            raise ValueError(f"{character!r} is {len(ids)} tokens in Whisper's vocabulary, not one")
        tokens.append(ids[0])
    return tokens


def _steer(model, *, language_token: int | None, text_tokens: list[int]) -> None:
    """Set the levers on a random decoder (output rows untied from input embeddings).

    Whisper's decoder is pre-norm: `logits = W · LN(x)`, and attention reads normalised inputs,
    so a huge vector added to one position's residual stream `x` decides what LN writes there
    (about √d times its direction) without reaching any other position. The levers use
    orthonormal directions in the zero-mean space LN writes: `a`, `u`, `e`, and one `v` per
    steered character.
    - Language: position 0 (start-of-transcript, after which the language is read) gets a huge
      positional embedding along `a`, and the language token's output row gains `a`.
    - Text: the final LN's bias becomes `u` (added at every position) and each character's row
      gains `u`, a large logit everywhere, plus its own `v`, a spread that follows the random
      state, so that a different character wins from one step to the next.
    - End: the last character's input embedding gains a huge `e`, and end-of-text's row gains
      `e`: the step after that character writes end-of-text, so segments stay short.
    """
    import torch

    decoder = model.model.decoder
    d_model = model.config.d_model
    if d_model < len(text_tokens) + 4:
        raise ValueError(f"d_model={d_model} is too small to steer {len(text_tokens)} characters")
    generator = torch.Generator().manual_seed(SEED)
    basis = torch.randn(d_model, len(text_tokens) + 3, generator=generator)
    basis -= basis.mean(dim=0)  # LN writes zero-mean vectors
    directions, _ = torch.linalg.qr(basis)
    a, u, e, spreads = directions[:, 0], directions[:, 1], directions[:, 2], directions[:, 3:].T
    rows = model.proj_out.weight
    scale = d_model**0.5  # the length LN gives a dominant direction
    with torch.no_grad():
        if language_token is not None:
            decoder.embed_positions.weight[0] = DOMINANT * a
            rows[language_token] += LANGUAGE_LOGIT / scale * a
        if text_tokens:
            decoder.layer_norm.bias.copy_(BIAS_NORM * u)
            for token, spread in zip(text_tokens, spreads):
                rows[token] += TEXT_LOGIT / BIAS_NORM * u + TEXT_SPREAD * spread
            rows[text_tokens[-1]] += END_CHARACTER_LOGIT / BIAS_NORM * u
            decoder.embed_tokens.weight[text_tokens[-1]] += DOMINANT * e
            rows[ENDOFTEXT] += END_LOGIT / scale * e


class CallRecorder:
    """Stands in for a loaded WhisperModel's CTranslate2 model, recording what reaches it.

    `prompts`: every decoder prompt given to `generate` (start-of-transcript, language, task...);
    `feature_bins`: the mel-bin count of every feature batch given to `encode`.
    """

    def __init__(self, model):
        self.model = model
        self.prompts: list[list[int]] = []
        self.feature_bins: list[int] = []

    def encode(self, features, *args, **kwargs):
        self.feature_bins.append(int(features.shape[-2]))
        return self.model.encode(features, *args, **kwargs)

    def generate(self, features, prompts, *args, **kwargs):
        self.prompts.extend(list(prompt) for prompt in prompts)
        return self.model.generate(features, prompts, *args, **kwargs)

    @property
    def language_tokens(self) -> list[int]:
        """The token after start-of-transcript in each prompt: the language decoded under."""
        return [prompt[prompt.index(STARTOFTRANSCRIPT) + 1] for prompt in self.prompts]

    def __getattr__(self, name):
        return getattr(self.model, name)


@contextmanager
def record_calls(whisper_model) -> Iterator[CallRecorder]:
    """Record the prompts and features that a faster-whisper `WhisperModel` (the engine's
    subclass included) passes to CTranslate2 inside the block."""
    recorder = CallRecorder(whisper_model.model)
    whisper_model.model = recorder
    try:
        yield recorder
    finally:
        whisper_model.model = recorder.model
