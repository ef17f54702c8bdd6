"""One artifact file to or from a workspace over pooled keep-alive connections.

:class:`WorkspaceFiles` sends ``PUT``/``GET <workspace>/api/2.0/mlflow-artifacts/artifacts/<path>``
for one artifact root. Per request it adds the workspace's current bearer token (on a 401 the
token is dropped and the request sent once more with a fresh one, :func:`auth.refreshing`) and
goes through a :class:`RetryingSession` carrying the one retry policy
(:data:`~mlflow_workspace_plugin.reliable.retry.TRANSFERS`: connection errors, 429/5xx with
backoff, ``Retry-After`` honoured up to 60 s).

Sessions come from a per-workspace pool (:func:`session_pool`): a worker takes one for a file and
puts it back, so keep-alive connections are reused across files, transfers and repository objects.
What MLflow recomputes per request (its request-header plugins, proxy and CA-bundle environment
lookups: ~5 ms of CPU each) is resolved once per :class:`WorkspaceFiles`.

Uploads stream from disk (never more than one block in memory) with the size fixed when the file
is opened; a file whose size or modification time changed during its upload is reported as such
(:class:`FileFailed`, worth retrying). Downloads stream into a temporary file next to the target
that is renamed into place only when complete, so a failed download never leaves a torn file.
"""

from __future__ import annotations

import contextlib
import json
import os
import posixpath
import queue
import threading
from collections.abc import Callable, Iterator
from typing import IO, Any
from urllib.parse import quote

import requests
import tenacity

from mlflow_workspace_plugin import auth, mlflow_compat
from mlflow_workspace_plugin.reliable.http_failures import not_sent, retry_after
from mlflow_workspace_plugin.reliable.retry import TRANSFER_ANSWER_RETRIES, TRANSFER_SENT_RETRIES, TRANSFERS
from mlflow_workspace_plugin.uri import WorkspaceScope

CONNECT_TIMEOUT = 10.0
DOWNLOAD_CHUNK = 1024 * 1024
RETRY_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})
TRANSFER_RETRY_STATUS = RETRY_STATUS - {408, 425}  # retried per request; all of RETRY_STATUS per file
MAX_IDLE_SESSIONS = 64
RANGED_MIN = 32 * 1024 * 1024  # files at least this big are downloaded in ranges, in parallel
RANGE_CHUNK = 16 * 1024 * 1024
RANGE_WORKERS = 4


class FileFailed(Exception):
    """One file could not be moved. ``answer``: the server's answer (or the connection problem) in
    words, without URLs' credentials or headers; ``retry``: another attempt may succeed."""

    def __init__(self, answer: str, retry: bool, status: int | None = None, error_code: str | None = None) -> None:
        super().__init__(answer)
        self.answer, self.retry, self.status, self.error_code = answer, retry, status, error_code

    @classmethod
    def of(cls, response: requests.Response) -> FileFailed:
        """The failure a non-2xx answer means (its MLflow ``error_code`` kept, if it has one)."""
        try:
            body = response.json()
            code = body.get("error_code") if isinstance(body, dict) else None
        except ValueError:
            code = None
        return cls(answer_of(response), response.status_code in RETRY_STATUS, response.status_code,
                   code if isinstance(code, str) else None)


# ------------------------------------------------------------------ sessions
class SessionPool:
    """Idle ``requests`` sessions of one workspace; each carries the workspace's retry policy."""

    def __init__(self) -> None:
        self._idle: queue.LifoQueue[requests.Session] = queue.LifoQueue()

    @contextlib.contextmanager
    def session(self) -> Iterator[requests.Session]:
        try:
            session = self._idle.get_nowait()
        except queue.Empty:
            session = _new_session()
        try:
            yield session
        except BaseException:
            session.close()  # a connection in an unknown state is not reused
            raise
        if self._idle.qsize() < MAX_IDLE_SESSIONS:
            self._idle.put(session)
        else:
            session.close()


