"""The one file lock (standard library only): exclusive, released by the OS if the process dies.

* :func:`held` - a blocking ``with`` block (optionally bounded by ``timeout``), for a
  read-modify-write that other processes must not interleave with (deployment state, a Ray Serve
  cluster's applications, MLflow's schema migration of a fresh local workspace);
* :class:`ProcessLock` - non-blocking, held for as long as the caller wants (a journal's lifetime,
  the background sender's folder); ``try_acquire`` returns None when someone else holds it.

POSIX: ``flock`` on the whole file. Windows: ``msvcrt.locking`` of the file's first byte.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator
from pathlib import Path

POLL_S = 0.05  # how often a bounded or Windows wait tries again

try:  # POSIX
    import fcntl

    def _try_lock(fd: int) -> bool:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except OSError:
            return False

    def _lock(fd: int) -> None:
        fcntl.flock(fd, fcntl.LOCK_EX)

    def _unlock(fd: int) -> None:
        fcntl.flock(fd, fcntl.LOCK_UN)

except ImportError:  # pragma: no cover - Windows
    import msvcrt

    def _try_lock(fd: int) -> bool:
        try:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
            return True
        except OSError:
            return False

    def _lock(fd: int) -> None:  # LK_LOCK gives up after 10 s: poll instead
        while not _try_lock(fd):
            time.sleep(POLL_S)

    def _unlock(fd: int) -> None:
        msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)


class LockTimeout(TimeoutError):
    """Another process held ``path`` for longer than ``timeout`` seconds."""

    def __init__(self, path: Path, timeout: float) -> None:
        super().__init__(f"{path} stayed locked by another process for {timeout:g} s")
        self.path, self.timeout = path, timeout


def _open(path: Path) -> int:
    return os.open(path, os.O_RDWR | os.O_CREAT, 0o600)


@contextlib.contextmanager
def held(path: Path, timeout: float | None = None) -> Iterator[None]:
    """Hold the exclusive lock on ``path`` (created 0600 if missing) for the ``with`` block,
    waiting for it as long as needed, or at most ``timeout`` seconds (then :class:`LockTimeout`)."""
    path = Path(path)
    fd = _open(path)
    try:
        if timeout is None:
            _lock(fd)
        else:
            deadline = time.monotonic() + timeout
            while not _try_lock(fd):
                if time.monotonic() >= deadline:
                    raise LockTimeout(path, timeout)
                time.sleep(POLL_S)
        try:
            yield
        finally:
            _unlock(fd)
    finally:
        os.close(fd)


class ProcessLock:
    """A held lock on ``path``; :meth:`try_acquire` returns None when someone else holds it."""

    def __init__(self, path: Path, fd: int) -> None:
        self.path, self._fd = path, fd

    @classmethod
    def try_acquire(cls, path: Path) -> ProcessLock | None:
        fd = _open(path)
        if _try_lock(fd):
            return cls(path, fd)
        os.close(fd)
        return None

    def forget(self) -> None:
        """Close this descriptor only (a forked child's copy; the lock stays with the parent)."""
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def release(self, delete: bool = False) -> None:
        """Unlock (deleting the lock file first if asked, while still holding it)."""
        if self._fd < 0:
            return
        if delete:
            try:
                self.path.unlink()
            except FileNotFoundError:
                pass
        try:
            _unlock(self._fd)
        finally:
            os.close(self._fd)
            self._fd = -1
