"""Output file names: a stable, safe, readable stem for each input.

Scheme: ``<readable>-<hash>``, always with the hash.

* ``hash`` is the first 12 hex digits of the SHA-256 of the input's identity: its path
  relative to ``root`` when the input lies under ``root`` (so the stem does not change
  when the tree is mounted elsewhere), otherwise its normalised path as given (a URL is
  taken verbatim). Two different inputs therefore never share a stem, whatever sanitising
  does to the readable part (``a b.wav`` / ``a_b.wav``, ``x.wav`` / ``x.mp3``,
  ``a/x.wav`` / ``b/x.wav``). The stem is stable: the same path string gives the same
  stem in every run and on every machine.
* ``readable`` is the relative path under ``root`` with its folders flattened by ``__``
  (``meetings/2024/a.wav`` under ``meetings`` -> ``2024__a``), or just the file name when
  there is no root (or the input is not under it); the last extension is dropped.
  Unicode is kept in NFC (``立法會會議.wav`` -> ``立法會會議-…``); letters, digits, marks,
  non-ASCII punctuation and symbols (emoji) stay, as do ASCII ``- _ . + = @ ,``; every
  other character (``/ \\ : * ? " < > | $ ( ) ;``, quotes, spaces, control and
  formatting characters) becomes ``_``. Runs of ``_`` and of ``.`` shrink to one, and
  the part never starts with ``.``, ``-`` or ``_`` nor ends with ``.``, ``_`` or ``-``.
  An empty result becomes ``input``. It is cut (at a character boundary) so the whole
  stem is at most ``MAX_STEM_BYTES`` bytes of UTF-8.

Every entry point (``sanyu transcribe``, ``sanyu batch``, ``POST /v1/jobs``) names inputs this
way with the root of its listing (:func:`sanyu.inputs.list_inputs`): a folder for the files
below it, a glob's fixed prefix, a manifest's folder, a lone file's own folder (so an upload
named ``a.wav`` is named as ``sanyu transcribe a.wav`` names it: :func:`file_stem`), the
server's input root for a job's ``uri``, and the common folder of several inputs given together.

So a stem never holds a path separator, ``..``, NUL or a control character, never starts
with a dot or a dash, and is never a Windows reserved name (``CON-1a2b3c4d`` is not).
"""

from __future__ import annotations

import hashlib
import os
import posixpath
import re
import unicodedata

from sanyu.paths import base_name, split_url

MAX_STEM_BYTES = 150
HASH_CHARS = 12  # 48 bits: even 100,000 inputs of one readable name hardly ever meet
_ASCII_KEPT = set("-_.+=@,")
_JOINERS = {"\u200c", "\u200d"}  # zero-width (non-)joiner: part of emoji and some scripts


def _encode(text: str) -> bytes:
    try:
        return text.encode("utf-8", "surrogateescape")  # names decoded by os.fsdecode
    except UnicodeEncodeError:
        return text.encode("utf-8", "surrogatepass")


def _relative(path: str, root: str | None) -> str | None:
    """``path`` relative to ``root`` with ``/`` separators; None when it is not under it."""
    if root is None:
        return None
    url, root_url = split_url(path), split_url(root)
    if (url is None) != (root_url is None):
        return None
    if url is not None and root_url is not None:
        if url[0] != root_url[0]:
            return None
        prefix = root_url[1].rstrip("/") + "/"
        rest = url[1]
        if not rest.startswith(prefix) or not rest[len(prefix):].strip("/"):
            return None
        return rest[len(prefix):].strip("/")
    relative = os.path.relpath(os.path.abspath(path), os.path.abspath(root))
    relative = relative.replace(os.sep, "/")
    if relative == "." or relative == ".." or relative.startswith("../"):
        return None
    return relative


def _identity(path: str) -> str:
    """The string hashed for an input given without a usable root."""
    if split_url(path) is not None:
        return path
    return posixpath.normpath(path.replace(os.sep, "/")) if path else path


def _keep(char: str) -> bool:
    if char.isascii():
        return char.isalnum() or char in _ASCII_KEPT
    if char in _JOINERS:
        return True
    category = unicodedata.category(char)
    return category[0] in "LMNPS"  # not C* (control, format, surrogate, private) nor Z*


def _clean_part(part: str) -> str:
    part = "".join(char if _keep(char) else "_" for char in unicodedata.normalize("NFC", part))
    part = re.sub(r"_+", "_", part)
    part = re.sub(r"\.+", ".", part)
    return part.strip("._-")


def _drop_extension(name: str) -> str:
    base, dot, extension = name.rpartition(".")
    if dot and base.strip(".") and extension and "/" not in extension:
        return base
    return name


def _truncate(text: str, max_bytes: int) -> str:
    """``text`` cut to at most ``max_bytes`` of UTF-8, never inside a character cluster."""
    if len(text.encode("utf-8")) <= max_bytes:
        return text
    size = end = 0
    while end < len(text) and size + len(text[end].encode("utf-8")) <= max_bytes:
        size += len(text[end].encode("utf-8"))
        end += 1

    def joins(char: str) -> bool:  # a combining mark, variation selector or joiner
        return bool(unicodedata.combining(char)) or unicodedata.category(char) in ("Mn", "Me", "Cf")

    while end > 0 and (joins(text[end]) or joins(text[end - 1])):
        end -= 1
    return text[:end].rstrip("._-")


def output_stem(input_path: str | os.PathLike, root: str | os.PathLike | None = None) -> str:
    """A stable, file-system-safe stem for the outputs of ``input_path`` (see module doc)."""
    path = os.fspath(input_path)
    relative = _relative(path, os.fspath(root) if root is not None else None)
    if relative is not None:
        return _stem("relative\0" + relative, relative.split("/"))
    return _stem("path\0" + _identity(path), [base_name(path)])


def file_stem(name: str) -> str:
    """The stem of a lone file named ``name``: its name relative to its own folder, as
    ``sanyu transcribe NAME`` or ``sanyu batch NAME`` names it (an upload has only a name)."""
    name = base_name(name)
    return _stem("relative\0" + name, [name])


def _stem(identity: str, parts: list[str]) -> str:
    parts = [*parts[:-1], _drop_extension(parts[-1])]
    cleaned = [part for part in (_clean_part(part) for part in parts) if part]
    readable = "__".join(cleaned) or "input"
    digest = hashlib.sha256(_encode(identity)).hexdigest()[:HASH_CHARS]
    readable = _truncate(readable, MAX_STEM_BYTES - HASH_CHARS - 1) or "input"
    return f"{readable}-{digest}"
