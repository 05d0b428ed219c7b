"""Speaker diarization (who speaks when, `sanyu.diarize.pipeline`: torch and pyannote.audio)
and putting speakers on a transcript (`sanyu.diarize.merge`: plain Python)."""
