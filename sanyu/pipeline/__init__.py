"""The Ray Data batch job (`sanyu batch`) and the output storage it shares with the HTTP jobs."""

from sanyu.pipeline.inputs import InputItem, list_inputs, local_copy
from sanyu.pipeline.storage import Storage, result_key

__all__ = ["BatchSummary", "InputItem", "Storage", "list_inputs", "local_copy", "result_key", "run_batch"]


def __getattr__(name):  # the job module imports Ray: only when it is used
    if name in ("run_batch", "BatchSummary", "print_summary"):
        from sanyu.pipeline import job

        return getattr(job, name)
    raise AttributeError(name)
