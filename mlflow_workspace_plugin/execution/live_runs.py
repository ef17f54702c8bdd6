"""The registry of this process's live runs and run controllers, and their part of the one ordered
shutdown (:mod:`mlflow_workspace_plugin.shutdown`).

Every handle :func:`~mlflow_workspace_plugin.execution.launch` returns is tracked here until its run
ends. At interpreter exit, controllers (sweeps, later pipelines) stop first, then local runs still
going are cancelled (they end with the process that launched them, as MLflow's local backend runs do)
while remote runs go on, then the runs' private folders are removed (a remote run still going keeps
its own: its downloaded inputs may be read from there).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from mlflow_workspace_plugin import shutdown
from mlflow_workspace_plugin.compute.handles import WatchedRun

_logger = logging.getLogger("mlflow.projects.azureml")
EXIT_REASON = "the process that ran it exited"
CONTROLLER_EXIT_WAIT_SECONDS = 90.0
SETTLE_EXIT_WAIT_SECONDS = 60.0  # an ended run's end steps (delivering outputs) under way in its watcher


class Controller(Protocol):
    """What the shutdown needs of a run controller (a sweep's, a pipeline's)."""

    def request_cancel(self, reason: str) -> None: ...

    def wait_ended(self, timeout: float) -> bool: ...


@dataclass
class _Tracked:
    handle: WatchedRun
    remote: bool
    cleanup: Callable[[], None] | None
    settled: threading.Event = field(default_factory=threading.Event)
    _claimed: bool = False

    def settle(self, timeout: float | None = None) -> bool:
        """Run ``cleanup`` once (the watcher thread or the exit, whichever comes first); False when the
        other one runs it and it did not end within ``timeout`` seconds."""
        with _lock:
            if self._claimed:
                claimed = False
            else:
                self._claimed = claimed = True
        if not claimed:
            return self.settled.wait(timeout)
        try:
            if self.cleanup is not None:
                self.cleanup()
        finally:
            with _lock:
                _runs.pop(id(self.handle), None)
            self.settled.set()
        return True


_runs: dict[int, _Tracked] = {}
_controllers: dict[int, tuple[Controller, str]] = {}
_lock = threading.Lock()


def track(handle: WatchedRun, *, remote: bool, cleanup: Callable[[], None] | None = None) -> None:
    """Track ``handle`` until its run ends; then ``cleanup`` runs (in a watcher thread)."""
    key = id(handle)
    with _lock:
        _runs[key] = _Tracked(handle, remote, cleanup)

    def watch() -> None:
        while not handle.wait_for(3600):
            pass
        with _lock:
            tracked = _runs.get(key)
        if tracked is not None:
            tracked.settle()

    threading.Thread(target=watch, name=f"mlflow-ws-live-{handle.run_id[:8]}", daemon=True).start()


def track_controller(controller: Controller, exit_reason: str = EXIT_REASON) -> None:
    """Track ``controller`` until :func:`untrack_controller`; at exit it is cancelled with ``exit_reason``."""
    with _lock:
        _controllers[id(controller)] = (controller, exit_reason)


def untrack_controller(controller: Controller) -> None:
    with _lock:
        _controllers.pop(id(controller), None)


def wait_settled(handle: WatchedRun, timeout: float = 60.0) -> bool:
    """Wait until the run of ``handle`` has ended and its end steps (the door's ``on_end``, removing its
    private folder) are done; True when they are (or it was never tracked)."""
    with _lock:
        tracked = _runs.get(id(handle))
    return True if tracked is None else tracked.settled.wait(timeout)


def live_runs() -> list[WatchedRun]:
    """Handles of the runs of this process that have not ended."""
    with _lock:
        return [tracked.handle for tracked in _runs.values()]


def _stop_controllers() -> None:
    with _lock:
        controllers = list(_controllers.values())
    for controller, reason in controllers:
        controller.request_cancel(reason)
    for controller, _ in controllers:
        controller.wait_ended(CONTROLLER_EXIT_WAIT_SECONDS)


def _cancel_local_runs() -> None:
    with _lock:
        local = [tracked.handle for tracked in _runs.values() if not tracked.remote]
    for handle in local:
        if handle.get_status() == "RUNNING":
            handle.cancel()


def _remove_folders() -> None:
    with _lock:
        tracked = list(_runs.items())
    for _key, entry in tracked:
        if entry.remote and not entry.handle.wait_for(0):
            continue  # still going on the cluster: keep what it may read
        if not entry.settle(SETTLE_EXIT_WAIT_SECONDS):
            _logger.warning("mlflow-workspace: run %s's end steps did not finish within %.0f s; exiting without "
                            "them", entry.handle.run_id, SETTLE_EXIT_WAIT_SECONDS)


shutdown.at_exit("controllers", _stop_controllers)
shutdown.at_exit("runs", _cancel_local_runs)
shutdown.at_exit("folders", _remove_folders)
