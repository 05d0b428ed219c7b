"""Speaker diarization (who speaks when) and putting speakers on a transcript."""

from sanyu.diarize.merge import assign_speakers
from sanyu.diarize.pipeline import Diarization, Diarizer

__all__ = ["Diarization", "Diarizer", "assign_speakers"]
