"""Process and port helpers (Linux ``/proc``): identity by (pid, start time), group stop, free ports."""

from __future__ import annotations

import os
import signal
import socket
import time
from pathlib import Path

LOOPBACK = "127.0.0.1"
_RAY_WORKER_PORTS = range(10002, 20000)


def start_time(pid: int) -> str | None:
    """The kernel start time of a live, non-zombie ``pid`` (guards against recycled pids), else None."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return None if fields[0] in ("Z", "X") else fields[19]


def alive(pid: int | None, started: str | None) -> bool:
    """True iff ``pid`` runs and is the same process that started at ``started``."""
    return bool(pid) and start_time(pid) is not None and (started is None or start_time(pid) == started)


def group_members(pgid: int) -> list[int]:
    """Live processes of process group ``pgid``."""
    members = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except (OSError, IndexError):
                continue
            if fields[0] not in ("Z", "X") and int(fields[2]) == pgid:
                members.append(int(entry.name))
    return members


def stop_group(pgid: int, timeout: float = 10.0) -> None:
    """SIGTERM process group ``pgid``, wait up to ``timeout`` for it to go, then SIGKILL what is left."""
    _killpg(pgid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while group_members(pgid) and time.monotonic() < deadline:
        time.sleep(0.05)
    if group_members(pgid):
        _killpg(pgid, signal.SIGKILL)
        deadline = time.monotonic() + 5
        while group_members(pgid) and time.monotonic() < deadline:
            time.sleep(0.05)


def _killpg(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now (outside Ray's worker port range)."""
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind((LOOPBACK, 0))
            port = sock.getsockname()[1]
        if port not in _RAY_WORKER_PORTS:
            return port


def port_in_use(port: int, host: str = LOOPBACK) -> bool:
    """True when something listens on ``host:port``."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def log_tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(Path(path).read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""
