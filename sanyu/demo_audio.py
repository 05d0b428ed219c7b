"""Print the path of a real recording for `make demo`.

pyannote.audio's wheel ships a real two-speaker English conversation (sample.wav); the shared
evaluation clips, where present beside the checkout, give a Cantonese one too.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path


def demo_recording() -> Path:
    """pyannote.audio's sample.wav, found without importing pyannote.audio (seconds of torch)."""
    spec = importlib.util.find_spec("pyannote.audio")
    if spec is None or spec.origin is None:
        raise SystemExit("pyannote.audio is not installed: run `make setup`")
    return Path(spec.origin).parent / "sample" / "sample.wav"


if __name__ == "__main__":
    print(demo_recording())
