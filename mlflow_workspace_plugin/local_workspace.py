"""The embedded default: a zero-config local workspace (SQLite + artifact folder, nothing running).

Location: ``$MLFLOW_WORKSPACE_HOME`` if set, else ``~/.mlflow-workspace``. Its tracking URI is
``azureml-local://<absolute folder>``, served by this package's tracking/registry store plugin so
that every experiment's artifacts land in ``<folder>/artifacts`` whatever the current directory.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from urllib.parse import unquote, urlsplit

LOCAL_SCHEME = "azureml-local"
HOME_ENV = "MLFLOW_WORKSPACE_HOME"
DB_FILE = "mlflow.db"
ARTIFACTS_DIR = "artifacts"
ANNOUNCED_MARKER = ".announced"  # the "using the local workspace at ..." line was shown for this folder

_announced: set[str] = set()


def default_home() -> Path:
    """Folder of the default local workspace (deterministic, overridable by env var)."""
    configured = os.environ.get(HOME_ENV)
    return Path(configured).expanduser().resolve() if configured else Path.home() / ".mlflow-workspace"


def local_tracking_uri(folder: Path) -> str:
    return f"{LOCAL_SCHEME}://{Path(folder).resolve().as_posix()}"


def folder_from_uri(uri: str) -> Path:
    """Inverse of :func:`local_tracking_uri`."""
    parts = urlsplit(uri)
    if parts.scheme != LOCAL_SCHEME or parts.netloc or not parts.path.startswith("/"):
        from mlflow_workspace_plugin.errors import WorkspaceUriError

        raise WorkspaceUriError(
            f"Invalid local workspace URI {uri!r}: expected {LOCAL_SCHEME}:///<absolute folder>"
        )
    return Path(unquote(parts.path))


def database_uri(folder: Path) -> str:
    return f"sqlite:///{(Path(folder) / DB_FILE).as_posix()}"


def artifact_root(folder: Path) -> Path:
    return Path(folder) / ARTIFACTS_DIR


def announce(folder: Path) -> None:
    """Tell the user where the local workspace lives: once per workspace, not on every command (a
    marker file in the workspace folder remembers it; until the folder exists, once per process)."""
    key = str(folder)
    if key in _announced or (Path(folder) / ANNOUNCED_MARKER).exists():
        return
    _announced.add(key)
    print(
        f"mlflow-workspace: using the local workspace at {folder} "
        f"(no workspace config found; set {HOME_ENV} to move it)",
        file=sys.stderr,
    )
    remember_announced(folder)


def remember_announced(folder: Path) -> None:
    """Record in ``folder`` (if it exists: nothing is created for a mere announcement) that it was announced."""
    if str(folder) not in _announced or not Path(folder).is_dir():
        return
    try:
        (Path(folder) / ANNOUNCED_MARKER).touch(exist_ok=True)
    except OSError:  # a read-only workspace folder: announce once per process instead
        pass
