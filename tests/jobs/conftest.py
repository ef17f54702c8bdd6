"""Fixtures for the job-definition tests: a job folder with code, data and an environment file."""

from __future__ import annotations

import functools
import http.server
import textwrap
import threading
import time
from pathlib import Path

import pytest


@pytest.fixture
def job_dir(tmp_path) -> Path:
    """``<tmp>/iris-project`` with ``src/main.py``, ``data/iris.csv``, ``data/images/`` and ``environment.yml``."""
    root = tmp_path / "iris-project"
    (root / "src").mkdir(parents=True)
    (root / "src" / "main.py").write_text("print('hi')\n")
    (root / "data" / "images").mkdir(parents=True)
    (root / "data" / "iris.csv").write_text("a,b\n1,2\n")
    (root / "data" / "images" / "one.txt").write_text("1")
    (root / "environment.yml").write_text("name: x\ndependencies: [python=3.11]\n")
    return root


@pytest.fixture
def write_job(job_dir):
    """``write_job(text, name="job.yml") -> Path``: a YAML file in ``job_dir`` (text is dedented)."""

    def write(text: str, name: str = "job.yml") -> Path:
        path = job_dir / name
        path.write_text(textwrap.dedent(text))
        return path

    return write


class _QuietFiles(http.server.SimpleHTTPRequestHandler):
    """Serves the fixture folder; ``/slow`` answers after 3 s (for timeouts)."""

    def do_GET(self):  # noqa: N802 - http.server's naming
        if self.path.startswith("/slow"):
            time.sleep(3)
        super().do_GET()

    def log_message(self, *args):
        pass


@pytest.fixture(scope="session")
def http_files(tmp_path_factory):
    """``(base_url, folder)``: a real http.server on 127.0.0.1 serving ``folder`` (session-wide)."""
    folder = tmp_path_factory.mktemp("http-files")
    (folder / "iris.csv").write_text("a,b\n1,2\n")
    (folder / "with space.txt").write_text("spaced\n")
    handler = functools.partial(_QuietFiles, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", folder
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)
