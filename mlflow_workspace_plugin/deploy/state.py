"""Endpoint and deployment state in the workspace folder (JSON files, one writer at a time).

Layout under the target's state root (``<workspace>/deployments`` for a local workspace)::

    .lock                               file lock (file_lock.held): every change happens while holding it
    <endpoint>/endpoint.json            desired state, written by clients (EndpointRecord)
    <endpoint>/keys.json                the endpoint's two keys (mode 0600; never logged)
    <endpoint>/status.json              observed state, written by the endpoint's front process (0600)
    <endpoint>/models/<deployment>-<n>  the model each deployment generation serves
    <endpoint>/logs/endpoint.log        front process log; logs/<deployment>.log: scoring server log
"""

from __future__ import annotations

import contextlib
import re
import shutil
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from mlflow_workspace_plugin import file_lock
from mlflow_workspace_plugin.deploy import processes
from mlflow_workspace_plugin.deploy.errors import DeploymentError

NAME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,31}$")
ENDPOINT_FILE = "endpoint.json"
KEYS_FILE = "keys.json"
STATUS_FILE = "status.json"
LOCK_TIMEOUT_S = 120.0


def check_name(kind: str, name: Any) -> str:
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise DeploymentError(f"{kind} name {name!r} is not allowed: use 1-32 letters, digits, '-' or '_', "
                              "starting with a letter")
    return name


def now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


@dataclass
class DeploymentRecord:
    """One deployment (a model version served by an endpoint)."""

    name: str
    endpoint: str
    model_uri: str
    model: dict[str, Any]
    model_path: str
    env_manager: str = "local"
    command: list[str] = field(default_factory=list)  # scoring server argv; "{port}" is filled in
    command_env: dict[str, str] = field(default_factory=dict)  # environment it needs on top of ours
    timeout: float = 300.0
    instance_count: int = 1
    cpus_per_instance: float = 1.0
    generation: int = 1
    created_at: str = field(default_factory=now)
    updated_at: str = field(default_factory=now)


@dataclass
class EndpointRecord:
    """One endpoint: a stable scoring URI with keys, holding deployments that share its traffic."""

    name: str
    compute: str = "local"
    auth_mode: str = "key"
    port: int | None = None
    generation: int = 0
    auto_created: bool = False
    description: str | None = None
    traffic: dict[str, int] = field(default_factory=dict)
    deployments: dict[str, DeploymentRecord] = field(default_factory=dict)
    process: dict[str, Any] | None = None  # {"pid", "start_time"} of the local front process
    ray: dict[str, Any] | None = None  # {"address", "serve_host", "serve_port"} on a ray target
    token_check_url: str | None = None  # aml_token: a workspace URL that accepts valid tokens
    created_at: str = field(default_factory=now)
    updated_at: str = field(default_factory=now)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EndpointRecord:
        deployments = {name: DeploymentRecord(**value) for name, value in data.get("deployments", {}).items()}
        return cls(**{**data, "deployments": deployments})

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class StateStore:
    """Reads and writes the state files of one deployment target."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    @contextlib.contextmanager
    def lock(self, timeout: float = LOCK_TIMEOUT_S) -> Iterator[None]:
        """Exclusive lock over all endpoints of this target (held across read-modify-write)."""
        self.root.mkdir(parents=True, exist_ok=True)
        try:
            with file_lock.held(self.root / ".lock", timeout):
                yield
        except file_lock.LockTimeout:
            raise DeploymentError(f"Deployment state {self.root} stayed locked for {timeout:.0f} s "
                                  "by another process") from None

    # ------------------------------------------------------------------ paths
    def endpoint_dir(self, name: str) -> Path:
        return self.root / name

    def log_dir(self, name: str) -> Path:
        return self.endpoint_dir(name) / "logs"

    def model_dir(self, endpoint: str, deployment: str, generation: int) -> Path:
        return self.endpoint_dir(endpoint) / "models" / f"{deployment}-{generation}"

    # ------------------------------------------------------------------ records
    def endpoint_names(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir() if (p / ENDPOINT_FILE).is_file())

    def load(self, name: str) -> EndpointRecord | None:
        data = read_json(self.endpoint_dir(name) / ENDPOINT_FILE)
        return EndpointRecord.from_dict(data) if data else None

    def save(self, record: EndpointRecord) -> None:
        record.updated_at = now()
        write_json(self.endpoint_dir(record.name) / ENDPOINT_FILE, record.to_dict())

    def read_keys(self, name: str) -> dict[str, str]:
        return read_json(self.endpoint_dir(name) / KEYS_FILE) or {}

    def write_keys(self, name: str, keys: dict[str, str]) -> None:
        write_json(self.endpoint_dir(name) / KEYS_FILE, keys, mode=0o600)

    def read_status(self, name: str) -> dict[str, Any]:
        return read_json(self.endpoint_dir(name) / STATUS_FILE) or {}

    def remove(self, name: str) -> None:
        shutil.rmtree(self.endpoint_dir(name), ignore_errors=True)

    def find_deployment(self, name: str, endpoint: str | None) -> tuple[EndpointRecord, DeploymentRecord] | None:
        """The deployment ``name`` in ``endpoint``; without an endpoint, the only deployment of that name."""
        if endpoint is not None:
            record = self.load(endpoint)
            if record is None or name not in record.deployments:
                return None
            return record, record.deployments[name]
        found = [(r, r.deployments[name]) for r in map(self.load, self.endpoint_names())
                 if r is not None and name in r.deployments]
        if len(found) > 1:
            where = ", ".join(r.name for r, _ in found)
            raise DeploymentError(f"Deployment {name!r} exists in several endpoints ({where}): pass endpoint=")
        return found[0] if found else None


def read_json(path: Path) -> dict[str, Any] | None:
    try:
        return processes.read_json(path)
    except ValueError:  # writers always replace atomically; a torn file means corruption
        raise DeploymentError(f"Deployment state file {path} is corrupt; delete its endpoint folder") from None


write_json = processes.write_json
