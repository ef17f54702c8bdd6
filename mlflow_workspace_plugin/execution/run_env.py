"""The environment variables a run's command gets from the workspace (locally and on remote compute)."""

from __future__ import annotations

import os
from collections.abc import Mapping

from mlflow_workspace_plugin.capture.live_logs import LOG_SYNC_ENV

# Forwarded from this process when set: the tracking connection's settings (TLS, auth) and ours.
FORWARDED_PREFIXES = ("MLFLOW_TRACKING_",)
FORWARDED_KEYS = (LOG_SYNC_ENV,)


def run_environment(tracking_uri: str, run_id: str, experiment_id: str,
                    user_vars: Mapping[str, str] = ()) -> dict[str, str]:
    """Run identity, tracking URI and credentials (through the environment, never the command
    line), unbuffered output for live logs, then the user's own variables."""
    env = {key: value for key, value in os.environ.items()
           if key.startswith(FORWARDED_PREFIXES) or key in FORWARDED_KEYS}
    env.update({
        "MLFLOW_RUN_ID": run_id,
        "MLFLOW_EXPERIMENT_ID": str(experiment_id),
        "MLFLOW_TRACKING_URI": tracking_uri,
        "PYTHONUNBUFFERED": "1",
    })
    env.update(_auth_environment(tracking_uri))
    env.update(dict(user_vars))
    return env


def _auth_environment(tracking_uri: str) -> dict[str, str]:
    if not tracking_uri.startswith("azureml://"):
        return {}
    from mlflow_workspace_plugin import auth

    return auth.child_environment(tracking_uri)
