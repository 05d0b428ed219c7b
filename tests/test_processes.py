"""A command's stop signal wins over what the libraries raise while they stop (fast, no Ray)."""

from __future__ import annotations

import os
import signal
import time

import pytest

from sanyu.processes import command_process, stop_requested


def _signal_self() -> None:
    os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(5)  # the handler raises KeyboardInterrupt long before this ends


def test_an_error_raised_while_a_library_handles_the_stop_still_ends_as_a_stop():
    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(KeyboardInterrupt) as caught, command_process():
        try:
            _signal_self()
        except KeyboardInterrupt:
            # what Ray Data's cleanup raises in its place when the signal also killed its actors
            raise RuntimeError("actors died during initialization") from None
    assert isinstance(caught.value.__cause__, RuntimeError)
    assert signal.getsignal(signal.SIGTERM) is before  # the command's handlers are undone


def test_a_stop_that_a_library_swallowed_still_ends_the_command():
    with pytest.raises(KeyboardInterrupt), command_process():
        try:
            _signal_self()
        except KeyboardInterrupt:
            pass
        assert stop_requested()


def test_without_a_signal_errors_pass_through_and_the_next_command_starts_clean():
    with pytest.raises(KeyboardInterrupt), command_process():
        _signal_self()
    with pytest.raises(RuntimeError, match="a real failure"), command_process():
        assert not stop_requested()
        raise RuntimeError("a real failure")
    before = signal.getsignal(signal.SIGTERM)
    with command_process():
        pass
    assert signal.getsignal(signal.SIGTERM) is before
