"""Third-party internals, each behind one small module.

Sanyu uses a few private parts of Ray, Ray Data, Ray Serve, pyannote.audio and faster-whisper.
They live here and nowhere else, the libraries are pinned exactly (``==``) in pyproject.toml,
and tests/test_adapters.py checks each one against the installed library, so an upgrade that
moves or changes one fails there, by name, instead of somewhere in the middle of a job.
"""
