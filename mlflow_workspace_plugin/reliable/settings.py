"""Environment variables of reliable logging (read when used, so tests can change them)."""

from __future__ import annotations

import os

FLUSH_TIMEOUT_ENV = "MLFLOW_WORKSPACE_FLUSH_TIMEOUT"
RETRY_TIMEOUT_ENV = "MLFLOW_WORKSPACE_RETRY_TIMEOUT"
RETRY_MAX_WAIT_ENV = "MLFLOW_WORKSPACE_RETRY_MAX_WAIT"
REQUEST_TIMEOUT_ENV = "MLFLOW_WORKSPACE_REQUEST_TIMEOUT"
JOURNAL_SYNC_ENV = "MLFLOW_WORKSPACE_JOURNAL_SYNC"
ASYNC_ENV = "MLFLOW_WORKSPACE_ASYNC_LOGGING"

DEFAULT_FLUSH_TIMEOUT = 30.0  # bounded wait at end_run / set_terminated / exit / reads
DEFAULT_RETRY_TIMEOUT = 3600.0  # background retrying of one outage before parking in the journal
DEFAULT_RETRY_MAX_WAIT = 10.0  # cap of the exponential backoff between attempts
DEFAULT_REQUEST_TIMEOUT = 60.0  # read timeout of one HTTP request
MAX_RETRY_AFTER = 60.0  # a server's Retry-After is honoured up to this many seconds
PROGRESS_AFTER = 1.0  # a flush longer than this prints a progress message


def _float(name: str, default: float) -> float:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"{name} must be a number of seconds, got {raw!r}") from None
    if value < 0:
        raise ValueError(f"{name} must not be negative, got {raw!r}")
    return value


def flush_timeout() -> float:
    return _float(FLUSH_TIMEOUT_ENV, DEFAULT_FLUSH_TIMEOUT)


def retry_timeout() -> float:
    return _float(RETRY_TIMEOUT_ENV, DEFAULT_RETRY_TIMEOUT)


def retry_max_wait() -> float:
    return max(0.05, _float(RETRY_MAX_WAIT_ENV, DEFAULT_RETRY_MAX_WAIT))


def request_timeout() -> float:
    return max(1.0, _float(REQUEST_TIMEOUT_ENV, DEFAULT_REQUEST_TIMEOUT))


def journal_sync() -> str:
    """SQLite ``synchronous`` level: NORMAL survives a killed process, FULL also a power cut."""
    value = os.environ.get(JOURNAL_SYNC_ENV, "NORMAL").strip().upper() or "NORMAL"
    if value not in ("NORMAL", "FULL"):
        raise ValueError(f"{JOURNAL_SYNC_ENV} must be NORMAL or FULL, got {value!r}")
    return value


def async_enabled() -> bool:
    """``false`` turns the journal off: every log call is one blocking request (MLflow's way)."""
    return os.environ.get(ASYNC_ENV, "true").strip().lower() not in ("0", "false", "no", "off")
