"""``Workspace``: find and validate the workspace config, hand MLflow its tracking URI.

Config file (``config.json`` or ``.azureml/config.json``, found walking up from the current
directory, or named by ``$MLFLOW_WORKSPACE_CONFIG`` or an explicit path)::

    {
      "subscription_id": "<uuid>",          # cloud workspace identity (all three required)
      "resource_group": "<rg>",
      "workspace_name": "<ws>",
      "region": "westeurope",               # -> <region>.api.azureml.ms, or:
      "host": "127.0.0.1:5000",             # explicit MLflow API host[:port] (wins over region)
      "compute": {                          # optional named compute targets
        "cpu-cluster": {"type": "ray", "address": "http://127.0.0.1:8265"}
      }
    }

A *local* workspace file names a folder instead of a cloud identity::

    {"workspace_name": "team-laptop", "local_path": ".workspace", "compute": {...}}

With no file at all, :meth:`Workspace.from_config` returns the embedded local workspace.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlflow_workspace_plugin import local_workspace
from mlflow_workspace_plugin.errors import WorkspaceConfigError, WorkspaceUriError
from mlflow_workspace_plugin.uri import WorkspaceScope, validate_host, validate_name

CONFIG_ENV = "MLFLOW_WORKSPACE_CONFIG"
CONFIG_CANDIDATES = ("config.json", os.path.join(".azureml", "config.json"))
LOCAL_COMPUTE = "local"
_CLOUD_FIELDS = ("subscription_id", "resource_group", "workspace_name")
_KNOWN_FIELDS = {*_CLOUD_FIELDS, "region", "host", "local_path", "compute", "location", "friendly_name"}
_OBJECT_FIELDS = {"compute", "environments", "datastores"}  # environments: read by environments/curated.py
_KNOWN_FIELDS |= _OBJECT_FIELDS
_REGION_RE = re.compile(r"^[a-z0-9]+$")
_COMPUTE_NAME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9-]{0,31}$")


@dataclass(frozen=True)
class ComputeTarget:
    """A named compute target from the workspace config."""

    name: str
    type: str
    settings: dict[str, Any] = field(default_factory=dict)


@dataclass
class Workspace:
    """A workspace: either a cloud workspace (``azureml://`` URI) or a local folder."""

    workspace_name: str
    subscription_id: str | None = None
    resource_group: str | None = None
    host: str | None = None
    local_path: Path | None = None
    compute_targets: dict[str, ComputeTarget] = field(default_factory=dict)
    config_path: Path | None = None
    credential: Any = field(default=None, repr=False)
    datastores: dict[str, Any] = field(default_factory=dict)  # name -> store.datastores.Datastore

    # ----------------------------------------------------------------- constructors
    @classmethod
    def from_config(cls, path: str | os.PathLike | None = None, credential: Any = None) -> Workspace:
        """Load the workspace config from ``path`` (file or folder), ``$MLFLOW_WORKSPACE_CONFIG``,
        or the first ``config.json`` / ``.azureml/config.json`` walking up from the current
        directory; with none of those, return the embedded local workspace."""
        config_file = find_config_file(path)
        if config_file is None:
            return cls.local(credential=credential)
        workspace = parse_config(config_file, load_config_json(config_file))
        workspace.credential = credential
        return workspace

    @classmethod
    def local(cls, path: str | os.PathLike | None = None, credential: Any = None) -> Workspace:
        """The zero-config local workspace (``$MLFLOW_WORKSPACE_HOME`` or ``~/.mlflow-workspace``)."""
        folder = Path(path).expanduser().resolve() if path else local_workspace.default_home()
        if path is None:
            local_workspace.announce(folder)
        return cls(workspace_name="local", local_path=folder, credential=credential)

    # ----------------------------------------------------------------- properties
    @property
    def is_local(self) -> bool:
        return self.local_path is not None

    @property
    def scope(self) -> WorkspaceScope:
        if self.is_local:
            raise WorkspaceConfigError(f"Workspace {self.workspace_name!r} is local and has no cloud scope")
        return WorkspaceScope(self.host, self.subscription_id, self.resource_group, self.workspace_name)

    def get_mlflow_tracking_uri(self) -> str:
        """The URI to pass to ``mlflow.set_tracking_uri``."""
        if self.is_local:
            self.local_path.mkdir(parents=True, exist_ok=True)
            local_workspace.remember_announced(self.local_path)
            return local_workspace.local_tracking_uri(self.local_path)
        uri = self.scope.tracking_uri
        if self.credential is not None:
            from mlflow_workspace_plugin import auth

            auth.register_credential(uri, self.credential)
        return uri

    def get_compute_target(self, name: str) -> ComputeTarget:
        """Look up a compute target by name; ``local`` always exists."""
        if name == LOCAL_COMPUTE:
            return ComputeTarget(LOCAL_COMPUTE, LOCAL_COMPUTE)
        if name in self.compute_targets:
            return self.compute_targets[name]
        raise WorkspaceConfigError(unknown_compute_message(name, self))


def unknown_compute_message(name: str, workspace: Workspace) -> str:
    """One line: the unknown name, the known targets, and both ways to run it on this machine."""
    known = ", ".join(repr(k) for k in sorted([LOCAL_COMPUTE, *workspace.compute_targets]))
    target = {name: {"type": LOCAL_COMPUTE}}
    if workspace.config_path:
        where, add_to = f"in {workspace.config_path}", f"add it under \"compute\" in {workspace.config_path}"
        snippet = json.dumps({"compute": target})
    else:
        where = "(no workspace config file found)"
        add_to = ("write a workspace config.json (`mlflow-workspace init --from <folder of job files>` writes one "
                  "naming every compute the files use)")
        snippet = json.dumps(starter_config(target, workspace.local_path or local_workspace.default_home()))
    return (f"Unknown compute target {name!r}. Compute targets of workspace {workspace.workspace_name!r} {where}: "
            f"{known}. To run it on this machine, {add_to}: {snippet}, or run this once on compute 'local' "
            "(job files: --set compute=local; projects: backend_config COMPUTE=local).")


def starter_config(compute: dict[str, dict[str, Any]], local_path: Path,
                   workspace_name: str = "local") -> dict[str, Any]:
    """A local workspace config in ``local_path`` with the compute targets ``compute``."""
    return {"workspace_name": workspace_name, "local_path": str(local_path), "compute": compute}


def valid_compute_name(name: str) -> bool:
    """Whether ``name`` can name a compute target (1-32 letters, digits or '-', starting with a letter)."""
    return bool(_COMPUTE_NAME_RE.fullmatch(name))


def write_config(path: Path, data: dict[str, Any], *, force: bool = False) -> Path:
    """Write the workspace config ``data`` to ``path`` (validated first; an existing file only with
    ``force``; written whole or not at all). Returns the absolute path."""
    path = Path(path).expanduser().absolute()
    if os.path.lexists(path) and not force:
        raise WorkspaceConfigError(f"{path} already exists; keep it, or replace it with --force")
    if path.is_dir():
        raise WorkspaceConfigError(f"{path} is a folder; give the config file's path")
    parse_config(path, data)  # never write a config the plugin would refuse to read
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        temporary.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
        os.replace(temporary, path)  # replaces a symlink itself, never the file it points to
    finally:
        temporary.unlink(missing_ok=True)
    return path


# --------------------------------------------------------------------- config file
def find_config_file(path: str | os.PathLike | None = None) -> Path | None:
    """Resolve which config file applies (or None for the embedded default)."""
    explicit = path if path is not None else os.environ.get(CONFIG_ENV) or None
    if explicit is not None:
        candidate = Path(explicit).expanduser()
        if candidate.is_dir():
            for name in CONFIG_CANDIDATES:
                if (candidate / name).is_file():
                    return (candidate / name).resolve()
            raise WorkspaceConfigError(
                f"No workspace config in folder {candidate}: looked for {', '.join(CONFIG_CANDIDATES)}"
            )
        if not candidate.is_file():
            source = f"${CONFIG_ENV}" if path is None else "path"
            raise WorkspaceConfigError(f"Workspace config file {candidate} (from {source}) does not exist")
        return candidate.resolve()
    folder = Path.cwd().resolve()
    for directory in (folder, *folder.parents):
        for name in CONFIG_CANDIDATES:
            if (directory / name).is_file() and _looks_like_workspace_config(directory / name):
                return directory / name
    return None


def _looks_like_workspace_config(path: Path) -> bool:
    """A bare ``config.json`` walked into may belong to something else: only claim it if it
    mentions a workspace field (explicit paths are always validated strictly)."""
    if path.parent.name == ".azureml":
        return True
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return True  # let load_config_json report it precisely
    return isinstance(data, dict) and ("workspace_name" in data or "local_path" in data)


def load_config_json(path: Path) -> dict[str, Any]:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise WorkspaceConfigError(f"Cannot read workspace config {path}: {exc.strerror}") from None
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise WorkspaceConfigError(f"Workspace config {path} is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise WorkspaceConfigError(
            f"Workspace config {path} must be a JSON object, got {type(data).__name__}"
        )
    return data


def parse_config(path: Path, data: dict[str, Any]) -> Workspace:
    """Validate a config dict (from ``path``) into a :class:`Workspace`."""

    def fail(field_name: str, why: str) -> WorkspaceConfigError:
        return WorkspaceConfigError(f"Workspace config {path}: field {field_name!r} {why}")

    unknown = sorted(set(data) - _KNOWN_FIELDS)
    if unknown:
        raise fail(unknown[0], f"is not recognised; allowed fields: {', '.join(sorted(_KNOWN_FIELDS))}")
    for name in _KNOWN_FIELDS - _OBJECT_FIELDS:
        if name in data and not isinstance(data[name], str):
            raise fail(name, f"must be a string, got {type(data[name]).__name__} {data[name]!r}")
    compute = _parse_compute(data.get("compute", {}), fail)
    datastores = _parse_datastores(data.get("datastores", {}), path, fail)

    if "local_path" in data:
        cloud = [name for name in ("subscription_id", "resource_group", "region", "host") if name in data]
        if cloud:
            raise fail("local_path", f"cannot be combined with cloud field {cloud[0]!r}")
        folder = Path(data["local_path"]).expanduser()
        if not folder.is_absolute():
            folder = path.parent / folder
        return Workspace(
            workspace_name=data.get("workspace_name", "local"),
            local_path=folder.resolve(),
            compute_targets=compute,
            config_path=path,
            datastores=datastores,
        )

    for name in _CLOUD_FIELDS:
        if name not in data:
            raise fail(name, f"is missing; a cloud workspace needs {', '.join(_CLOUD_FIELDS)} "
                             "(or 'local_path' for a local workspace)")
        try:
            validate_name(name, data[name])
        except WorkspaceUriError as exc:
            raise fail(name, f"is invalid: {exc.message}") from None
    host = _resolve_host(data, fail)
    return Workspace(
        workspace_name=data["workspace_name"],
        subscription_id=data["subscription_id"],
        resource_group=data["resource_group"],
        host=host,
        compute_targets=compute,
        config_path=path,
        datastores=datastores,
    )


def _resolve_host(data: dict[str, Any], fail) -> str:
    if "host" in data:
        try:
            return validate_host(data["host"])
        except WorkspaceUriError as exc:
            raise fail("host", f"is invalid: {exc.message}") from None
    region = data.get("region") or data.get("location")
    key = "region" if "region" in data else "location"
    if not region:
        raise fail("region", "is missing; add e.g. \"region\": \"westeurope\" (the workspace's Azure "
                             "region) or \"host\": \"<host>[:port]\" of its MLflow API")
    if not _REGION_RE.match(region):
        raise fail(key, f"value {region!r} is not an Azure region name (lowercase letters and digits, "
                        "e.g. 'westeurope')")
    return f"{region}.api.azureml.ms"


def _parse_compute(raw: Any, fail) -> dict[str, ComputeTarget]:
    if not isinstance(raw, dict):
        raise fail("compute", f"must be an object of name -> target, got {type(raw).__name__}")
    targets: dict[str, ComputeTarget] = {}
    for name, spec in raw.items():
        where = f"compute.{name}"
        if name == LOCAL_COMPUTE:
            raise fail(where, "uses the reserved name 'local' (always the local machine)")
        if not _COMPUTE_NAME_RE.match(name):
            raise fail(where, "has an invalid name: use 1-32 letters, digits or '-', starting with a letter")
        if not isinstance(spec, dict):
            raise fail(where, f"must be an object like {{\"type\": \"ray\", ...}}, got {type(spec).__name__}")
        kind = spec.get("type")
        if not isinstance(kind, str) or not kind:
            raise fail(f"{where}.type", f"must be a non-empty string naming the compute type, got {kind!r}")
        settings = {key: value for key, value in spec.items() if key != "type"}
        targets[name] = ComputeTarget(name=name, type=kind, settings=settings)
    return targets


def _parse_datastores(raw: Any, path: Path, fail) -> dict[str, Any]:
    """The ``datastores`` key (see :mod:`mlflow_workspace_plugin.store.datastores`)."""
    from mlflow_workspace_plugin.store.datastores import parse_datastores

    return parse_datastores(raw, path.parent, fail)
