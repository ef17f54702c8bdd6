"""The one file lock (``file_lock``) between real processes: ``held`` waits for the holder, a bounded
wait names the file, a lock dies with its process, and every former ``flock`` site uses it."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from mlflow_workspace_plugin import file_lock

HOLD = """
import sys, time
from pathlib import Path
from mlflow_workspace_plugin import file_lock
with file_lock.held(Path(sys.argv[1])):
    print("HELD", flush=True)
    time.sleep(float(sys.argv[2]))
"""
REPO = Path(__file__).resolve().parents[2]


def _holder(path: Path, seconds: float) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(path), str(seconds)], stdout=subprocess.PIPE,
                            text=True, start_new_session=True)
    assert proc.stdout.readline().strip() == "HELD"
    return proc


@pytest.mark.slow
def test_held_waits_for_another_process_and_a_bounded_wait_names_the_file(tmp_path):
    path = tmp_path / "state.lock"
    holder = _holder(path, 1.5)
    try:
        with pytest.raises(file_lock.LockTimeout, match=str(path)):
            with file_lock.held(path, timeout=0.2):
                pass
        assert file_lock.ProcessLock.try_acquire(path) is None
        started = time.monotonic()
        with file_lock.held(path):  # blocks until the holder lets go
            waited = time.monotonic() - started
            assert holder.poll() is not None or waited > 0.5
            assert file_lock.ProcessLock.try_acquire(path) is None  # held by this block now
    finally:
        holder.kill()
        holder.wait(10)
    assert oct(path.stat().st_mode & 0o777) == "0o600"


@pytest.mark.slow
def test_a_killed_holder_releases_the_lock(tmp_path):
    path = tmp_path / "journal.lock"
    holder = _holder(path, 600)
    assert file_lock.ProcessLock.try_acquire(path) is None
    holder.kill()
    holder.wait(10)
    lock = file_lock.ProcessLock.try_acquire(path)
    assert lock is not None
    lock.release(delete=True)
    assert not path.exists()


def test_every_former_flock_site_uses_the_one_lock():
    package = REPO / "mlflow_workspace_plugin"
    users = sorted(p.relative_to(package).as_posix() for p in package.rglob("*.py")
                   if "fcntl" in p.read_text() or "msvcrt" in p.read_text())
    assert users == ["file_lock.py"]
    for name in ("local_store.py", "deploy/state.py", "deploy/ray_serve.py", "reliable/journal.py"):
        assert "file_lock" in (package / name).read_text(), name
