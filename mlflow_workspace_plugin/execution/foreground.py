"""Running a launched run in the foreground (CLI doors): wait, cancel on Ctrl-C / SIGTERM."""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
from collections.abc import Iterator

from mlflow_workspace_plugin.compute.handles import WatchedRun

_logger = logging.getLogger("mlflow.projects.azureml")


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """Treat SIGTERM like Ctrl-C while inside (main thread only), so a run is cancelled, not orphaned."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def _raise_interrupt(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")

    previous = signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def wait_or_cancel(handle: WatchedRun) -> bool:
    """Wait for the end (raising with the error tail if the handle was told to); on Ctrl-C
    cancel the run (recorded KILLED) and re-raise."""
    try:
        return handle.wait()
    except KeyboardInterrupt:
        _logger.error("=== Run (ID '%s') interrupted, cancelling run ===", handle.run_id)
        handle.cancel()
        raise
