"""Source groups of the evaluation clips, reported separately: a gain on one kind of speech must
not hide a loss on another (the clip names carry their source, see ../shared/eval/MANIFEST.tsv)."""

from __future__ import annotations

# (name prefix, group), first match wins.
GROUPS: tuple[tuple[str, str], ...] = (
    ("zh_qwen3asr_raokouling", "tongue twister"),
    ("zh_qwen3asr_fast", "fast speech"),
    ("zh_funasrnano_far", "far-field"),
    ("zh_funasrnano_rag", "domain terms"),
    ("zh_sherpa_paraformer", "accented (Sichuanese)"),
    ("zh_glmasr", "whispered"),
    ("zh_aishell", "read (AISHELL)"),
    ("zh_soulx", "podcast / live"),
    ("zh_mossttsd", "podcast / live"),
    ("zh_", "other demo speech"),
    ("en_earnings22", "earnings call"),
    ("en_ami", "meeting"),
    ("en_librispeech", "read (LibriSpeech, LJSpeech)"),
    ("en_ljspeech", "read (LibriSpeech, LJSpeech)"),
    ("en_", "other demo speech"),
    ("yue_sherpa", "news, drama, audiobook"),
    ("yue_wsyue", "WenetSpeech-Yue"),
    ("yue_", "other demo speech"),
)


def group_of(name: str) -> str:
    return next((group for prefix, group in GROUPS if name.startswith(prefix)), "other")
