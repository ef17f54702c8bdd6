"""Progress of an artifact transfer on the console: files, bytes, rate and ETA (tqdm).

Nothing is shown for a transfer that ends within :data:`SHOW_AFTER` seconds, nor when stderr is
not a terminal (CI logs stay quiet), nor with ``MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR=false``
(MLflow's own switch for its artifact progress bars), nor when the caller passes
``enabled=False`` (e.g. the capture uploads of a run started with ``STREAM_OUTPUT`` off).
The bar names the artifact path only: never a URL (no host details, no token).
"""

from __future__ import annotations

import sys
import threading
from types import TracebackType
from typing import Any

SHOW_AFTER = 2.0  # seconds: quicker transfers print nothing
REFRESH_EVERY = 0.25


def console_progress_allowed() -> bool:
    """True when stderr is a terminal and MLflow's artifact progress bars are not switched off."""
    from mlflow.environment_variables import MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR

    try:
        tty = sys.stderr.isatty()
    except (AttributeError, ValueError):  # replaced or closed stderr
        tty = False
    return tty and MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR.get()


class TransferProgress:
    """Thread-safe counters of one transfer; a context manager that draws a bar once the transfer
    has taken longer than :data:`SHOW_AFTER` seconds (if allowed, see module doc)."""

    def __init__(self, verb: str, label: str, files_total: int, bytes_total: int,
                 enabled: bool | None = None) -> None:
        self.verb, self.label = verb, label
        self.files_total, self.bytes_total = files_total, bytes_total
        self.files_done = 0
        self.bytes_done = 0
        self._enabled = console_progress_allowed() if enabled is None else (enabled and console_progress_allowed())
        self._lock = threading.Lock()
        self._finished = threading.Event()
        self._thread: threading.Thread | None = None
        self.shown = False

    def add(self, files: int = 0, nbytes: int = 0) -> None:
        with self._lock:
            self.files_done += files
            self.bytes_done += nbytes

    def __enter__(self) -> TransferProgress:
        if self._enabled:
            self._thread = threading.Thread(target=self._draw, name="artifact-transfer-progress", daemon=True)
            self._thread.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._finished.set()
        if self._thread is not None:
            self._thread.join(timeout=2.0)

    def _draw(self) -> None:
        if self._finished.wait(SHOW_AFTER):
            return
        try:
            from tqdm.auto import tqdm
        except ImportError:  # pragma: no cover - tqdm comes with MLflow's dependencies
            return
        bar: Any = tqdm(total=self.bytes_total, desc=f"{self.verb} {self.label}", unit="B", unit_scale=True,
                        unit_divisor=1024, file=sys.stderr, dynamic_ncols=True, leave=True)
        self.shown = True
        try:
            while True:
                finished = self._finished.wait(REFRESH_EVERY)
                with self._lock:
                    files, nbytes = self.files_done, self.bytes_done
                bar.update(nbytes - bar.n)
                bar.set_postfix_str(f"{files}/{self.files_total} files", refresh=True)
                if finished:
                    return
        finally:
            bar.close()
