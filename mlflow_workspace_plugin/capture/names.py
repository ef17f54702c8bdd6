"""Artifact names the workspace gives to what it captures (light: no MLflow import)."""

LOG_ARTIFACT_DIR = "user_logs"
LOG_ARTIFACT_NAME = "std_log.txt"
SNAPSHOT_ARTIFACT_DIR = "snapshot"
CAPTURED_FOLDERS = ("outputs", "logs")
JOB_DATA_DIR = ".mlflow-job"  # a remote job's input data inside its source package (not in snapshot/)


def make_run_folders(work_dir) -> None:
    """Create ``./outputs`` and ``./logs`` in a run's working folder before its command starts (as Azure
    ML does); an existing entry of that name (a file, a symlink) is left as it is. Standard library only:
    the job runner calls this before importing MLflow."""
    import os

    for name in CAPTURED_FOLDERS:
        path = os.path.join(work_dir, name)
        if not os.path.lexists(path):
            os.makedirs(path, exist_ok=True)
