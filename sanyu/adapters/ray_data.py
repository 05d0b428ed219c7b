"""Ray Data internals (tested with ray[data] 2.60.0): settings of the current `DataContext`
for one job, and quieting what Ray Data prints between a job's own progress lines.

* ``HighMemoryIssueDetector`` warns every 30 s that a model actor uses more memory than it
  reserved; the batch job sizes its pools itself, so the warning is only noise.
* The logger ``ray.data._internal.progress`` says "Progress bars disabled" once per dataset.
* Ray Data warns when fewer inputs than actors are listed; the batch job cuts long recordings
  into pieces, so one input can keep every worker busy.
"""

from __future__ import annotations

import contextlib
import logging
import warnings
from collections.abc import Iterator

from ray.data import DataContext

HIGH_MEMORY_DETECTOR = "HighMemoryIssueDetector"
PROGRESS_LOGGER = "ray.data._internal.progress"
PROGRESS_NOTICE = "Progress bars disabled"
FEW_INPUTS_WARNING = "The minimum number of concurrent actors"


class _DropProgressNotice(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return PROGRESS_NOTICE not in record.getMessage()


@contextlib.contextmanager
def job_context(max_block_bytes: int) -> Iterator[DataContext]:
    """The current DataContext set up for one batch job, restored afterwards: no progress bars
    (the job draws its own), blocks of at most ``max_block_bytes``, every errored block
    tolerated (a batch that keeps killing its worker is reported, not fatal), and quiet."""
    context = DataContext.get_current()
    detectors = context.issue_detectors_config
    saved = (
        context.enable_progress_bars, context.max_errored_blocks, detectors.detectors,
        context.target_max_block_size,
    )
    data_log = logging.getLogger("ray.data")
    saved_level = data_log.level
    notice = _DropProgressNotice()
    context.enable_progress_bars = False
    context.target_max_block_size = max_block_bytes
    context.max_errored_blocks = -1
    detectors.detectors = [d for d in detectors.detectors if d.__name__ != HIGH_MEMORY_DETECTOR]
    data_log.setLevel(max(logging.WARNING, logging.getLogger("sanyu").getEffectiveLevel()))
    logging.getLogger(PROGRESS_LOGGER).addFilter(notice)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", FEW_INPUTS_WARNING, UserWarning)
            yield context
    finally:
        (
            context.enable_progress_bars, context.max_errored_blocks, detectors.detectors,
            context.target_max_block_size,
        ) = saved
        data_log.setLevel(saved_level)
        logging.getLogger(PROGRESS_LOGGER).removeFilter(notice)
