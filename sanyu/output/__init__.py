"""Transcript formats (TXT minutes, SRT, VTT, TSV, JSON, RTTM, Markdown and DOCX minutes),
writing them, and output names."""

from sanyu.output.clean import format_timestamp, speaker_display_names
from sanyu.output.naming import output_stem
from sanyu.output.rttm import parse_rttm, render_rttm_turns, rttm_file_id
from sanyu.output.writers import ALL, FORMATS, parse_formats, render, render_file, write_outputs

__all__ = [
    "ALL",
    "FORMATS",
    "format_timestamp",
    "output_stem",
    "parse_formats",
    "parse_rttm",
    "render",
    "render_file",
    "render_rttm_turns",
    "rttm_file_id",
    "speaker_display_names",
    "write_outputs",
]
