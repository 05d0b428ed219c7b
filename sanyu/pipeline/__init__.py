"""`sanyu batch`: the Ray Data job that transcribes many recordings, resumably.

The stages, in the order data flows through them: `sanyu.inputs` (listing, on the driver),
`prepare` (fetch, hash, skip, decode; `pieces` cuts long recordings), `workers` (Whisper actors,
then finishers that join, diarize and write through `sanyu.storage`), with `plan` sizing the
actor pools, `progress` drawing the display and `driver` running it all (`run_batch`).
`settings` holds what the job is asked (`BatchSettings`) and needs nothing heavy; the other
modules import Ray.
"""
