"""Print the path of a real recording for `make demo`.

pyannote.audio's wheel ships a real two-speaker English conversation (sample.wav); the shared
evaluation clips, where present beside the checkout, give a Cantonese one too.
"""

from __future__ import annotations

from pathlib import Path


def demo_recording() -> Path:
    import pyannote.audio

    return Path(pyannote.audio.__file__).parent / "sample" / "sample.wav"


if __name__ == "__main__":
    print(demo_recording())