class RetryingSession(requests.Session):
    """A keep-alive session whose every request runs under the one retry policy
    (:data:`~mlflow_workspace_plugin.reliable.retry.TRANSFERS`, tenacity): connection failures and
    timeouts, and answers 429/500/502/503/504 (408/425 are left to the file-level rounds), are
    tried again - at most 4 retries, 3 of them for an answer and 2 after the request was sent
    (a read timeout, a dropped answer); a file body is rewound for each attempt. When retrying
    ends on an answer, that answer is returned (the caller reports it)."""

    def request(self, method: str | bytes, url: str | bytes, *args: Any, **kwargs: Any) -> requests.Response:
        body = kwargs.get("data")
        rewind = body.tell() if hasattr(body, "seek") and hasattr(body, "tell") else None
        answers, sent = [0], [0]

        def attempt() -> requests.Response:
            if rewind is not None:
                body.seek(rewind)
            return super(RetryingSession, self).request(method, url, *args, **kwargs)

        def again(state: tenacity.RetryCallState) -> bool:
            if state.outcome.failed:
                exc = state.outcome.exception()
                if isinstance(exc, requests.exceptions.SSLError) or not isinstance(
                        exc, (requests.ConnectionError, requests.Timeout)):
                    return False
                if not_sent(exc):
                    return True  # no connection was made: bounded by the 4 retries only
                sent[0] += 1
                return sent[0] <= TRANSFER_SENT_RETRIES
            if state.outcome.result().status_code not in TRANSFER_RETRY_STATUS:
                return False
            answers[0] += 1
            return answers[0] <= TRANSFER_ANSWER_RETRIES

        def wait(state: tenacity.RetryCallState) -> float:
            asked = None if state.outcome.failed else retry_after(state.outcome.result())
            return TRANSFERS.wait(state.attempt_number, asked)

        def drop_answer(state: tenacity.RetryCallState) -> None:
            if not state.outcome.failed:
                state.outcome.result().close()  # not read: this connection is not reused

        return TRANSFERS.retrying(retry=again, wait=wait, before_sleep=drop_answer,
                                  retry_error_callback=lambda state: state.outcome.result())(attempt)


def _new_session() -> requests.Session:
    session = RetryingSession()
    adapter = requests.adapters.HTTPAdapter(max_retries=0, pool_connections=2, pool_maxsize=2)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    session.trust_env = False  # proxies and CA bundle are resolved once per WorkspaceFiles
    return session


_pools_lock = threading.Lock()
_pools: dict[tuple[int, WorkspaceScope], SessionPool] = {}


def session_pool(scope: WorkspaceScope) -> SessionPool:
    """The session pool of ``scope`` in this process (a forked child gets its own)."""
    key = (os.getpid(), scope)
    with _pools_lock:
        pool = _pools.get(key)
        if pool is None:
            pool = _pools[key] = SessionPool()
        return pool


# ------------------------------------------------------------------ request bodies
class BoundedReader:
    """A file opened for upload, read up to ``size`` bytes (the size when it was opened), with
    ``on_read`` told about every block; ``tell``/``seek`` let a retry rewind it."""

    def __init__(self, handle: IO[bytes], size: int, on_read: Callable[[int], None]) -> None:
        self._handle, self._size, self._on_read = handle, size, on_read
        self._pos = 0

    def __len__(self) -> int:
        return self._size

    def read(self, amount: int = -1) -> bytes:
        left = self._size - self._pos
        if left <= 0:
            return b""
        data = self._handle.read(left if amount is None or amount < 0 else min(amount, left))
        self._pos += len(data)
        if data:
            self._on_read(len(data))
        return data

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = 0) -> int:
        if whence != 0:
            raise OSError("only absolute seeks are supported")
        self._on_read(offset - self._pos)
        self._handle.seek(offset)
        self._pos = offset
        return offset


def stamp(path: str) -> tuple[int, int]:
    """(size, mtime in ns): what changes when a file is written to."""
    info = os.stat(path)
    return info.st_size, info.st_mtime_ns


def answer_of(response: requests.Response) -> str:
    """``HTTP 503 Service Unavailable: <the server's message>`` (message shortened)."""
    head = f"HTTP {response.status_code} {(response.reason or '').strip()}".rstrip()
    try:
        text = response.text
    except Exception:  # an answer cut off mid-body
        text = ""
    message = text.strip()
    try:
        body = json.loads(message)
        if isinstance(body, dict) and body.get("message"):
            message = f"{body.get('error_code', '')}: {body['message']}".lstrip(": ")
    except ValueError:
        pass
    message = " ".join(message.split())
    if len(message) > 300:
        message = message[:300] + "..."
    return f"{head}: {message}" if message else head


