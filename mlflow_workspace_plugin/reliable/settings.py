"""Environment variables of reliable logging and of the calls a user waits on (read when used,
so tests can change them)."""

from __future__ import annotations

import os

from mlflow.exceptions import INVALID_PARAMETER_VALUE, MlflowException

from mlflow_workspace_plugin.env_settings import env_number

FLUSH_TIMEOUT_ENV = "MLFLOW_WORKSPACE_FLUSH_TIMEOUT"
RETRY_TIMEOUT_ENV = "MLFLOW_WORKSPACE_RETRY_TIMEOUT"
RETRY_MAX_WAIT_ENV = "MLFLOW_WORKSPACE_RETRY_MAX_WAIT"
REQUEST_TIMEOUT_ENV = "MLFLOW_WORKSPACE_REQUEST_TIMEOUT"
JOURNAL_SYNC_ENV = "MLFLOW_WORKSPACE_JOURNAL_SYNC"
ASYNC_ENV = "MLFLOW_WORKSPACE_ASYNC_LOGGING"
CONNECT_TIMEOUT_ENV = "MLFLOW_WORKSPACE_CONNECT_TIMEOUT"
BACKGROUND_SENDER_ENV = "MLFLOW_WORKSPACE_BACKGROUND_SENDER"

DEFAULT_FLUSH_TIMEOUT = 30.0  # bounded wait at end_run / set_terminated / exit / reads
DEFAULT_RETRY_TIMEOUT = 3600.0  # background retrying of one outage before parking in the journal
DEFAULT_RETRY_MAX_WAIT = 10.0  # cap of the exponential backoff between attempts
DEFAULT_REQUEST_TIMEOUT = 60.0  # read timeout of one HTTP request
MAX_RETRY_AFTER = 60.0  # a server's Retry-After is honoured up to this many seconds
PROGRESS_AFTER = 1.0  # a flush longer than this prints a progress message
DEFAULT_CONNECT_TIMEOUT = 30.0  # a call a user waits on retries an unreachable workspace this long
CALL_PROGRESS_AFTER = 3.0  # ...and says so once it has been retrying this long


def flush_timeout() -> float:
    return env_number(FLUSH_TIMEOUT_ENV, DEFAULT_FLUSH_TIMEOUT)


def retry_timeout() -> float:
    return env_number(RETRY_TIMEOUT_ENV, DEFAULT_RETRY_TIMEOUT)


def retry_max_wait() -> float:
    return max(0.05, env_number(RETRY_MAX_WAIT_ENV, DEFAULT_RETRY_MAX_WAIT))


def request_timeout() -> float:
    return max(1.0, env_number(REQUEST_TIMEOUT_ENV, DEFAULT_REQUEST_TIMEOUT))


def connect_timeout() -> float:
    """Seconds a call a user waits on (run creation, reads, registry) keeps retrying connection
    failures, throttling and 5xx answers before it fails with the host and the cause."""
    return env_number(CONNECT_TIMEOUT_ENV, DEFAULT_CONNECT_TIMEOUT, allow_zero=False)


def journal_sync() -> str:
    """SQLite ``synchronous`` level: NORMAL survives a killed process, FULL also a power cut."""
    value = os.environ.get(JOURNAL_SYNC_ENV, "NORMAL").strip().upper() or "NORMAL"
    if value not in ("NORMAL", "FULL"):
        raise MlflowException(f"{JOURNAL_SYNC_ENV}={value!r} is not allowed: use NORMAL or FULL",
                              error_code=INVALID_PARAMETER_VALUE)
    return value


def background_sender_enabled() -> bool:
    """``false``: at exit, leave unsent data in the journal instead of starting the detached sender."""
    return os.environ.get(BACKGROUND_SENDER_ENV, "true").strip().lower() not in ("0", "false", "no", "off")


def async_enabled() -> bool:
    """``false`` turns the journal off: every log call is one blocking request (MLflow's way)."""
    return os.environ.get(ASYNC_ENV, "true").strip().lower() not in ("0", "false", "no", "off")
