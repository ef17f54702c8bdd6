"""Process identity and stopping whole process trees, on :mod:`psutil` (ground floor: every layer that
starts or watches processes uses this one module).

- **identity**: ``<pid>:<start time>`` (seconds since the epoch, from the kernel). A recorded identity
  is only ever signalled while the same process runs, never a newer process that reused the PID.
- **a run's processes**: what a run started is found three ways, so that nothing it started survives
  a cancel: the members of its process groups, every descendant of their leaders, and every process
  whose environment carries the run's mark (:data:`MARK_ENV`), which is what finds a ``setsid``
  or double-forked child after its parent is gone.
- **stopping**: SIGTERM to all of them, SIGKILL to what is left after a grace period.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterable

import psutil

MARK_ENV = "MLFLOW_WORKSPACE_RUN_MARK"  # set in a run's processes: the run id, inherited by all it starts
_GONE = (psutil.NoSuchProcess, psutil.ZombieProcess)
_ENDED = (psutil.STATUS_ZOMBIE, psutil.STATUS_DEAD)


def identity(pid: int) -> str | None:
    """``<pid>:<start time>`` of a live (non-zombie) process, else None."""
    try:
        process = psutil.Process(pid)
        if process.status() in _ENDED:
            return None
        return f"{pid}:{process.create_time():.2f}"
    except (psutil.Error, ValueError):
        return None


def alive(recorded: str) -> bool:
    """True while the process recorded as ``recorded`` (an :func:`identity`) still runs."""
    try:
        pid = int(recorded.split(":", 1)[0])
    except ValueError:
        return False
    return identity(pid) == recorded


def running(pid: int | None) -> bool:
    """True while ``pid`` exists and has not exited (a zombie counts as gone)."""
    if not pid:
        return False
    try:
        return psutil.Process(pid).status() not in _ENDED
    except psutil.AccessDenied:
        return True
    except (psutil.Error, ValueError):
        return False


def started_at(pid: int | None = None) -> float | None:
    """When ``pid`` (default: this process) started, in seconds since the epoch; None if it is gone."""
    try:
        return psutil.Process(pid or os.getpid()).create_time()
    except psutil.Error:
        return None


def group_members(pgid: int) -> list[int]:
    """Live processes of process group ``pgid``."""
    return [pid for pid in psutil.pids() if _pgid(pid) == pgid and running(pid)]


def session_members(sid: int) -> list[int]:
    """Live processes of session ``sid``."""
    return [pid for pid in psutil.pids() if _sid(pid) == sid and running(pid)]


def run_processes(leaders: Iterable[int] = (), *, mark: str | None = None) -> list[psutil.Process]:
    """Every live process of a run: the process groups led by ``leaders``, the leaders' descendants,
    and (with ``mark``) every process whose environment has ``MLFLOW_WORKSPACE_RUN_MARK=<mark>``."""
    leaders = set(leaders)
    found: dict[int, psutil.Process] = {}
    for pid in leaders:
        try:
            leader = psutil.Process(pid)
            for process in [leader, *leader.children(recursive=True)]:
                found[process.pid] = process
        except psutil.Error:
            continue
    for process in psutil.process_iter():
        if process.pid in found or process.pid == os.getpid():
            continue
        if _pgid(process.pid) in leaders or (mark and _marked(process, mark)):
            found[process.pid] = process
    return [process for process in found.values() if _is_live(process)]


def stop(processes: Iterable[psutil.Process], grace: float = 10.0, groups: Iterable[int] = ()) -> None:
    """SIGTERM ``processes`` (and process groups ``groups``), SIGKILL whatever is left after ``grace``
    seconds, and wait (briefly) until they are gone."""
    processes, groups = list(processes), list(groups)
    _send(processes, groups, signal.SIGTERM)
    if grace > 0:
        processes = _wait_gone(processes, groups, grace)
    _send(processes, groups, signal.SIGKILL)
    _wait_gone(processes, groups, 5.0)


def stop_group(pgid: int, grace: float = 10.0) -> None:
    """Stop process group ``pgid`` and every descendant of its leader (SIGTERM, then SIGKILL)."""
    stop(run_processes([pgid]), grace, groups=[pgid])


def signal_group(pgid: int, sig: int) -> None:
    """Send ``sig`` to process group ``pgid`` if it still exists."""
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _wait_gone(processes: list[psutil.Process], groups: list[int], timeout: float) -> list[psutil.Process]:
    """Wait until ``processes`` and ``groups`` are gone (exited: zombies count as gone, so children of
    this process are left for their ``Popen`` to reap); returns the processes still live."""
    deadline = time.monotonic() + timeout
    while True:
        processes = [process for process in processes if _is_live(process)]
        if (not processes and not any(group_members(pgid) for pgid in groups)) or time.monotonic() >= deadline:
            return processes
        time.sleep(0.05)


def _send(processes: list[psutil.Process], groups: list[int], sig: int) -> None:
    for pgid in groups:
        signal_group(pgid, sig)
    for process in processes:
        try:
            process.send_signal(sig)  # psutil checks the start time first: never a reused PID
        except psutil.Error:
            pass


def _is_live(process: psutil.Process) -> bool:
    try:
        return process.is_running() and process.status() not in _ENDED
    except psutil.Error:
        return False


def _pgid(pid: int) -> int | None:
    try:
        return os.getpgid(pid)
    except OSError:
        return None


def _sid(pid: int) -> int | None:
    try:
        return os.getsid(pid)
    except OSError:
        return None


def _marked(process: psutil.Process, mark: str) -> bool:
    try:
        return process.environ().get(MARK_ENV) == mark
    except psutil.Error:  # another user's process, or gone
        return False
