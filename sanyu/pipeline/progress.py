"""What the batch job shows while it runs (files, audio hours, ETA) and the summary at the end."""

from __future__ import annotations

from collections import defaultdict

from rich.console import Console
from rich.progress import (
    BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn,
)
from rich.table import Table
from rich.text import Text

from sanyu.results import FAILED, OK, BatchSummary, FileResult


class BatchProgress:
    """Live progress on stderr: files, audio hours, ETA."""

    def __init__(self, total: int, console: Console | None, enabled: bool):
        self.total = total
        self.enabled = enabled
        self.console = console
        self.audio_seconds = 0.0
        self.counts: dict[str, int] = defaultdict(int)
        self.progress = None

    def __enter__(self):
        if not self.enabled:
            return self
        self.console = self.console or Console(stderr=True)
        self.progress = Progress(
            TextColumn("[bold]batch"), BarColumn(), MofNCompleteColumn(),
            TextColumn("{task.fields[audio]}"), TextColumn("{task.fields[counts]}"),
            TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(),
            console=self.console, transient=False,
        )
        self.progress.__enter__()
        self.task = self.progress.add_task("files", total=self.total, audio="0.00 h audio", counts="")
        return self

    def __exit__(self, *exc):
        if self.progress is not None:
            self.progress.__exit__(*exc)

    def audio(self, seconds: float) -> None:
        self.audio_seconds += seconds
        self._refresh(advance=0)

    def done(self, result: FileResult) -> None:
        self.counts[result.status] += 1
        if result.status == OK:
            self.audio_seconds += result.duration
        if result.status == FAILED and self.progress is not None:
            self.progress.console.print(
                Text.assemble(("failed ", "red"), f"{result.path} ({result.stage}): {result.reason}")
            )
        self._refresh(advance=1)

    def _refresh(self, advance: int) -> None:
        if self.progress is None:
            return
        counts = ", ".join(f"{n} {s}" for s, n in sorted(self.counts.items()))
        self.progress.update(
            self.task, advance=advance, audio=f"{self.audio_seconds / 3600:.2f} h audio", counts=counts
        )


def _or_dash(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds:.1f} s"


def print_summary(summary: BatchSummary, console=None) -> None:
    """The final table: files ok/reused/skipped/failed, audio, wall time, real-time factor."""
    console = console or Console(stderr=True)
    table = Table(title="Sanyu batch summary", show_header=False)
    table.add_column("what")
    table.add_column("value")
    table.add_row("files", str(len(summary.files)))
    table.add_row("ok (transcribed now)", str(summary.ok))
    table.add_row("reused (stored transcript)", str(summary.reused))
    table.add_row("skipped (already done)", str(summary.skipped))
    table.add_row("failed", f"[red]{summary.failed}[/red]" if summary.failed else "0")
    table.add_row("audio transcribed", _hours(summary.audio_seconds))
    table.add_row("wall time", f"{summary.wall_seconds:.1f} s")
    table.add_row(
        "real-time factor",
        f"{summary.rtf:.3f} ({1 / summary.rtf:.1f}× real time)" if summary.rtf else "-",
    )
    phases = summary.phases.to_dict()
    table.add_row(
        "fixed costs",
        f"Ray {phases['ray_s']:.1f} s; first piece after {_or_dash(phases['first_piece_s'])}; "
        f"last worker alone for {_or_dash(phases['tail_s'])}",
    )
    table.add_row("output", summary.output)
    console.print(table)
    for f in summary.files:
        if f.status == FAILED:
            console.print(f"failed: {f.path} [{f.stage}] {f.reason}", markup=False, highlight=False)
    if summary.errors and summary.failed:
        console.print(f"errors listed in {summary.errors}", markup=False, highlight=False)
    nodes = summary.pieces_by_node()
    if len(nodes) > 1:
        console.print("pieces transcribed per Ray node: " + ", ".join(
            f"{node[:12]} {count}" for node, count in nodes.items()), markup=False, highlight=False)


def _hours(seconds: float) -> str:
    return f"{seconds:.1f} s ({seconds / 3600:.2f} h)"
