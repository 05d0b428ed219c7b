"""Transcript writers (TXT minutes, SRT, VTT, TSV, JSON, RTTM) and output file names."""

from sanyu.output.naming import output_stem
from sanyu.output.writers import (
    FORMATS,
    format_timestamp,
    parse_formats,
    parse_rttm,
    render,
    render_rttm_turns,
    rttm_file_id,
    speaker_display_names,
    write_outputs,
)

__all__ = [
    "FORMATS",
    "format_timestamp",
    "output_stem",
    "parse_formats",
    "parse_rttm",
    "render",
    "render_rttm_turns",
    "rttm_file_id",
    "speaker_display_names",
    "write_outputs",
]
