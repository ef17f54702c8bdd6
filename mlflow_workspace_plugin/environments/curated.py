"""Azure ML's curated environments as package sets (``curated.json``), and the workspace's own.

``curated.json`` is derived from the conda / pip files Microsoft publishes for each curated training
environment in the public ``Azure/azureml-assets`` repository (folder, commit and date in its
``source``; the derivation rules in its ``rules``): an environment's ``packages`` are pip requirements,
``python`` the interpreter version Azure builds it with. A curated environment is named in job files
as ``azureml:AzureML-<name>:<version>`` / ``azureml:AzureML-<name>@latest`` (the workspace spelling),
``azureml://registries/azureml/environments/<name>/versions/<v>`` / ``.../labels/latest`` (the
registry spelling) or, in older files, ``AzureML-<name>-ubuntu20.04-py38-cpu``: all of them resolve to
``<name>``. The version is not honoured (the table holds one package set per name).

The workspace config's ``"environments"`` object overrides or extends the table::

    "environments": {
      "sklearn-1.5": {"packages": ["scikit-learn~=1.5.0", "pandas"], "python": "3.11"},
      "team-base":   {"packages": ["lightgbm>=4"], "description": "our base"}
    }

Keys are names in any of the spellings above (``AzureML-sklearn-1.5`` and ``sklearn-1.5`` are the
same entry); an entry replaces the table's entry of that name; a new name can then be referenced as
``azureml:team-base@latest`` (before registered environments of the same name).
"""

from __future__ import annotations

import functools
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlflow_workspace_plugin.errors import WorkspaceConfigError

TABLE_FILE = Path(__file__).with_name("curated.json")
CONFIG_KEY = "environments"
CURATED_PREFIX = "AzureML-"
_OS_SUFFIX = re.compile(r"-ubuntu\d+(?:\.\d+)?-py\d+-(?:cpu|cuda\d+(?:\.\d+)?-gpu)(?:-inference)?$", re.I)
_REGISTRY = re.compile(r"^azureml://registries/(?P<registry>[^/]+)/environments/(?P<name>[^/]+)"
                       r"(?:/(?:versions/[^/]+|labels/[^/]+))?$")
_SHORT = re.compile(r"^(?:azureml:)?(?P<name>[^:@/]+)(?::[^:@/]+|@[^:@/]+)?$")
_ENTRY_KEYS = {"packages", "python", "description"}


@dataclass(frozen=True)
class CuratedEnvironment:
    """One named package set."""

    name: str
    packages: tuple[str, ...]
    python: str | None = None
    description: str = ""
    origin: str = ""  # "azureml-assets@<commit> (<date>)" or "workspace config <path>"
    dropped: tuple[str, ...] = field(default=())


def table_source() -> dict[str, str]:
    """Where the table comes from: repository, commit, date, folder."""
    return dict(_table()["source"])


@functools.lru_cache(maxsize=1)
def _table() -> dict[str, Any]:
    return json.loads(TABLE_FILE.read_text(encoding="utf-8"))


def canonical_name(reference: str) -> tuple[str, bool]:
    """(the environment name a reference spells, whether it is spelled as a curated one).

    ``azureml:AzureML-sklearn-1.5@latest`` -> ("sklearn-1.5", True);
    ``azureml://registries/azureml/environments/sklearn-1.5/labels/latest`` -> ("sklearn-1.5", True);
    ``azureml:my-env:3`` -> ("my-env", False).
    """
    registry = _REGISTRY.match(reference)
    if registry:
        if registry["registry"].lower() != "azureml":
            raise WorkspaceConfigError(
                f"Environment {reference!r} is in registry {registry['registry']!r}; only Azure's curated "
                "registry 'azureml' is known here (or register it: mlflow-workspace environment create -f ...)")
        return _strip(registry["name"]), True
    short = _SHORT.match(reference)
    if not short:
        raise WorkspaceConfigError(f"{reference!r} is not an environment reference; allowed: "
                                   "azureml:<name>:<version>, azureml:<name>@latest, "
                                   "azureml://registries/azureml/environments/<name>/labels/latest")
    name = short["name"]
    curated = name.lower().startswith(CURATED_PREFIX.lower())
    return (_strip(name[len(CURATED_PREFIX):]) if curated else name), curated


def _strip(name: str) -> str:
    return _OS_SUFFIX.sub("", name)


def known_names(config: dict[str, Any] | None = None) -> list[str]:
    return sorted({*_table()["environments"], *_config_entries(config, None)})


def lookup(name: str, config: dict[str, Any] | None = None,
           config_path: Path | None = None) -> CuratedEnvironment | None:
    """The package set named ``name`` (a canonical name): the workspace config's entry, else the table's."""
    entries = _config_entries(config, config_path)
    if name in entries:
        return entries[name]
    lowered = {key.lower(): key for key in _table()["environments"]}
    key = lowered.get(name.lower())
    if key is None:
        return None
    raw = _table()["environments"][key]
    source = _table()["source"]
    return CuratedEnvironment(
        name=key, packages=tuple(raw["packages"]), python=raw.get("python"), description=raw.get("description", ""),
        origin=f"Azure/azureml-assets@{source['commit'][:12]} ({source['date']}), {raw['source']}",
        dropped=tuple(item["requirement"] for item in raw.get("dropped", ())))


def _config_entries(config: dict[str, Any] | None, config_path: Path | None) -> dict[str, CuratedEnvironment]:
    raw = (config or {}).get(CONFIG_KEY)
    if raw is None:
        return {}
    where = f"Workspace config {config_path}" if config_path else "Workspace config"
    if not isinstance(raw, dict):
        raise WorkspaceConfigError(f"{where}: field {CONFIG_KEY!r} must be an object of name -> "
                                   f"{{\"packages\": [...]}}, got {type(raw).__name__}")
    entries: dict[str, CuratedEnvironment] = {}
    for key, spec in raw.items():
        field_name = f"{CONFIG_KEY}.{key}"
        if not isinstance(spec, dict):
            raise WorkspaceConfigError(f"{where}: field {field_name!r} must be an object like "
                                       f"{{\"packages\": [\"scikit-learn~=1.5\"]}}, got {type(spec).__name__}")
        unknown = sorted(set(spec) - _ENTRY_KEYS)
        if unknown:
            raise WorkspaceConfigError(f"{where}: field {field_name}.{unknown[0]} is not recognised; "
                                       f"allowed: {', '.join(sorted(_ENTRY_KEYS))}")
        packages = spec.get("packages")
        if not isinstance(packages, list) or not all(isinstance(item, str) for item in packages):
            raise WorkspaceConfigError(f"{where}: field {field_name}.packages must be a list of pip "
                                       f"requirement strings, got {packages!r}")
        python = spec.get("python")
        if python is not None and not isinstance(python, str):
            raise WorkspaceConfigError(f"{where}: field {field_name}.python must be a string like \"3.11\"")
        name = canonical_name(key)[0]
        entries[name] = CuratedEnvironment(name=name, packages=tuple(packages), python=python,
                                           description=str(spec.get("description", "")),
                                           origin=f"workspace config {config_path or ''}".strip())
    return entries
