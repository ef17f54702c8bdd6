"""Exclusive, non-blocking, process-lifetime file locks (released by the OS if the process dies)."""

from __future__ import annotations

import os
from pathlib import Path

try:  # POSIX
    import fcntl

    def _try_lock(fd: int) -> bool:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except OSError:
            return False

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

    def _unlock(fd: int) -> None:
        msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)


class ProcessLock:
    """A held lock on ``path``; :meth:`try_acquire` returns None when someone else holds it."""

    def __init__(self, path: Path, fd: int) -> None:
        self.path, self._fd = path, fd

    @classmethod
    def try_acquire(cls, path: Path) -> ProcessLock | None:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
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
