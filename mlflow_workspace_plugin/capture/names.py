"""Artifact names the workspace gives to what it captures (light: no MLflow import)."""

LOG_ARTIFACT_DIR = "user_logs"
LOG_ARTIFACT_NAME = "std_log.txt"
SNAPSHOT_ARTIFACT_DIR = "snapshot"
CAPTURED_FOLDERS = ("outputs", "logs")
JOB_DATA_DIR = ".mlflow-job"  # a remote job's input data inside its source package (not in snapshot/)
