"""Credentials a remote job needs, kept out of the compute's job API, logs and files.

A Ray job's ``runtime_env.env_vars`` are returned in clear text by Ray's (unauthenticated) job API
and written to the head's ``runtime_env_agent.log``. So secret variables (the workspace token,
tracking passwords) never go there. Instead they travel **sealed** (Fernet: AES-128-CBC +
HMAC-SHA256) in a file inside the job's source package, and only the random per-job key goes in
``env_vars``. The job runner opens the file, deletes it from the extracted package before the
user's command starts, and hands the secrets to the command through its environment.

What remains exposed: whoever can read *both* the job's env vars (the job API) and the package
while the job starts (Ray's object store / the node's disk for a moment) can open the seal; the
token lives in the job's process environment (readable by the same OS user on the node) for the
job's lifetime. A compute target with ``"credential": "cluster"`` sends no user credential at all:
the job authenticates with the cluster's own identity (``MLFLOW_TRACKING_TOKEN`` or
``DefaultAzureCredential`` / managed identity on the nodes).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path

SEALED_FILE = ".mlflow-workspace-sealed"
KEY_ENV = "MLFLOW_WORKSPACE_SEAL_KEY"
_SECRET_WORDS = ("TOKEN", "PASSWORD", "SECRET", "CLIENT_CERT", "KEY")


def is_secret(name: str) -> bool:
    return any(word in name.upper() for word in _SECRET_WORDS) and name != KEY_ENV


def split_secrets(env: Mapping[str, str]) -> tuple[dict[str, str], dict[str, str]]:
    """(public variables, secret variables) of ``env``."""
    public = {key: value for key, value in env.items() if not is_secret(key)}
    return public, {key: value for key, value in env.items() if is_secret(key)}


def seal(secrets: Mapping[str, str]) -> tuple[str, bytes]:
    """A fresh key and the sealed secrets."""
    from cryptography.fernet import Fernet

    key = Fernet.generate_key()
    return key.decode("ascii"), Fernet(key).encrypt(json.dumps(dict(secrets)).encode("utf-8"))


def unseal_into_environment(folder: Path) -> None:
    """Job side: if ``folder`` holds a sealed file, delete it, open it with the key from the
    environment (which is then removed) and put the secrets into ``os.environ``."""
    sealed = folder / SEALED_FILE
    key = os.environ.pop(KEY_ENV, None)
    if not sealed.is_file():
        return
    data = sealed.read_bytes()
    sealed.unlink()
    if key is None:
        raise SystemExit(f"mlflow-workspace job runner: {SEALED_FILE} found but ${KEY_ENV} is not set")
    from cryptography.fernet import Fernet, InvalidToken

    try:
        secrets = json.loads(Fernet(key.encode("ascii")).decrypt(data))
    except (InvalidToken, ValueError):
        raise SystemExit("mlflow-workspace job runner: the sealed credentials could not be opened") from None
    os.environ.update(secrets)
