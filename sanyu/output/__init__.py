"""Transcript writers (TXT minutes, SRT, VTT, TSV, JSON, RTTM, DOCX and Markdown minutes) and
output file names."""

from sanyu.output.formats import FORMATS, parse_formats, render, render_bytes, write_outputs
from sanyu.output.naming import output_stem
from sanyu.output.writers import (
    format_timestamp,
    parse_rttm,
    render_rttm_turns,
    rttm_file_id,
    speaker_display_names,
)

__all__ = [
    "FORMATS",
    "format_timestamp",
    "output_stem",
    "parse_formats",
    "parse_rttm",
    "render",
    "render_bytes",
    "render_rttm_turns",
    "rttm_file_id",
    "speaker_display_names",
    "write_outputs",
]
