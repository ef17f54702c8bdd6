"""Fixtures for datastore and data asset tests: a real Azurite (Blob) per test session, workspace configs."""

from __future__ import annotations

import functools
import http.server
import json
import shutil
import threading
from pathlib import Path

import pytest
from azurite import Azurite, azurite_binary, start_azurite, stop_azurite


@pytest.fixture(scope="session")
def azurite(tmp_path_factory) -> Azurite:
    """A real Azurite Blob service on a free loopback port (its own folder; stopped by process group).
    Skipped only where node/npm are absent; with node present, a missing Azurite is an error."""
    if shutil.which("node") is None or shutil.which("npm") is None:
        pytest.skip("node/npm are not installed: the blob datastore tests need Azurite (npm package azurite)")
    if azurite_binary() is None:
        pytest.fail("Azurite is not installed: run `npm install --no-save --prefix .azurite azurite` (.ci/run does)")
    server = start_azurite(tmp_path_factory.mktemp("azurite"))
    try:
        yield server
    finally:
        stop_azurite(server)


@pytest.fixture
def write_config(tmp_path, monkeypatch):
    """``write_config(datastores, compute=None) -> Path``: a local workspace config in ``tmp_path/ws``, set as
    ``$MLFLOW_WORKSPACE_CONFIG``."""

    def write(datastores: dict, compute: dict | None = None) -> Path:
        folder = tmp_path / "ws"
        folder.mkdir(exist_ok=True)
        config = folder / "config.json"
        data = {"workspace_name": "t", "local_path": str(folder / "store"), "datastores": datastores}
        if compute:
            data["compute"] = compute
        config.write_text(json.dumps(data), encoding="utf-8")
        monkeypatch.setenv("MLFLOW_WORKSPACE_CONFIG", str(config))
        return config

    return write


@pytest.fixture(scope="module")
def http_files(tmp_path_factory):
    """``(base_url, folder)``: a real http.server on 127.0.0.1 serving ``folder``."""
    folder = tmp_path_factory.mktemp("http-files")
    (folder / "iris.csv").write_text("a,b\n1,2\n")

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(folder)))
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", folder
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)
