"""Datastores: a name in the workspace config -> where the data really is; storage URIs resolved through them.

Config (the ``"datastores"`` key of the workspace config; Azure's datastore YAML is the model)::

    "datastores": {
      "workspaceblobstore": {"type": "local", "path": "blobs"},   # default: <workspace>/datastores/workspaceblobstore
      "web":   {"type": "http", "url": "https://example.org/data"},
      "raw":   {"type": "azure_blob", "account_name": "acct", "container_name": "raw",
                "credentials": {"sas_token_env": "RAW_SAS"}},              # or account_key_env, or none: azure-identity
      "lake":  {"type": "azure_data_lake_gen2", "account_name": "acct", "filesystem": "lake",
                "endpoint": "http://127.0.0.1:10000/acct",                 # a full URL (emulator) or a DNS suffix
                "credentials": {"anonymous": true}}
    }

Secrets are never in the file: ``credentials`` names the environment variable that holds a SAS token
(``sas_token_env``) or an account key (``account_key_env``); a literal ``sas_token`` / ``account_key`` is
refused. No ``credentials``: azure-identity's ``DefaultAzureCredential``; ``{"anonymous": true}``: public read.

URIs that resolve here (:func:`resolve`): ``azureml://datastores/<store>/paths/<p>`` (also with the
``subscriptions/.../workspaces/<ws>/`` prefix), ``wasb(s)://<container>@<account>.blob.<suffix>/<p>``,
``abfs(s)://<fs>@<account>.dfs.<suffix>/<p>``, ``https://<account>.(blob|dfs).<suffix>/<container>/<p>``
and any http(s) URL under a configured blob datastore's container URL. A blob URI whose account and
container have no datastore is read anonymously (as Azure's public sample data is).

ADLS Gen2 (``abfss://``, ``azure_data_lake_gen2``) is reached through the account's Blob endpoint, which
serves the same containers (multi-protocol access): one code path, testable against Azurite (which has
no DFS endpoint).
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import unquote, urlsplit

from mlflow.exceptions import INVALID_PARAMETER_VALUE, MlflowException

from mlflow_workspace_plugin.env_settings import env_number
from mlflow_workspace_plugin.uri import redact

DEFAULT_STORE = "workspaceblobstore"
TYPES = ("local", "http", "azure_blob", "azure_data_lake_gen2")
BLOB_TYPES = ("azure_blob", "azure_data_lake_gen2")
MAX_FILES_ENV = "MLFLOW_WORKSPACE_DATASTORE_MAX_FILES"
DEFAULT_MAX_FILES = 100_000
DEFAULT_SUFFIX = "core.windows.net"

_NAME_RE = re.compile(r"^[A-Za-z0-9_]{1,255}$")
_ENV_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_ACCOUNT_RE = re.compile(r"^[a-z0-9]{3,24}$")
_CONTAINER_RE = re.compile(r"^(\$root|[a-z0-9](?:[a-z0-9-]{1,61}[a-z0-9])?)$")
_AZUREML_RE = re.compile(
    r"^azureml://(?:subscriptions/[^/]+/resource[gG]roups/[^/]+/(?:providers/Microsoft\.MachineLearningServices/)?"
    r"workspaces/[^/]+/)?datastores/(?P<store>[^/]*)/paths/(?P<path>.*)$")
_WASB_RE = re.compile(r"^(?P<scheme>wasbs?|abfss?)://(?P<container>[^@/]+)@(?P<account>[^./]+)\."
                      r"(?P<service>blob|dfs)\.(?P<suffix>[^/]+)(?:/(?P<path>.*))?$", re.I)
_BLOB_URL_RE = re.compile(r"^https?://(?P<account>[^./]+)\.(?P<service>blob|dfs)\.(?P<suffix>[^/]+)"
                          r"/(?P<container>[^/?#]+)(?:/(?P<path>[^?#]*))?$", re.I)
_SECRET_KEYS = ("sas_token", "account_key", "client_secret", "password")
STORAGE_SCHEMES = ("azureml://datastores/", "wasb://", "wasbs://", "abfs://", "abfss://")
SUPPORTED_URIS = ("azureml://datastores/<store>/paths/<path>, wasbs://<container>@<account>.blob.core.windows.net/"
                  "<path>, abfss://<filesystem>@<account>.dfs.core.windows.net/<path> or "
                  "https://<account>.blob.core.windows.net/<container>/<path>")


class DatastoreError(MlflowException):
    """A datastore that is not configured, configured wrongly, or a storage URI that cannot be used."""

    def __init__(self, message: str) -> None:
        super().__init__(redact(message), error_code=INVALID_PARAMETER_VALUE)


@dataclass(frozen=True)
class Credentials:
    """How a blob datastore authenticates: ``sas`` / ``key`` (from ``env``), ``identity`` or ``anonymous``."""

    kind: str = "identity"
    env: str | None = None

    def secret(self, store: str) -> str:
        value = os.environ.get(self.env or "", "")
        if not value:
            what = "SAS token" if self.kind == "sas" else "account key"
            raise DatastoreError(f"Datastore {store!r} takes its {what} from ${self.env}, which is not set in "
                                 "this environment")
        return value


@dataclass(frozen=True)
class Datastore:
    """One datastore: ``local`` (``path``), ``http`` (``url``) or a blob container (``account_url``/``container``)."""

    name: str
    type: str
    path: Path | None = None
    url: str | None = None
    account_name: str | None = None
    container: str | None = None
    account_url: str | None = None
    credentials: Credentials = Credentials()

    @property
    def is_blob(self) -> bool:
        return self.type in BLOB_TYPES

    @property
    def container_url(self) -> str:
        return f"{self.account_url}/{self.container}"


@dataclass(frozen=True)
class Location:
    """A place inside a datastore: ``path`` is a clean relative POSIX path ("" for the root)."""

    store: Datastore
    path: str
    uri: str

    @property
    def shown(self) -> str:
        return redact(self.uri)

    @property
    def http_url(self) -> str:
        return f"{self.store.url.rstrip('/')}/{self.path}" if self.path else self.store.url

    @property
    def local_path(self) -> Path:
        """For a ``local`` datastore: the path inside its folder (symlinks leading out are refused)."""
        root = self.store.path.resolve()
        candidate = root / self.path
        resolved = candidate.resolve()
        if resolved != root and root not in resolved.parents:
            raise DatastoreError(f"{self.shown} leads to {resolved}, outside datastore {self.store.name!r} "
                                 f"({root}): links out of a datastore folder are not followed")
        return candidate


def max_files() -> int:
    """How many files one folder listing may hold (``$MLFLOW_WORKSPACE_DATASTORE_MAX_FILES``)."""
    return int(env_number(MAX_FILES_ENV, DEFAULT_MAX_FILES, allow_zero=False))


# --------------------------------------------------------------------------- config
def parse_datastores(raw: Any, base: Path, fail) -> dict[str, Datastore]:
    """Validate the config's ``datastores`` object; ``base`` anchors relative local paths; ``fail(field, why)``
    builds the config error."""
    if not isinstance(raw, dict):
        raise fail("datastores", f"must be an object of name -> datastore, got {type(raw).__name__}")
    stores = {}
    for name, spec in raw.items():
        where = f"datastores.{name}"
        if not _NAME_RE.match(str(name)):
            raise fail(where, "has an invalid name: use letters, digits and '_' (as Azure ML datastore names)")
        if not isinstance(spec, dict):
            raise fail(where, f"must be an object like {{\"type\": \"azure_blob\", ...}}, got {type(spec).__name__}")
        stores[name] = _parse_one(name, spec, base, lambda key, why, w=where: fail(f"{w}.{key}", why))
    return stores


def _parse_one(name: str, spec: dict, base: Path, fail) -> Datastore:
    kind = spec.get("type")
    if kind not in TYPES:
        raise fail("type", f"is {kind!r}; allowed: {', '.join(TYPES)}")
    allowed = {"type", "name", "description", "tags"} | {
        "local": {"path"}, "http": {"url"},
        "azure_blob": {"account_name", "container_name", "endpoint", "protocol", "credentials"},
        "azure_data_lake_gen2": {"account_name", "filesystem", "endpoint", "protocol", "credentials"},
    }[kind]
    for key in spec:
        if key in _SECRET_KEYS:
            raise fail(key, f"holds a secret: never write it in the config; put it in an environment variable "
                            f"and name that variable with credentials.{key}_env")
        if key not in allowed:
            raise fail(key, f"is not recognised for type {kind}; allowed: {', '.join(sorted(allowed))}")
    if kind == "local":
        text = _text(spec, "path", fail)
        folder = Path(text).expanduser()
        return Datastore(name, kind, path=(folder if folder.is_absolute() else base / folder).resolve())
    if kind == "http":
        url = _text(spec, "url", fail)
        if urlsplit(url).scheme not in ("http", "https") or not urlsplit(url).netloc:
            raise fail("url", f"{redact(url)!r} is not an http(s) URL")
        return Datastore(name, kind, url=url.rstrip("/"))
    account = _text(spec, "account_name", fail)
    if not _ACCOUNT_RE.match(account):
        raise fail("account_name", f"{account!r} is not a storage account name (3-24 lowercase letters and digits)")
    container_key = "container_name" if kind == "azure_blob" else "filesystem"
    container = _text(spec, container_key, fail)
    if not _CONTAINER_RE.match(container):
        raise fail(container_key, f"{container!r} is not a container name (3-63 lowercase letters, digits and '-')")
    protocol = spec.get("protocol", "https")
    if protocol not in ("https", "http"):
        raise fail("protocol", f"is {protocol!r}; allowed: https, http")
    endpoint = spec.get("endpoint", DEFAULT_SUFFIX)
    if not isinstance(endpoint, str) or not endpoint:
        raise fail("endpoint", "must be a DNS suffix (core.windows.net) or a URL (http://127.0.0.1:10000/<account>)")
    if "://" in endpoint:
        parts = urlsplit(endpoint)
        if parts.scheme not in ("http", "https") or not parts.netloc or parts.query:
            raise fail("endpoint", f"{redact(endpoint)!r} is not an http(s) URL without a query")
        account_url = endpoint.rstrip("/")
    else:
        account_url = f"{protocol}://{account}.blob.{endpoint}"
    return Datastore(name, kind, account_name=account, container=container, account_url=account_url,
                     credentials=_credentials(spec.get("credentials"), fail))


def _credentials(raw: Any, fail) -> Credentials:
    if raw is None:
        return Credentials("identity")
    if not isinstance(raw, dict):
        raise fail("credentials", "must be an object such as {\"sas_token_env\": \"MY_SAS\"}")
    for key in raw:
        if key in _SECRET_KEYS:
            raise fail(f"credentials.{key}", f"holds a secret: never write it in the config; put it in an environment "
                                             f"variable and name that variable with credentials.{key}_env")
    allowed = {"sas_token_env", "account_key_env", "anonymous", "identity"}
    unknown = sorted(set(raw) - allowed)
    if unknown or len(raw) != 1:
        raise fail("credentials", f"must hold exactly one of {', '.join(sorted(allowed))}; got {sorted(raw)}")
    (key, value), = raw.items()
    if key in ("anonymous", "identity"):
        if value is not True:
            raise fail(f"credentials.{key}", "must be true")
        return Credentials(key)
    if not isinstance(value, str) or not _ENV_RE.match(value):
        raise fail(f"credentials.{key}", f"must name an environment variable (letters, digits, '_'), got {value!r}")
    return Credentials("sas" if key == "sas_token_env" else "key", value)


def _text(spec: dict, key: str, fail) -> str:
    value = spec.get(key)
    if not isinstance(value, str) or not value:
        raise fail(key, f"is missing or not a string (got {value!r})")
    return value


def with_defaults(stores: Mapping[str, Datastore], local_workspace: Path | None) -> dict[str, Datastore]:
    """``stores`` plus ``workspaceblobstore`` as ``<local workspace>/datastores/workspaceblobstore``."""
    out = dict(stores)
    if DEFAULT_STORE not in out and local_workspace is not None:
        folder = Path(local_workspace) / "datastores" / DEFAULT_STORE
        out[DEFAULT_STORE] = Datastore(DEFAULT_STORE, "local", path=folder)
    return out


def workspace_datastores(workspace=None) -> dict[str, Datastore]:
    """The datastores of ``workspace`` (default: the current one), defaults included."""
    if workspace is None:
        from mlflow_workspace_plugin.workspace import Workspace

        workspace = Workspace.from_config()
    return with_defaults(getattr(workspace, "datastores", {}) or {}, workspace.local_path)


# --------------------------------------------------------------------------- URIs
def is_storage_uri(uri: str, stores: Mapping[str, Datastore] | None = None) -> bool:
    """Whether ``uri`` is read through a datastore (see the module docstring)."""
    if uri.startswith("azureml://") and "/datastores/" in uri:
        return True
    if uri.lower().startswith(STORAGE_SCHEMES) or _BLOB_URL_RE.match(uri):
        return True
    return any(_under(uri, store) for store in (stores or {}).values() if store.is_blob)


def resolve(uri: str, stores: Mapping[str, Datastore]) -> Location:
    """The datastore location ``uri`` names; one :class:`DatastoreError` naming the URI otherwise."""
    shown = redact(uri)
    match = _AZUREML_RE.match(uri)
    if match:
        name = match["store"]
        if name not in stores:
            known = ", ".join(sorted(stores)) or "none"
            raise DatastoreError(f"{shown}: no datastore named {name!r} in the workspace config (configured: {known}); "
                                 "add it under \"datastores\" in the workspace config.json")
        return Location(stores[name], _clean(match["path"], uri), uri)
    if uri.startswith("azureml://"):
        raise DatastoreError(f"{shown} is not a datastore URI; expected azureml://datastores/<store>/paths/<path>")
    match = _WASB_RE.match(uri)
    if match:
        return Location(_blob_store(match["account"], match["container"], match["suffix"], stores),
                        _clean(match["path"] or "", uri), uri)
    if uri.lower().startswith(STORAGE_SCHEMES):
        raise DatastoreError(f"{shown} is not a valid storage URI; expected {SUPPORTED_URIS}")
    for store in stores.values():
        if store.is_blob and _under(uri, store):
            rest = urlsplit(uri).path[len(urlsplit(store.container_url).path):]
            return Location(store, _clean(unquote(rest), uri), uri)
    match = _BLOB_URL_RE.match(uri)
    if match:
        return Location(_blob_store(match["account"], match["container"], match["suffix"], stores),
                        _clean(unquote(match["path"] or ""), uri), uri)
    raise DatastoreError(f"{shown} is not a storage URI; expected {SUPPORTED_URIS}")


def check_shape(uri: str) -> None:
    """Check a storage URI's shape (not whether its datastore exists): one error naming it otherwise."""
    match = _AZUREML_RE.match(uri)
    if match:
        if not _NAME_RE.match(match["store"]):
            raise DatastoreError(f"{redact(uri)}: {match['store']!r} is not a datastore name")
        _clean(match["path"], uri)
        return
    match = _WASB_RE.match(uri) or _BLOB_URL_RE.match(uri)
    if match:
        _blob_store(match["account"], match["container"], match["suffix"], {})
        _clean(unquote(match["path"] or ""), uri)
        return
    raise DatastoreError(f"{redact(uri)} is not a valid storage URI; expected {SUPPORTED_URIS}")


