"""Speaker diarization (who speaks when, `sanyu.diarize.pipeline`: torch and pyannote.audio, with
the windowed clustering of `sanyu.diarize.windowed`) and putting speakers on a transcript
(`sanyu.diarize.merge`: plain Python)."""
