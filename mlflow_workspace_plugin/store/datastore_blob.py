"""Blob datastores through Azure's own storage SDK (``azure-storage-blob``): download a blob or a folder
(a name prefix), upload a folder. Credentials come from the environment (:class:`Credentials`) and never
appear in a message: every error is phrased here from the status and the error code, with the URI redacted.
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from pathlib import Path

from mlflow_workspace_plugin.store.datastores import Datastore, DatastoreError, Location, safe_join

CONNECT_TIMEOUT = 10  # seconds
READ_TIMEOUT = 60
RETRIES = 3
CONCURRENCY = 4


def container_client(store: Datastore):
    """A ``ContainerClient`` for ``store`` with its credential (SAS, key, azure-identity or none)."""
    from azure.storage.blob import ContainerClient

    credential = None
    kind = store.credentials.kind
    if kind == "sas":
        credential = store.credentials.secret(store.name).lstrip("?")
    elif kind == "key":
        from azure.core.credentials import AzureNamedKeyCredential

        credential = AzureNamedKeyCredential(store.account_name, store.credentials.secret(store.name))
    elif kind == "identity":
        from azure.identity import DefaultAzureCredential

        credential = DefaultAzureCredential()
    return ContainerClient(store.account_url, store.container, credential=credential, retry_total=RETRIES,
                           connection_timeout=CONNECT_TIMEOUT, read_timeout=READ_TIMEOUT)


def download_file(location: Location, target: Path) -> Path:
    """The blob at ``location`` into ``target/<its name>``."""
    if not location.path:
        raise DatastoreError(f"{location.shown} names a container, not a file; use type: uri_folder")
    target.mkdir(parents=True, exist_ok=True)
    destination = safe_join(target, location.path.rsplit("/", 1)[-1], location.shown)
    with _errors(location):
        _download(container_client(location.store), location.path, destination)
    return destination


def download_folder(location: Location, target: Path, limit: int) -> int:
    """Every blob under ``location`` (a prefix) into ``target``, keeping the relative names; at most
    ``limit`` files (more is an error before anything is written). Returns how many were written."""
    client = container_client(location.store)
    prefix = f"{location.path}/" if location.path else ""
    names = []
    with _errors(location):
        for blob in client.list_blobs(name_starts_with=prefix or None):
            if blob.name.endswith("/") or (blob.metadata or {}).get("hdi_isfolder") == "true":
                continue  # folder markers (ADLS Gen2)
            names.append(blob.name)
            if len(names) > limit:
                raise DatastoreError(f"{location.shown} holds more than {limit} files; name a smaller folder "
                                     f"or raise $MLFLOW_WORKSPACE_DATASTORE_MAX_FILES")
    if not names:
        raise DatastoreError(f"{location.shown}: no files under that path in container {location.store.container!r}")
    target.mkdir(parents=True, exist_ok=True)
    plan = [(name, safe_join(target, name[len(prefix):], location.shown)) for name in names]
    from concurrent.futures import ThreadPoolExecutor

    with _errors(location), ThreadPoolExecutor(CONCURRENCY) as pool:
        list(pool.map(lambda item: _download(client, *item), plan))
    return len(plan)


def upload_files(location: Location, folder: Path, files: Sequence[Path]) -> int:
    """Upload ``files`` (under ``folder``) as blobs under ``location``; returns how many."""
    client = container_client(location.store)
    prefix = f"{location.path}/" if location.path else ""

    def send(file: Path) -> None:
        with open(file, "rb") as data:
            client.upload_blob(prefix + file.relative_to(folder).as_posix(), data, overwrite=True,
                               max_concurrency=2)

    from concurrent.futures import ThreadPoolExecutor

    with _errors(location), ThreadPoolExecutor(CONCURRENCY) as pool:
        list(pool.map(send, files))
    return len(files)


def _download(client, name: str, destination: Path) -> None:
    destination.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=destination.parent, delete=False, prefix=".part-") as part:
        client.download_blob(name, max_concurrency=2).readinto(part)
    Path(part.name).replace(destination)


class _errors:
    """Turn the SDK's errors into one :class:`DatastoreError` naming the (redacted) URI."""

    def __init__(self, location: Location) -> None:
        self.location = location

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind, error, _tb) -> bool:
        if error is None or isinstance(error, DatastoreError):
            return False
        from azure.core.exceptions import AzureError, ClientAuthenticationError, HttpResponseError

        shown = self.location.shown
        store = self.location.store
        if isinstance(error, ClientAuthenticationError) and getattr(error, "status_code", None) is None:
            raise DatastoreError(f"{shown}: no Azure credential for datastore {store.name!r} (azure-identity "
                                 "found none); set credentials.sas_token_env or account_key_env") from None
        if isinstance(error, HttpResponseError):
            code = getattr(error, "error_code", None) or ""
            status = getattr(error, "status_code", None)
            why = {404: "not found", 403: "access denied (check the SAS token / key / identity)",
                   401: "not authorised"}.get(status, "refused")
            raise DatastoreError(f"{shown}: {why} by {store.account_url} (HTTP {status} {code})".rstrip()) from None
        if isinstance(error, AzureError):
            raise DatastoreError(f"{shown}: cannot reach {store.account_url} ({type(error).__name__})") from None
        return False
