"""Uploads of what a run leaves behind: snapshot, ``./outputs`` and ``./logs``, the console log."""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Iterable
from pathlib import Path

from mlflow import MlflowClient

from mlflow_workspace_plugin.capture.links import manifest_links
from mlflow_workspace_plugin.capture.names import (  # noqa: F401 - re-exported
    CAPTURED_FOLDERS,
    JOB_DATA_DIR,
    LOG_ARTIFACT_DIR,
    LOG_ARTIFACT_NAME,
    SNAPSHOT_ARTIFACT_DIR,
)
from mlflow_workspace_plugin.capture.snapshot import Snapshot

_logger = logging.getLogger("mlflow.projects.azureml")


def stage_snapshot(snapshot: Snapshot, destination: Path) -> Path:
    """Copy the snapshot's files into ``destination`` (so later edits don't change it) and make its
    links there (relative, inside the copy). A file that became a link since is copied as a link."""
    for rel in snapshot.files:
        target = destination / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(snapshot.root / rel, target, follow_symlinks=False)
    for rel, link_target in snapshot.links:
        target = destination / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        os.symlink(link_target, target)
    destination.mkdir(parents=True, exist_ok=True)
    return destination


def files_changed_since(folder: Path, since: float) -> Iterable[Path]:
    """Files under ``folder`` created or modified at or after ``since`` (epoch seconds)."""
    if not folder.is_dir():
        return []
    return sorted(
        path for path in folder.rglob("*") if path.is_file() and path.stat().st_mtime >= since
    )


def upload_run_folders(client: MlflowClient, run_id: str, work_dir: Path, since: float,
                       progress: bool | None = None) -> list[str]:
    """Upload files the run wrote under ``./outputs`` and ``./logs`` (in parallel, each file
    complete or an error naming it); return their artifact paths."""
    from mlflow_workspace_plugin.store.transfers import upload_tree

    changed = [path for name in CAPTURED_FOLDERS for path in files_changed_since(work_dir / name, since)]
    if changed:
        upload_tree(client, work_dir, files=changed, run_id=run_id, tracking_uri=client.tracking_uri,
                    progress=progress)
    return [path.relative_to(work_dir).as_posix() for path in changed]


def upload_log(client: MlflowClient, run_id: str, log_path: Path) -> None:
    """Upload a console log as ``user_logs/<its file name>``."""
    if log_path.is_file():
        client.log_artifact(run_id, str(log_path), artifact_path=LOG_ARTIFACT_DIR)


def upload_snapshot(client: MlflowClient, run_id: str, staged: Path, progress: bool | None = None) -> None:
    """Upload the staged source as ``snapshot/`` (in parallel)."""
    from mlflow_workspace_plugin.store.transfers import upload_tree

    if not staged.is_dir():
        return
    files, links = snapshot_upload_files(staged)
    if links:
        shown = ", ".join(links[:10]) + (f" and {len(links) - 10} more" if len(links) > 10 else "")
        _logger.warning("mlflow-workspace: %d symbolic link(s) not uploaded to %s/ (an artifact store cannot "
                        "hold links; the job's copy keeps them): %s", len(links), SNAPSHOT_ARTIFACT_DIR, shown)
    if files:
        upload_tree(client, staged, SNAPSHOT_ARTIFACT_DIR, files=files, run_id=run_id,
                    tracking_uri=client.tracking_uri, progress=progress)


def snapshot_upload_files(staged: Path) -> tuple[list[Path], list[str]]:
    """(regular files to upload, links left out) of the staged source: no link is followed, and the
    files a source package's links manifest names (plain files on Ray) count as links."""
    listed = manifest_links(staged)
    files: list[Path] = []
    links: list[str] = []
    for directory, dirnames, filenames in os.walk(staged):
        here = Path(directory)
        if here == staged and JOB_DATA_DIR in dirnames:
            dirnames.remove(JOB_DATA_DIR)
        linked = [d for d in dirnames if (here / d).is_symlink()]
        dirnames[:] = sorted(d for d in dirnames if d not in linked)
        for name in sorted([*filenames, *linked]):
            path = here / name
            rel = path.relative_to(staged).as_posix()
            if path.is_symlink() or rel in listed:
                links.append(rel)
            elif path.is_file():
                files.append(path)
    return files, links


def mtime_floor(timestamp: float) -> float:
    """Filesystems store mtimes coarsely; allow for it when comparing with the run start."""
    return timestamp - (2.0 if os.name == "nt" else 0.05)
