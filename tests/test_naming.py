"""Output stems: safe, readable, stable and collision-free."""

from __future__ import annotations

import hashlib
import re
import unicodedata

import pytest

from sanyu.output.naming import MAX_STEM_BYTES, output_stem

HASH = r"[0-9a-f]{12}"
HOSTILE = [
    "../../etc/passwd",
    "..",
    ".",
    "",
    "a/../../b",
    "/",
    "name\nwith\nnewlines.wav",
    "tab\tand\rcarriage.wav",
    "$(rm -rf ~).wav",
    "`reboot`;|&<>*?.mp3",
    "x" * 400 + ".wav",
    "會" * 200 + ".wav",
    "🎤👨\u200d👩\u200d👧 meeting.wav",
    "CON",
    "con.wav",
    "NUL.txt",
    "LPT1",
    "-rf",
    "--help.wav",
    ".bashrc",
    "...",
    "nul\0byte.wav",
    "evil\u202egnp.wav",
    "C:\\Users\\x\\a.wav",
    "back\\slash\\..\\..\\x.wav",
    "trailing. ",
    "\udcff-undecodable.wav",
]


def assert_safe(stem: str) -> None:
    assert stem and re.fullmatch(rf".+-{HASH}", stem), stem
    assert "/" not in stem and "\\" not in stem and ".." not in stem and "\0" not in stem
    assert not any(unicodedata.category(c) in ("Cc", "Cs", "Zl", "Zp", "Zs") for c in stem)
    assert not any(unicodedata.category(c) == "Cf" and c not in "\u200c\u200d" for c in stem)
    assert stem[0] not in ".-_" and stem[0] != " "
    assert len(stem.encode("utf-8")) <= MAX_STEM_BYTES
    assert stem.split(".")[0].upper() not in {"CON", "PRN", "AUX", "NUL", "COM1", "LPT1"}
    assert stem == unicodedata.normalize("NFC", stem)


@pytest.mark.parametrize("name", HOSTILE)
def test_hostile_names_give_safe_stems(name):
    assert_safe(output_stem(name))
    assert_safe(output_stem(name, root="meetings"))


def test_exact_stems():
    digest = hashlib.sha256(b"path\0a.wav").hexdigest()[:12]
    assert output_stem("a.wav") == f"a-{digest}"
    assert output_stem("../../etc/passwd") == "passwd-" + hashlib.sha256(b"path\0../../etc/passwd").hexdigest()[:12]
    assert output_stem("$(rm -rf ~).wav").startswith("rm_-rf-")
    assert output_stem("name\nwith\nnewlines.wav").startswith("name_with_newlines-")
    assert output_stem("CON").startswith("CON-")
    assert output_stem("..").startswith("input-")
    assert output_stem("-rf").startswith("rf-")
    assert output_stem(".bashrc").startswith("bashrc-")
    assert output_stem("a..b.wav").startswith("a.b-")
    assert output_stem("evil\u202egnp.wav").startswith("evil_gnp-")


def test_chinese_and_emoji_names_stay_readable_in_nfc():
    assert re.fullmatch(rf"立法會會議-{HASH}", output_stem("立法會會議.wav"))
    assert re.fullmatch(rf"會議（第一次）-{HASH}", output_stem("/data/會議（第一次）.m4a"))
    decomposed = unicodedata.normalize("NFD", "café.wav")
    assert output_stem(decomposed).startswith("café-")
    assert output_stem("🎤 meeting.wav").startswith("🎤_meeting-")


def test_similar_names_never_collide():
    groups = [
        ("a b.wav", "a_b.wav", "a-b.wav", "a\tb.wav"),
        ("x.wav", "x.mp3", "x", "x.WAV"),
        ("one/x.wav", "two/x.wav", "x.wav"),
        ("..", ".", ""),
    ]
    for group in groups:
        stems = [output_stem(name) for name in group]
        assert len(set(stems)) == len(stems), stems
    under_root = ["m/2024/a.wav", "m/2024__a.wav", "m/2024/a.mp3", "m/2024/a b.wav"]
    stems = [output_stem(name, root="m") for name in under_root]
    assert len(set(stems)) == len(stems)


def test_root_flattens_subfolders_and_hashes_the_relative_path():
    digest = hashlib.sha256("relative\0 2024/三月/a.wav".replace(" ", "").encode()).hexdigest()[:12]
    assert output_stem("meetings/2024/三月/a.wav", root="meetings") == f"2024__三月__a-{digest}"
    # The same relative path under another mount gives the same stem.
    assert output_stem("/mnt/x/meetings/2024/三月/a.wav", root="/mnt/x/meetings/") == f"2024__三月__a-{digest}"
    assert output_stem("s3://bucket/meetings/2024/三月/a.wav", root="s3://bucket/meetings") == f"2024__三月__a-{digest}"


def test_inputs_outside_root_do_not_escape_or_collide():
    inside = output_stem("meetings/a.wav", root="meetings")
    outside = output_stem("a.wav", root="meetings")  # not under root: hashed by its own path
    escaped = output_stem("meetings/../../etc/passwd", root="meetings")
    assert inside != outside
    assert escaped.startswith("passwd-") and ".." not in escaped
    assert output_stem("gs://other/a.wav", root="s3://bucket/meetings").startswith("a-")


def test_long_names_are_cut_with_the_hash_kept():
    long_a, long_b = "x" * 300 + "a.wav", "x" * 300 + "b.wav"
    stem_a, stem_b = output_stem(long_a), output_stem(long_b)
    assert stem_a != stem_b
    assert len(stem_a.encode()) == MAX_STEM_BYTES and stem_a.startswith("x" * 100)
    cjk = output_stem("會議" * 100 + ".wav")
    assert len(cjk.encode()) <= MAX_STEM_BYTES and cjk.startswith("會議會議")
    accents = output_stem("e\u0301" * 300)  # NFC makes é; never a dangling combining mark
    assert set(accents.rsplit("-", 1)[0]) == {"é"}


def test_stems_are_stable():
    assert output_stem("meetings/2024/a.wav", "meetings") == output_stem("meetings/2024/a.wav", "meetings")
    assert output_stem("./a.wav") == output_stem("a.wav")  # the same path, written differently
    assert output_stem("a.wav") == "a-" + hashlib.sha256(b"path\0a.wav").hexdigest()[:12]
