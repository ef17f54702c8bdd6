"""Large files through MLflow's multipart upload, where the workspace offers it.

A file of at least ``MLFLOW_MULTIPART_UPLOAD_MINIMUM_FILE_SIZE`` bytes goes this way when
``MLFLOW_ENABLE_PROXY_MULTIPART_UPLOAD`` says so or, unset, when the workspace's
``/api/3.0/mlflow/server-info`` reports ``multipart_uploads_enabled`` (asked once per workspace and
process; a server that cannot answer is taken as "no"). The protocol is MLflow's: ``mpu/create``
returns one presigned URL per part, each part (``MLFLOW_MULTIPART_UPLOAD_CHUNK_SIZE`` bytes, read
from disk one part at a time) is ``PUT`` there - with the workspace token only if that URL is the
workspace itself - and ``mpu/complete`` assembles them; any failure aborts the upload
(``mpu/abort``). A server whose artifact store cannot do multipart answers ``create`` with MLflow's
"not supported" message; the file then goes as one streamed ``PUT``.
"""

from __future__ import annotations

import math
import os
import posixpath
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import quote, urlsplit

import requests

from mlflow_workspace_plugin import mlflow_compat
from mlflow_workspace_plugin.store.transfer_http import FileFailed, WorkspaceFiles, answer_of
from mlflow_workspace_plugin.uri import WorkspaceScope

SERVER_INFO = "/api/3.0/mlflow/server-info"
PART_WORKERS = 4

_offers_lock = threading.Lock()
_offers: dict[tuple[int, WorkspaceScope], bool] = {}


def wanted(files: WorkspaceFiles, size: int) -> bool:
    """True if a file of ``size`` bytes should go through multipart upload (module doc)."""
    from mlflow.environment_variables import (
        MLFLOW_ENABLE_PROXY_MULTIPART_UPLOAD,
        MLFLOW_MULTIPART_UPLOAD_MINIMUM_FILE_SIZE,
    )

    if size < MLFLOW_MULTIPART_UPLOAD_MINIMUM_FILE_SIZE.get():
        return False
    if MLFLOW_ENABLE_PROXY_MULTIPART_UPLOAD.is_set():
        return bool(MLFLOW_ENABLE_PROXY_MULTIPART_UPLOAD.get())
    return offered(files)


def offered(files: WorkspaceFiles) -> bool:
    """Whether the workspace's server-info says it offers multipart uploads (cached)."""
    key = (os.getpid(), files.scope)
    with _offers_lock:
        if key in _offers:
            return _offers[key]
    url = files.scope.rest_base_url.rstrip("/") + SERVER_INFO
    try:
        with files.pool.session() as session:
            response = files.call(lambda: session.get(url, headers=files.headers(), **files.request_kwargs))
            answer = bool(response.ok and response.json().get("multipart_uploads_enabled", False))
    except Exception:
        answer = False
    with _offers_lock:
        _offers[key] = answer
    return answer


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    return scheme, (parts.hostname or "").lower(), parts.port or {"http": 80, "https": 443}.get(scheme)


def _endpoint(files: WorkspaceFiles, kind: str, folder: str) -> str:
    base = files.root.replace("/mlflow-artifacts/artifacts", f"/mlflow-artifacts/mpu/{kind}", 1)
    return f"{base}/{quote(folder, safe='/')}" if folder else base


def _post(files: WorkspaceFiles, url: str, body: dict[str, Any]) -> requests.Response:
    def attempt() -> requests.Response:
        with files.pool.session() as session:
            response = session.post(url, json=body, headers=files.headers({"Content-Type": "application/json"}),
                                    **files.request_kwargs)
            response.content  # noqa: B018 - read it so the connection is reusable
        if response.status_code in (401, 403):
            raise requests.HTTPError(f"HTTP {response.status_code}", response=response)
        return response

    return files.call(attempt)


def upload(files: WorkspaceFiles, local: str, remote: str, size: int, on_bytes: Callable[[int], None]) -> int:
    """Upload ``local`` to ``remote`` in parts; falls back to one ``PUT`` if not supported."""
    from mlflow.entities.multipart_upload import CreateMultipartUploadResponse, MultipartUploadPart
    from mlflow.environment_variables import MLFLOW_MULTIPART_UPLOAD_CHUNK_SIZE

    chunk = int(MLFLOW_MULTIPART_UPLOAD_CHUNK_SIZE.get())
    folder, name = posixpath.split(remote)
    num_parts = max(1, math.ceil(size / chunk))
    created = _post(files, _endpoint(files, "create", folder), {"path": name, "num_parts": num_parts})
    if not created.ok:
        if mlflow_compat.unsupported_multipart_message() in created.text:
            with _offers_lock:
                _offers[(os.getpid(), files.scope)] = False
            return files.put(local, remote, on_bytes)
        raise FileFailed(f"starting a multipart upload: {answer_of(created)}", retry=created.status_code >= 500)
    create = CreateMultipartUploadResponse.from_dict(created.json())

    sent = [0]
    sent_lock = threading.Lock()

    def part(credential: Any) -> MultipartUploadPart:
        offset = chunk * (credential.part_number - 1)
        with open(local, "rb") as handle:
            handle.seek(offset)
            data = handle.read(chunk)
        headers = dict(credential.headers or {})
        if _origin(credential.url) == _origin(files.root):  # proxied by the workspace itself
            headers = files.headers(headers)
        with files.pool.session() as session:
            response = session.put(credential.url, data=data, headers=headers, **files.request_kwargs)
            response.content  # noqa: B018
        if not response.ok:
            raise FileFailed(f"part {credential.part_number}: {answer_of(response)}", retry=True)
        with sent_lock:
            sent[0] += len(data)
        on_bytes(len(data))
        return MultipartUploadPart(credential.part_number, response.headers.get("ETag", ""), credential.url)

    try:
        with ThreadPoolExecutor(max_workers=min(PART_WORKERS, len(create.credentials) or 1)) as pool:
            parts = sorted(pool.map(part, create.credentials), key=lambda p: p.part_number)
        done = _post(files, _endpoint(files, "complete", folder),
                     {"path": name, "upload_id": create.upload_id, "parts": [p.to_dict() for p in parts]})
        if not done.ok:
            raise FileFailed(f"completing a multipart upload: {answer_of(done)}", retry=done.status_code >= 500)
    except BaseException:
        on_bytes(-sent[0])
        try:
            _post(files, _endpoint(files, "abort", folder), {"path": name, "upload_id": create.upload_id})
        except Exception:  # the original failure is the one to report
            pass
        raise
    return size