def _under(uri: str, store: Datastore) -> bool:
    base = store.container_url
    return uri == base or uri.startswith(base + "/")


def _blob_store(account: str, container: str, suffix: str, stores: Mapping[str, Datastore]) -> Datastore:
    account, container = account.lower(), container
    for store in stores.values():
        if store.is_blob and store.account_name == account and store.container == container:
            return store
    if not _ACCOUNT_RE.match(account) or not _CONTAINER_RE.match(container):
        raise DatastoreError(f"{account!r} / {container!r} is not a valid storage account / container name")
    return Datastore(f"{account}/{container}", "azure_blob", account_name=account, container=container,
                     account_url=f"https://{account}.blob.{suffix}", credentials=Credentials("anonymous"))


def _clean(path: str, uri: str) -> str:
    """``path`` as a relative POSIX path; ``..``, ``.``, backslashes and control characters are refused."""
    if any(ord(c) < 32 for c in path) or "\\" in path:
        raise DatastoreError(f"{redact(uri)}: the path holds a control character or a backslash")
    parts = [part for part in path.split("/") if part]
    if any(part in ("..", ".") for part in parts):
        raise DatastoreError(f"{redact(uri)}: '..' and '.' are not allowed in a datastore path")
    return "/".join(parts)


# --------------------------------------------------------------------------- reading and writing
def fetch(location: Location, target: Path, data_type: str) -> Path:
    """Copy a file (``uri_file``) or folder (anything else) at ``location`` into ``target`` (replaced);
    returns the file or the folder."""
    if location.store.type == "http":
        raise DatastoreError(f"{location.shown}: http datastores are read by URL (see jobs.inputs)")
    _fresh(target)
    if location.store.type == "local":
        source = location.local_path
        if not source.exists():
            raise DatastoreError(f"{location.shown}: {source} does not exist")
        check_no_links_out(source, location.store.path)
        if data_type == "uri_file":
            if not source.is_file():
                raise DatastoreError(f"{location.shown} is a folder; use type: uri_folder")
            target.mkdir(parents=True)
            return Path(shutil.copy2(source, target / source.name))
        if not source.is_dir():
            raise DatastoreError(f"{location.shown} is a file; use type: uri_file")
        shutil.copytree(source, target)
        return target
    from mlflow_workspace_plugin.store import datastore_blob

    if data_type == "uri_file":
        return datastore_blob.download_file(location, target)
    datastore_blob.download_folder(location, target, max_files())
    return target


