"""Helpers for Ray tests: compute targets pointing at the session's Ray head, workspace configs,
job API access. The fixtures themselves (``ray_head``: one real loopback head per test session,
``ray_workspace``) live in ``tests/conftest.py`` so that every test module shares the one head.

The head is started by :class:`mlflow_workspace_plugin.compute.ray_head.LocalRayHead` (free
ports, ``--num-cpus 2``, private ``--temp-dir``, new session, readiness poll of ``/api/version``)
and stopped by SIGTERM to its process group, then SIGKILL to what is left of its session.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import mlflow
import pytest
from helpers import free_port

from mlflow_workspace_plugin.compute.ray_head import LocalRayHead

SYSTEM_PYTHON_WITHOUT_PLUGIN = Path("/usr/bin/python3")


def compute_targets(address: str) -> dict:
    """The compute targets every Ray test workspace has."""
    targets = {
        "cpu-cluster": {"type": "ray", "address": address},                      # pip env (default)
        "fast-cluster": {"type": "ray", "address": address, "environment": "inherit"},
        "env-cluster": {"type": "ray", "address_env": "TEST_RAY_ADDRESS", "environment": "inherit"},
        "broken-env": {"type": "ray", "address": address, "environment": "pip",
                       "extra_pip": ["/nonexistent/mlflow-ws-missing-pkg"], "setup_timeout_s": 120},
        "dead-cluster": {"type": "ray", "address": f"http://127.0.0.1:{free_port()}"},
    }
    if SYSTEM_PYTHON_WITHOUT_PLUGIN.exists():
        targets["no-plugin"] = {"type": "ray", "address": address, "environment": "inherit",
                                "python": str(SYSTEM_PYTHON_WITHOUT_PLUGIN)}
    return targets


def write_workspace(folder: Path, compute: dict) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    config = folder / "config.json"
    config.write_text(json.dumps({"workspace_name": "t", "local_path": str(folder / "store"),
                                  "compute": compute}), encoding="utf-8")
    return config


def job_client(head: LocalRayHead):
    from ray.job_submission import JobSubmissionClient

    return JobSubmissionClient(head.address)


def wait_for_log(head: LocalRayHead, job_id: str, text: str, timeout: float = 60.0) -> str:
    """Poll a Ray job's log until ``text`` appears (or fail after ``timeout``)."""
    client = job_client(head)
    deadline = time.monotonic() + timeout
    logs = ""
    while time.monotonic() < deadline:
        try:
            logs = client.get_job_logs(job_id)
        except Exception:  # job not registered yet
            logs = ""
        if text in logs:
            return logs
        time.sleep(0.25)
    raise AssertionError(f"{text!r} not in the log of job {job_id} after {timeout} s:\n{logs[-2000:]}")