def connection_problem(exc: requests.RequestException) -> str:
    """A short description of a failure without an answer (no headers: the token travels there)."""
    from mlflow_workspace_plugin.uri import redact

    lines = str(exc).strip().splitlines()
    detail = redact(lines[0])[:300] if lines else ""
    return f"no answer ({type(exc).__name__}{': ' + detail if detail else ''})"


def _raise_for_auth(response: requests.Response) -> requests.Response:
    if response.status_code in (401, 403):
        response.close()
        raise requests.HTTPError(f"HTTP {response.status_code}", response=response)
    return response


# ------------------------------------------------------------------ files of one artifact root
class WorkspaceFiles:
    """Single-file ``PUT``/``GET`` under one artifact root URL of a workspace (module doc)."""

    def __init__(self, scope: WorkspaceScope, artifact_root_url: str) -> None:
        from mlflow.environment_variables import MLFLOW_HTTP_REQUEST_TIMEOUT
        from mlflow.tracking.request_header.registry import resolve_request_headers

        self.scope = scope
        self.root = artifact_root_url.rstrip("/")
        self._headers = dict(resolve_request_headers())
        creds = auth.host_creds(scope, host=self.root)
        verify: Any = not creds.ignore_tls_verification
        if verify:
            verify = (creds.server_cert_path or os.environ.get("REQUESTS_CA_BUNDLE")
                      or os.environ.get("CURL_CA_BUNDLE") or True)
        self.request_kwargs: dict[str, Any] = {
            "verify": verify, "cert": creds.client_cert_path, "allow_redirects": False,
            "proxies": requests.utils.get_environ_proxies(self.root),
            "timeout": (CONNECT_TIMEOUT, float(MLFLOW_HTTP_REQUEST_TIMEOUT.get())),
        }
        self.pool = session_pool(scope)

    def url(self, remote: str) -> str:
        return f"{self.root}/{quote(remote.strip('/'), safe='/')}"

    def headers(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        headers = {**self._headers, **(extra or {})}
        headers["Authorization"] = f"Bearer {auth.get_token(self.scope)}"
        return headers

    def call(self, attempt: Callable[[], Any]) -> Any:
        """Run one request ``attempt`` with the token refresh; connection trouble -> FileFailed."""
        try:
            return auth.refreshing(self.scope, attempt)
        except requests.RequestException as exc:
            raise FileFailed(connection_problem(exc), retry=True) from None

    def put(self, local: str, remote: str, on_bytes: Callable[[int], None]) -> int:
        """Upload ``local`` to ``remote``; returns the bytes sent."""
        before = stamp(local)
        size = before[0]
        extra = {"Content-Type": mlflow_compat.guess_mime_type(posixpath.basename(remote))}
        sent = [0]

        def count(nbytes: int) -> None:
            sent[0] += nbytes
            on_bytes(nbytes)

        def attempt() -> requests.Response:
            count(-sent[0])  # a repeated attempt starts again from zero
            with open(local, "rb") as handle, self.pool.session() as session:
                body = BoundedReader(handle, size, count)
                response = session.put(self.url(remote), data=body if size else b"",
                                       headers=self.headers(extra), **self.request_kwargs)
                response.content  # noqa: B018 - read the (small) answer so the connection is reusable
                return _raise_for_auth(response)

        try:
            response = self.call(attempt)
        except FileFailed:
            count(-sent[0])
            raise
        if not 200 <= response.status_code < 300:
            count(-sent[0])
            raise FileFailed.of(response)
        if stamp(local) != before:
            count(-sent[0])
            raise FileFailed("the file changed while it was being uploaded, so the stored copy may "
                             "mix old and new content", retry=True)
        return size

    def get(self, remote: str, local_path: str, on_bytes: Callable[[int], None], size: int = 0,
            workers: int = 1) -> int:
        """Download ``remote`` into ``local_path`` (complete or not at all); returns the bytes.
        A file of at least :data:`RANGED_MIN` bytes (``size`` from the listing) comes in ranges of
        :data:`RANGE_CHUNK` bytes over up to ``workers`` connections when the server answers
        ranges (``MLFLOW_ENABLE_MULTIPART_DOWNLOAD=false`` turns this off)."""
        folder, name = os.path.split(local_path)
        partial = os.path.join(folder, f".{name}.{os.getpid()}.{threading.get_ident()}.part")
        if size >= RANGED_MIN and workers > 1 and _ranges_enabled():
            try:
                if self._get_ranges(remote, partial, size, on_bytes, workers):
                    os.replace(partial, local_path)
                    return size
            except BaseException:
                with contextlib.suppress(OSError):
                    os.remove(partial)
                raise
        got = [0]

        def attempt() -> int:
            on_bytes(-got[0])
            got[0] = 0
            with self.pool.session() as session:
                response = _raise_for_auth(session.get(self.url(remote), headers=self.headers(), stream=True,
                                                       **self.request_kwargs))
                with response:
                    if not 200 <= response.status_code < 300:
                        raise FileFailed.of(response)
                    expected = response.headers.get("Content-Length")
                    with open(partial, "wb") as out:
                        for chunk in response.iter_content(chunk_size=DOWNLOAD_CHUNK):
                            out.write(chunk)
                            got[0] += len(chunk)
                            on_bytes(len(chunk))
                    if expected is not None and expected.isdigit() and int(expected) != got[0] and \
                            "Content-Encoding" not in response.headers:
                        raise FileFailed(f"the answer ended after {got[0]} of {expected} bytes", retry=True)
            return got[0]

        try:
            size = self.call(attempt)
        except BaseException:
            on_bytes(-got[0])
            with contextlib.suppress(OSError):
                os.remove(partial)
            raise
        os.replace(partial, local_path)
        return size

    def _get_ranges(self, remote: str, partial: str, size: int, on_bytes: Callable[[int], None],
                    workers: int) -> bool:
        """Fetch ``remote`` in ranges into ``partial``; False if the server ignores ranges (the
        caller then downloads it in one piece)."""
        from concurrent.futures import ThreadPoolExecutor

        url = self.url(remote)
        with open(partial, "wb") as out:
            out.truncate(size)
        fd = os.open(partial, os.O_WRONLY)
        try:
            def fetch(start: int) -> bool:
                end = min(start + RANGE_CHUNK, size) - 1
                got = [0]

                def attempt() -> bool:
                    on_bytes(-got[0])
                    got[0] = 0
                    headers = self.headers({"Range": f"bytes={start}-{end}"})
                    with self.pool.session() as session:
                        response = _raise_for_auth(session.get(url, headers=headers, stream=True,
                                                               **self.request_kwargs))
                        with response:
                            if response.status_code == 200:
                                return False  # no range support: the whole file came back
                            if response.status_code != 206:
                                raise FileFailed.of(response)
                            if response.headers.get("Content-Range", "") != f"bytes {start}-{end}/{size}":
                                raise FileFailed(f"the server answered range {response.headers.get('Content-Range')!r} "
                                                 f"for bytes {start}-{end} of {size}: the file changed", retry=True)
                            position = start
                            for chunk in response.iter_content(chunk_size=DOWNLOAD_CHUNK):
                                os.pwrite(fd, chunk, position)
                                position += len(chunk)
                                got[0] += len(chunk)
                                on_bytes(len(chunk))
                    if position != end + 1:
                        raise FileFailed(f"the answer ended after {position - start} of {end + 1 - start} bytes",
                                         retry=True)
                    return True

                try:
                    return self.call(attempt)
                except BaseException:
                    on_bytes(-got[0])
                    raise

            starts = list(range(0, size, RANGE_CHUNK))
            if not fetch(starts[0]):
                return False
            with ThreadPoolExecutor(max_workers=min(workers, RANGE_WORKERS, len(starts)),
                                    thread_name_prefix="artifact-range") as pool:
                list(pool.map(fetch, starts[1:]))
            return True
        finally:
            os.close(fd)


def _ranges_enabled() -> bool:
    from mlflow.environment_variables import MLFLOW_ENABLE_MULTIPART_DOWNLOAD

    return bool(MLFLOW_ENABLE_MULTIPART_DOWNLOAD.get())