def upload(folder: Path, location: Location) -> int:
    """Upload the files under ``folder`` to ``location`` (a folder); returns how many were sent."""
    check_no_links_out(folder, folder)
    files = sorted(p for p in Path(folder).rglob("*") if p.is_file())
    if location.store.type == "http":
        raise DatastoreError(f"{location.shown}: datastore {location.store.name!r} is an http datastore, "
                             "which cannot be written to; use a local or blob datastore for outputs")
    if location.store.type == "local":
        root = location.store.path
        root.mkdir(parents=True, exist_ok=True)
        target = location.local_path
        for file in files:
            destination = target / file.relative_to(folder)
            destination.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(file, destination)
        return len(files)
    from mlflow_workspace_plugin.store import datastore_blob

    return datastore_blob.upload_files(location, folder, files)


def check_no_links_out(path: Path, root: Path) -> None:
    """Refuse a symlink under ``path`` that resolves outside ``root``."""
    root = Path(root).resolve()
    for candidate in _walk(Path(path)):
        if candidate.is_symlink():
            target = candidate.resolve()
            if target != root and root not in target.parents:
                raise DatastoreError(f"{candidate} is a symlink to {target}, outside {root}: "
                                     "links out of a datastore folder are not followed")


def _walk(path: Path) -> Iterator[Path]:
    yield path
    if path.is_dir() and not path.is_symlink():
        for current, dirs, names in os.walk(path):
            for entry in [*dirs, *names]:
                yield Path(current) / entry


def safe_join(target: Path, name: str, shown: str) -> Path:
    """``target / name`` for a name read from storage; names that would land outside ``target`` are refused."""
    parts = PurePosixPath(name).parts
    if not parts or any(part in ("..", ".", "/") for part in parts) or "\\" in name:
        raise DatastoreError(f"{shown}: the stored name {name!r} would be written outside the input folder")
    return target.joinpath(*parts)


def _fresh(target: Path) -> None:
    if target.is_dir() and not target.is_symlink():
        shutil.rmtree(target)
    elif target.exists() or target.is_symlink():
        target.unlink()
